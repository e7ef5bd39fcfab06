"""Batched Kaldi log-mel filterbank as used by AST, registered as ``"kaldi_fbank"``.

Reproduces ``torchaudio.compliance.kaldi.fbank(waveform, htk_compat=True, use_energy=False,
window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10)`` followed by AST's padding
and normalisation (``reference/upstream-models.md`` §1.2, §4.1), for a whole batch at once:

1. ``snip_edges`` framing: frames of 25 ms (400 samples @16 kHz) every 10 ms (160), only frames
   that fit entirely, ``T = 1 + (N - 400) // 160`` (10 s → 998 frames);
2. per frame: subtract the frame mean (DC removal), pre-emphasis ``x[j] -= 0.97 x[max(0, j - 1)]``,
   symmetric Hann window, zero-padding on the right to 512 samples;
3. power spectrum ``|rfft|²`` → Kaldi mel filterbank (20 Hz to Nyquist) → ``log(max(x, eps))``
   with the float32 machine epsilon;
4. zero-pad (in the log domain) or truncate to ``target_frames`` (AST AudioSet: 1024);
5. training-time SpecAugment (train mode and ``augment=True`` only; masks hold 0, before step 6);
6. ``(x - mean) / (2 * std)``: padded frames therefore become ``-mean / (2 std)`` (0.467), not 0.

The output is (B, 1, n_mels, T), frequency first like every audiozoo frontend (AST's upstream
layout is (B, T, F)).

BEATs (``BEATs.preprocess``) calls ``kaldi.fbank(waveform * 2**15, num_mel_bins=128,
sample_frequency=16000, frame_length=25, frame_shift=10)``, i.e. torchaudio's defaults: the
**povey** window, dither 0, DC removal, pre-emphasis 0.97, 20 Hz to Nyquist, snip_edges, no
energy (so ``htk_compat`` has no effect); no padding to a fixed length; ``(x - 15.41663) /
(2 * 6.55582)``. Here: ``window="povey", input_scale=32768, target_frames=None`` and that mean/std.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_choice, check_int, check_optional_int, check_real
from .._errors import InvalidAudioError, RegistryError
from ._common import check_filterbank_size, check_waveform, float32_no_autocast
from .base import Frontend, register_frontend
from .filterbanks import kaldi_mel_banks
from .mel_projection import band_blocks, project_mel

__all__ = ["KaldiFbank"]

_WINDOWS = ("hanning", "hamming", "povey", "rectangular", "blackman")
_BLACKMAN_COEFF = 0.42
_EPS = torch.finfo(torch.float32).eps  # Kaldi's log floor: numeric_limits<float>::epsilon()
# AST pads to 1024 frames; the bound keeps a config from asking for a padded input of gigabytes.
MAX_TARGET_FRAMES = 1 << 20


def _kaldi_window(window: str, length: int) -> torch.Tensor:
    """Kaldi's feature window of ``length`` samples (float32, symmetric)."""
    if window == "hanning":
        return torch.hann_window(length, periodic=False)
    if window == "hamming":
        return torch.hamming_window(length, periodic=False, alpha=0.54, beta=0.46)
    if window == "povey":  # Hann raised to 0.85: goes to zero at the edges
        return torch.hann_window(length, periodic=False).pow(0.85)
    if window == "rectangular":
        return torch.ones(length)
    # blackman: Kaldi's generalised Blackman with coefficient 0.42 (not torch.blackman_window's)
    a = 2 * math.pi / (length - 1)
    n = torch.arange(length, dtype=torch.float32)
    return _BLACKMAN_COEFF - 0.5 * torch.cos(a * n) + (0.5 - _BLACKMAN_COEFF) * torch.cos(2 * a * n)


@register_frontend("kaldi_fbank")
class KaldiFbank(Frontend):
    """Kaldi log-mel filterbank (AST preprocessing): waveform (B, N) → (B, 1, n_mels, T).

    ``T = target_frames`` when set, else ``1 + (N - win) // shift`` with ``win``/``shift`` the frame
    length/shift in samples. Clips shorter than one frame (upstream: 0 frames, i.e. an all-padding
    input) are zero-padded at the end to one frame, so every clip of >= 1 sample gives at least one
    real frame (``min_samples = 1``).

    Args:
        sample_rate: input sample rate (Hz).
        n_mels: number of mel bins.
        frame_length_ms: frame length in milliseconds (25 ms = 400 samples @16 kHz).
        frame_shift_ms: frame shift in milliseconds (10 ms = 160 samples @16 kHz).
        low_freq: lowest filterbank frequency (Hz).
        high_freq: highest filterbank frequency (Hz); ``<= 0`` is an offset from Nyquist.
        window: "hanning" (AST), "hamming", "povey", "rectangular" or "blackman".
        preemphasis: per-frame pre-emphasis coefficient in [0, 1].
        target_frames: pad (zeros in the log domain) or truncate to this many frames; None keeps
            the natural number of frames.
        mean: normalisation mean (AudioSet AST: -4.2677393).
        std: normalisation std; the output is divided by ``2 * std`` as in AST.
        freqm: maximum width of the training frequency mask (0 = none).
        timem: maximum width of the training time mask (0 = none).
        augment: apply SpecAugment in train mode.
        input_scale: factor applied to the waveform first (BEATs: 2^15 = 32768, the int16 range
            its statistics were computed in; 1 keeps float audio as is, as AST).

    Attributes:
        generator: optional ``torch.Generator`` used for the augmentation's random draws.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 128,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
        window: str = "hanning",
        preemphasis: float = 0.97,
        target_frames: int | None = 1024,
        mean: float = -4.2677393,
        std: float = 4.5689974,
        freqm: int = 0,
        timem: int = 0,
        augment: bool = False,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        where = "kaldi_fbank"
        sample_rate = check_int(sample_rate, "sample_rate", where)
        n_mels = check_int(n_mels, "n_mels", where)
        frame_length_ms = check_real(frame_length_ms, "frame_length_ms", where, low=0.0)
        frame_shift_ms = check_real(frame_shift_ms, "frame_shift_ms", where, low=0.0)
        low_freq = check_real(low_freq, "low_freq", where, low=0.0)
        high_freq = check_real(high_freq, "high_freq", where)
        check_choice(window, "window", where, _WINDOWS)
        preemphasis = check_real(preemphasis, "preemphasis", where, low=0.0, high=1.0)
        target_frames = check_optional_int(
            target_frames, "target_frames", where, high=MAX_TARGET_FRAMES
        )
        mean = check_real(mean, "mean", where)
        std = check_real(std, "std", where, low=0.0, strict_low=True)
        input_scale = check_real(input_scale, "input_scale", where, low=0.0, strict_low=True)
        # Same expressions as Kaldi/torchaudio so that e.g. 10 ms @16 kHz rounds to 160 exactly.
        win_length = int(sample_rate * frame_length_ms * 0.001)
        shift = int(sample_rate * frame_shift_ms * 0.001)
        if win_length < 2 or shift < 1:
            raise RegistryError(
                f"{where}: frame length {frame_length_ms} ms / shift {frame_shift_ms} ms give "
                f"{win_length} / {shift} samples at {sample_rate} Hz; need >= 2 / >= 1"
            )
        n_fft = 1 << (win_length - 1).bit_length()  # next power of two (400 -> 512)
        check_filterbank_size(n_mels, n_fft, where)
        self._init_spec_augment(freqm, timem, augment, where)
        self.win_length = win_length
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.hop_length = shift
        self.n_fft = n_fft
        self.low_freq = low_freq
        self.high_freq = high_freq
        self.window = window
        self.preemphasis = preemphasis
        self.target_frames = target_frames
        self.mean = mean
        self.std = std
        self.input_scale = input_scale
        self.min_samples = 1
        self.register_buffer(
            "window_samples", _kaldi_window(window, self.win_length), persistent=False
        )
        self.register_buffer(
            "mel_bank",
            kaldi_mel_banks(n_mels, self.n_fft, sample_rate, self.low_freq, self.high_freq),
            persistent=False,
        )
        self.window_samples: torch.Tensor
        self.mel_bank: torch.Tensor
        self._mel_blocks = band_blocks(self.mel_bank)

    def num_frames(self, num_samples: int) -> int:
        if num_samples < self.min_samples:
            raise InvalidAudioError("kaldi_fbank needs at least one sample")
        if self.target_frames is not None:
            return self.target_frames
        return 1 + (max(num_samples, self.win_length) - self.win_length) // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Args: waveform (B, N) float. Returns: (B, 1, n_mels, num_frames(N)) float32."""
        check_waveform(waveform, self.min_samples, "kaldi_fbank")
        with float32_no_autocast(waveform.device):
            x = waveform.to(torch.float32)
            if self.input_scale != 1.0:  # before framing, as BEATs scales the waveform
                x = x * self.input_scale
            if x.shape[-1] < self.win_length:  # shorter than one frame: see the class docstring
                x = torch.nn.functional.pad(x, (0, self.win_length - x.shape[-1]))
            out = self._per_clip_then_batch(
                x, lambda chunk: self._fit_frames(self._log_mel(chunk)), self._normalise
            )
        return out.unsqueeze(1)

    def _fit_frames(self, logmel: torch.Tensor) -> torch.Tensor:
        """Step 4: zero-pad (log domain) or truncate to ``target_frames`` when set."""
        if self.target_frames is None:
            return logmel
        missing = self.target_frames - logmel.shape[-1]
        if missing > 0:
            return torch.nn.functional.pad(logmel, (0, missing))  # zeros, log domain
        return logmel[..., : self.target_frames]

    def _normalise(self, logmel: torch.Tensor) -> torch.Tensor:
        """Step 6, in place: logmel is a fresh tensor no autograd node saved (log keeps its
        input)."""
        return logmel.sub_(self.mean).div_(2.0 * self.std)

    def _log_mel(self, x: torch.Tensor) -> torch.Tensor:
        """Steps 1-3: float32 (B, N >= win_length) -> (B, n_mels, T)."""
        win = self.win_length
        frames = x.unfold(-1, win, self.hop_length)  # (B, T, win) view, snip_edges
        centred = frames - frames.mean(dim=-1, keepdim=True)
        # Frames are written into an n_fft buffer whose tail is the FFT's zero padding, so rfft
        # makes no padded copy; windowing is in place. Pre-emphasis keeps torchaudio's two
        # roundings (a fused multiply-add moves quiet low bins by up to 5e-4 relative).
        buffer = x.new_empty((*centred.shape[:-1], self.n_fft))
        buffer[..., win:] = 0.0
        body = buffer[..., :win]
        if self.preemphasis != 0.0:
            # x[j] - p x[j - 1]; the first sample of each frame is its own predecessor.
            body[..., 1:] = centred[..., 1:] - self.preemphasis * centred[..., :-1]
            body[..., 0] = centred[..., 0] - self.preemphasis * centred[..., 0]
        else:
            body.copy_(centred)
        body.mul_(self.window_samples)
        spectrum = torch.view_as_real(torch.fft.rfft(buffer))  # (B, T, F, 2)
        # |X|² as re² + im²: 6x faster than abs().square(), equal up to float32 rounding.
        squares = spectrum.square()
        power = squares[..., 0] + squares[..., 1]  # (B, T, F)
        mel = project_mel(self.mel_bank, power.transpose(1, 2), self._mel_blocks)
        return mel.clamp_(min=_EPS).log()  # (B, n_mels, T)

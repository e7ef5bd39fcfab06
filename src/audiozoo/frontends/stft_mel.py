"""The EfficientAT / PaSST / PretrainedSED log-mel frontend ("AugmentMelSTFT"), ``"stft_mel"``.

Pipeline (``reference/upstream-models.md`` §1.3 and §5.1), for a waveform (B, N) at 32 kHz:

1. pre-emphasis over the whole clip as a *valid* convolution with kernel [-0.97, 1]:
   ``y[n] = x[n + 1] - 0.97 x[n]`` (N - 1 samples, so 10 s gives 1000 frames, not 1001);
2. ``torch.stft`` with a symmetric (``periodic_window=True``: periodic) Hann window of
   ``win_length`` centred in ``n_fft``, ``center=True`` with reflect padding; power spectrum
   ``re² + im²``;
3. Kaldi mel filterbank (:func:`~audiozoo.frontends.filterbanks.kaldi_mel_banks`) between ``fmin``
   and ``fmax`` (default ``sr // 2 - fmax_aug_range // 2`` = 15 kHz), applied band by band
   (:mod:`~audiozoo.frontends.mel_projection`);
4. ``log(mel + 1e-5)`` (``log_mode="clamp"``: ``log(max(mel, log_eps))``), then the "fast
   normalisation" ``(x + 4.5) / 5``.

PretrainedSED's 16 kHz variant (frame_mn, fPaSST) is ``sample_rate=16000, n_fft=512,
win_length=400, hop_length=160, log_mode="clamp", log_eps=1e-7`` (fmax then follows as 7 kHz; 10 s
give 1000 frames), with ``periodic_window=True`` for fPaSST. Its 1e-7 floor makes the quietest
cells (power below about 1e-5) sensitive to float32 rounding in the FFT.

Training-time augmentation (train mode *and* ``augment=True`` only): the filterbank edges are
jittered once per batch (``fmin + U{0..fmin_aug_range-1}``,
``fmax + fmax_aug_range // 2 - U{0..fmax_aug_range-1}``) and frequency / time bands are masked
i.i.d. per example (SpecAugment, value 0 before normalisation).
"""

from __future__ import annotations

import torch

from .._checks import check_bool, check_choice, check_int, check_real
from .._errors import InvalidAudioError, RegistryError
from ._common import check_filterbank_size, check_waveform, float32_no_autocast
from .base import Frontend, register_frontend
from .filterbanks import kaldi_mel_banks
from .mel_projection import Block, band_blocks, project_mel

__all__ = ["StftMel"]

_PREEMPHASIS = 0.97
_NORM_SHIFT, _NORM_SCALE = 4.5, 5.0


@register_frontend("stft_mel")
class StftMel(Frontend):
    """EfficientAT / PaSST log-mel spectrogram: waveform (B, N) → (B, 1, n_mels, T).

    ``T = 1 + (N - 1) // hop_length``. Inputs need at least 2 samples (``min_samples``). Upstream
    ``torch.stft`` fails for clips shorter than ``n_fft // 2 + 2`` samples (reflect padding needs
    more samples than it pads); here such clips are zero-padded at the end to that length before
    the STFT and the output is cut back to ``T`` frames, so every clip of >= 2 samples works and
    clips of the upstream-supported lengths are unchanged.

    Args:
        sample_rate: input sample rate (Hz).
        n_fft: FFT size.
        win_length: Hann window length (<= n_fft), centred inside the FFT frame.
        hop_length: samples between frames.
        n_mels: number of mel bins.
        fmin: lowest filterbank frequency (Hz).
        fmax: highest filterbank frequency (Hz); None means ``sample_rate // 2 - fmax_aug_range // 2``.
        fmin_aug_range: training jitter range of fmin (Hz, >= 1; 1 means no jitter).
        fmax_aug_range: training jitter range of fmax (Hz, >= 1; 1 means no jitter).
        freqm: maximum width of the training frequency mask (0 = none).
        timem: maximum width of the training time mask (0 = none).
        augment: apply the training-time augmentation in train mode.
        periodic_window: periodic Hann window (``torch.hann_window``'s default, PretrainedSED's
            fPaSST) instead of the symmetric one (EfficientAT, PaSST, PretrainedSED's frame_mn).
        log_mode: ``"add"``: ``log(mel + log_eps)`` (EfficientAT, PaSST); ``"clamp"``:
            ``log(max(mel, log_eps))`` (PretrainedSED).
        log_eps: the offset or floor of the log.

    Attributes:
        generator: optional ``torch.Generator`` used for every random draw of the augmentation
            (None = torch's global generator). Not part of :meth:`config`.

    The defaults are EfficientAT's and PaSST's 32 kHz settings: the one definition of them that
    every 32 kHz tag builds on.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        win_length: int = 800,
        hop_length: int = 320,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        fmin_aug_range: int = 10,
        fmax_aug_range: int = 2000,
        freqm: int = 0,
        timem: int = 0,
        augment: bool = False,
        periodic_window: bool = False,
        log_mode: str = "add",
        log_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        where = "stft_mel"
        sample_rate = check_int(sample_rate, "sample_rate", where)
        n_fft = check_int(n_fft, "n_fft", where, low=2)
        n_mels = check_int(n_mels, "n_mels", where)
        check_filterbank_size(n_mels, n_fft, where)
        win_length = check_int(win_length, "win_length", where)
        if win_length > n_fft:
            raise RegistryError(
                f"{where}: win_length must be in [1, n_fft={n_fft}], got {win_length}"
            )
        hop_length = check_int(hop_length, "hop_length", where)
        fmin_aug_range = check_int(fmin_aug_range, "fmin_aug_range", where)
        fmax_aug_range = check_int(fmax_aug_range, "fmax_aug_range", where)
        fmin = check_real(fmin, "fmin", where, low=0.0)
        fmax = check_real(fmax, "fmax", where, low=0.0, optional=True)
        check_bool(periodic_window, "periodic_window", where)
        check_choice(log_mode, "log_mode", where, ("add", "clamp"))
        log_eps = check_real(log_eps, "log_eps", where, low=0.0, strict_low=True)
        self._init_spec_augment(freqm, timem, augment, where)
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.fmin = fmin
        self.fmax = float(sample_rate // 2 - fmax_aug_range // 2 if fmax is None else fmax)
        self.fmin_aug_range = fmin_aug_range
        self.fmax_aug_range = fmax_aug_range
        self.periodic_window = periodic_window
        self.log_mode = log_mode
        self.log_eps = log_eps
        self.min_samples = 2  # pre-emphasis needs N - 1 >= 1
        self.register_buffer(
            "window", torch.hann_window(win_length, periodic=periodic_window), persistent=False
        )
        self.register_buffer(
            "mel_bank",
            kaldi_mel_banks(n_mels, n_fft, sample_rate, self.fmin, self.fmax),
            persistent=False,
        )
        self.window: torch.Tensor
        self.mel_bank: torch.Tensor
        self._mel_blocks = band_blocks(self.mel_bank)

    def num_frames(self, num_samples: int) -> int:
        if num_samples < self.min_samples:
            raise InvalidAudioError(
                f"stft_mel needs at least {self.min_samples} samples, got {num_samples}"
            )
        return 1 + (num_samples - 1) // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Args: waveform (B, N) float, N >= 2. Returns: (B, 1, n_mels, 1 + (N - 1) // hop) float32."""
        check_waveform(waveform, self.min_samples, "stft_mel")
        num_frames = self.num_frames(waveform.shape[-1])
        augmenting = self.augmenting
        with float32_no_autocast(waveform.device):
            x = waveform.to(torch.float32)
            if augmenting:  # one jittered bank per batch; its blocks only matter on the CPU
                bank = self._jittered_bank()
                blocks = band_blocks(bank) if bank.is_cpu else None
            else:
                bank, blocks = self.mel_bank, self._mel_blocks

            out = self._per_clip_then_batch(
                x,
                lambda chunk: self._log_mel(chunk, bank, blocks, num_frames),
                lambda logmel: logmel.add_(_NORM_SHIFT).div_(_NORM_SCALE),
            )
        return out.unsqueeze(1)

    def _log_mel(
        self,
        x: torch.Tensor,
        bank: torch.Tensor,
        blocks: tuple[Block, ...] | None,
        num_frames: int,
    ) -> torch.Tensor:
        """Steps 1-3 and the log: float32 (B, N) -> (B, n_mels, num_frames)."""
        # torch.stft's reflect padding needs more samples than it pads: N - 1 > n_fft // 2.
        short = self.n_fft // 2 + 2 - x.shape[-1]
        if short > 0:  # see the class docstring
            x = torch.nn.functional.pad(x, (0, short))
        # Valid convolution with [-0.97, 1], written as a difference: bit-identical, ~10x faster.
        x = x[:, 1:] - _PREEMPHASIS * x[:, :-1]  # (B, N - 1)
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            return_complex=True,
        )  # (B, n_fft // 2 + 1, T')
        # re² + im² (upstream: a sum over the real view; equal up to float32 rounding); adding
        # the two halves of the squared real view is ~4x faster than that size-2 reduction.
        squares = torch.view_as_real(spec).square()
        power = (squares[..., 0] + squares[..., 1])[..., :num_frames]
        mel = project_mel(bank, power, blocks)  # (n_mels, F) @ (B, F, T) -> (B, n_mels, T)
        # In place where autograd allows (no op saved this tensor): one large buffer fewer.
        if self.log_mode == "clamp":
            return mel.clamp_min_(self.log_eps).log()
        return mel.add_(self.log_eps).log()

    def _jittered_bank(self) -> torch.Tensor:
        """Filterbank with training-time randomised edges, on the frontend's device."""
        g = self.generator
        device = g.device if g is not None else torch.device("cpu")
        fmin_shift = int(torch.randint(self.fmin_aug_range, (1,), generator=g, device=device))
        fmax_shift = int(torch.randint(self.fmax_aug_range, (1,), generator=g, device=device))
        fmin = self.fmin + fmin_shift
        # Capped at Nyquist: an explicit fmax close to it would otherwise jitter past it.
        fmax = min(self.fmax + self.fmax_aug_range // 2 - fmax_shift, self.sample_rate / 2)
        bank = kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, fmin, fmax)
        return bank.to(self.mel_bank.device)

"""Unit tests of the frontends (no torchaudio needed).

Expected values come from naive references written here from the formulas in
``reference/upstream-models.md`` (float64 numpy loops) and from the EfficientAT fixture computed by
the upstream implementation; never from audiozoo's own output.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import audiozoo
from audiozoo._errors import AudioTypeError, InvalidAudioError
from audiozoo.frontends import (
    Frontend,
    KaldiFbank,
    MelSpectrogram,
    StftMel,
    _common,
    kaldi_mel_banks,
    melscale_fbanks,
)
from audiozoo.frontends.mel_projection import band_blocks, project_mel

FIXTURES = Path(
    os.environ.get("AUDIOZOO_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures")
)

# Small configurations of every frontend (cheap to run; the defaults are covered by the fixture
# and parity tests).
FACTORIES: dict[str, Callable[[], Frontend]] = {
    "stft_mel": lambda: StftMel(),
    "stft_mel_16k": lambda: StftMel(16000, 512, 400, 160, 64, fmax_aug_range=1000),
    "kaldi_fbank": lambda: KaldiFbank(n_mels=64, target_frames=50),
    "kaldi_fbank_natural": lambda: KaldiFbank(n_mels=64, target_frames=None),
    "kaldi_fbank_povey": lambda: KaldiFbank(n_mels=40, window="povey", target_frames=None),
    "mel": lambda: MelSpectrogram(),
    "mel_db_uncentred": lambda: MelSpectrogram(
        16000, 400, None, 160, n_mels=40, center=False, log="db", top_db=80.0
    ),
    "mel_constant_pad": lambda: MelSpectrogram(
        16000, 512, 400, 160, n_mels=64, pad_mode="constant", norm="slaney", mel_scale="slaney"
    ),
}
LENGTHS = [1, 2, 3, 159, 399, 400, 401, 512, 513, 514, 515, 1023, 1025, 4801, 16000]


def _build(name: str) -> Frontend:
    return FACTORIES[name]().eval()


def _noise(batch: int, n: int, seed: int = 0, scale: float = 0.3) -> torch.Tensor:
    return torch.randn(batch, n, generator=torch.Generator().manual_seed(seed)) * scale


# --------------------------------------------------------------------------- registry, config


def test_registered_names() -> None:
    assert audiozoo.get_frontend_class("stft_mel") is StftMel
    assert audiozoo.get_frontend_class("kaldi_fbank") is KaldiFbank
    assert audiozoo.get_frontend_class("mel") is MelSpectrogram


@pytest.mark.parametrize("name", FACTORIES)
def test_config_round_trip(name: str) -> None:
    fe = _build(name)
    config = json.loads(json.dumps(fe.config()))
    rebuilt = type(fe)(**config).eval()
    assert rebuilt.config() == fe.config()
    x = _noise(2, 3000)
    torch.testing.assert_close(rebuilt(x), fe(x), rtol=0, atol=0)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", FACTORIES)
def test_shape_follows_num_frames(name: str) -> None:
    fe = _build(name)
    for n in LENGTHS:
        if n < fe.min_samples:
            with pytest.raises(InvalidAudioError, match="at least"):
                fe(_noise(2, n))
            continue
        out = fe(_noise(2, n, seed=n))
        assert out.shape == (2, 1, fe.n_mels, fe.num_frames(n)), n
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_num_frames_formulas() -> None:
    stft = StftMel()
    assert stft.min_samples == 2
    assert [stft.num_frames(n) for n in (2, 320, 321, 322, 320000)] == [1, 1, 2, 2, 1000]
    kaldi = KaldiFbank(target_frames=None)
    assert [kaldi.num_frames(n) for n in (1, 399, 400, 559, 560, 160000)] == [1, 1, 1, 1, 2, 998]
    assert KaldiFbank().num_frames(17) == 1024
    mel = MelSpectrogram()
    assert [mel.num_frames(n) for n in (1, 319, 320, 32000)] == [1, 1, 2, 101]
    uncentred = MelSpectrogram(n_fft=1024, win_length=1024, hop_length=256, center=False)
    assert [uncentred.num_frames(n) for n in (1, 1024, 1279, 1280)] == [1, 1, 1, 2]


def test_bad_input_raises_clear_errors() -> None:
    fe = StftMel()
    with pytest.raises(InvalidAudioError, match="at least 2 samples"):
        fe(torch.zeros(1, 1))
    with pytest.raises(InvalidAudioError, match=r"\(batch, samples\)"):
        fe(torch.zeros(100))
    with pytest.raises(AudioTypeError, match="float"):
        fe(torch.zeros(1, 100, dtype=torch.int16))


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError, match="win_length"):
        StftMel(win_length=2048)
    with pytest.raises(ValueError, match="aug_range"):
        StftMel(fmin_aug_range=0)
    with pytest.raises(ValueError, match="window"):
        KaldiFbank(window="hann")
    with pytest.raises(ValueError, match="log"):
        MelSpectrogram(log="ln")
    with pytest.raises(ValueError, match="top_db"):
        MelSpectrogram(top_db=80.0)
    with pytest.raises(ValueError, match="mel bounds"):
        kaldi_mel_banks(64, 512, 16000, 100.0, 9000.0)


def test_short_clips_are_zero_padded() -> None:
    x = _noise(2, 250)
    kaldi = KaldiFbank(target_frames=None).eval()
    padded = torch.nn.functional.pad(x, (0, 150))
    torch.testing.assert_close(kaldi(x), kaldi(padded), rtol=0, atol=0)
    stft = StftMel().eval()
    # Upstream's torch.stft needs 514 samples; a shorter clip is zero-padded to that length and
    # its output cut back to 1 + (N - 1) // hop frames. Not bit-identical: the mel product runs
    # on 1 frame here and on 2 for the long clip, and BLAS rounds those shapes differently.
    long = stft(torch.nn.functional.pad(x, (0, 514 - 250)))
    torch.testing.assert_close(stft(x), long[..., : stft.num_frames(250)], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- buffers


@pytest.mark.parametrize("name", FACTORIES)
def test_buffers_non_persistent_and_built_once(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fe = _build(name)
    assert fe.state_dict() == {}
    buffers = dict(fe.named_buffers())
    assert set(buffers) in ({"window", "mel_bank"}, {"window_samples", "mel_bank"})
    # Any attempt to rebuild a filterbank during an eval forward fails the test.
    module = importlib.import_module(type(fe).__module__)
    for fn in ("kaldi_mel_banks", "melscale_fbanks"):
        monkeypatch.setattr(module, fn, _forbidden, raising=False)
    x = _noise(2, 5000)
    fe(x)
    fe(x)
    for key, buf in fe.named_buffers():
        assert buf is buffers[key]


def _forbidden(*args: object, **kwargs: object) -> torch.Tensor:
    raise AssertionError("filterbank rebuilt during an eval forward")


# --------------------------------------------------------------------------- dtypes, autocast


@pytest.mark.parametrize("name", FACTORIES)
def test_input_dtypes_give_float32(name: str) -> None:
    fe = _build(name)
    x = _noise(2, 4000)
    ref = fe(x)
    torch.testing.assert_close(fe(x.double()), ref, rtol=0, atol=0)
    half = x.half()
    out = fe(half)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fe(half.float()), rtol=0, atol=0)


@pytest.mark.parametrize("name", FACTORIES)
def test_autocast_does_not_change_output(name: str) -> None:
    fe = _build(name)
    x = _noise(2, 4000)
    ref = fe(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fe(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


# --------------------------------------------------------------------------- training augmentation

AUGMENTABLE: dict[str, Callable[..., Frontend]] = {
    "stft_mel": lambda **kw: StftMel(**kw),
    "kaldi_fbank": lambda **kw: KaldiFbank(target_frames=None, **kw),
    "mel": lambda **kw: MelSpectrogram(**kw),
}


@pytest.mark.parametrize("name", AUGMENTABLE)
def test_train_mode_without_augment_equals_eval(name: str) -> None:
    fe = AUGMENTABLE[name](freqm=20, timem=20, augment=False)
    x = _noise(3, 16000)
    torch.testing.assert_close(fe.train()(x), fe.eval()(x), rtol=0, atol=0)
    # augment=True changes nothing in eval mode
    fe_aug = AUGMENTABLE[name](freqm=20, timem=20, augment=True).eval()
    torch.testing.assert_close(fe_aug(x), fe(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", AUGMENTABLE)
def test_augment_is_seeded_by_generator(name: str) -> None:
    fe = AUGMENTABLE[name](freqm=20, timem=20, augment=True).train()
    x = _noise(4, 16000)
    outs = []
    for seed in (1, 1, 2):
        fe.generator = torch.Generator().manual_seed(seed)
        outs.append(fe(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], outs[2])
    assert not torch.equal(outs[0], fe.eval()(x))


@pytest.mark.parametrize("name", AUGMENTABLE)
def test_masks_are_iid_bands_set_before_normalisation(name: str) -> None:
    fe = AUGMENTABLE[name](freqm=30, timem=30, augment=True)
    if isinstance(fe, StftMel):  # keep the bank fixed so that only the masks change the output
        fe.fmin_aug_range = fe.fmax_aug_range = 1
    fe.generator = torch.Generator().manual_seed(0)
    x = _noise(8, 16000)
    clean = fe.eval()(x)[:, 0]
    masked = fe.train()(x)[:, 0]
    if isinstance(fe, StftMel):
        fill = 4.5 / 5  # log value 0 after (x + 4.5) / 5
    elif isinstance(fe, KaldiFbank):
        fill = -fe.mean / (2 * fe.std)
    else:
        fill = 0.0
    changed = masked != clean
    assert torch.all(masked[changed] == fill)
    rows = changed.all(dim=2)  # (B, F): masked frequency bins
    cols = changed.all(dim=1)  # (B, T): masked frames
    assert torch.all(changed == (rows[:, :, None] | cols[:, None, :]))
    for band in (rows, cols):  # each mask is one contiguous band, narrower than the maximum
        widths = band.sum(dim=1)
        assert torch.all(widths < 30)
        for b in range(band.shape[0]):
            idx = band[b].nonzero().flatten()
            if len(idx):
                assert idx[-1] - idx[0] + 1 == len(idx)
    assert len({tuple(r.nonzero().flatten().tolist()) for r in rows}) > 1  # iid per example


def test_stft_mel_jitter_rebuilds_bank_only_in_train() -> None:
    fe = StftMel(augment=True)
    bank = fe.mel_bank
    fe.generator = torch.Generator().manual_seed(3)
    x = _noise(2, 8000)
    jittered = fe.train()(x)
    assert fe.mel_bank is bank
    assert not torch.equal(jittered, fe.eval()(x))
    # the draws follow upstream: fmin + randint(10), 15000 + 1000 - randint(2000)
    g = torch.Generator().manual_seed(3)
    fmin = int(torch.randint(10, (1,), generator=g))
    fmax = 15000 + 1000 - int(torch.randint(2000, (1,), generator=g))
    expected = StftMel(fmin=fmin, fmax=fmax).eval()(x)
    torch.testing.assert_close(jittered, expected, rtol=0, atol=0)


# --------------------------------------------------------------------------- filterbanks vs naive


def _naive_kaldi_bank(n_mels: int, n_fft: int, sr: float, fmin: float, fmax: float) -> np.ndarray:
    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0)

    if fmax <= 0:
        fmax += sr / 2
    delta = (mel(fmax) - mel(fmin)) / (n_mels + 1)
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        left, center, right = (mel(fmin) + (i + j) * delta for j in range(3))
        for k in range(n_fft // 2):  # the Nyquist bin stays 0
            m = mel(k * sr / n_fft)
            if left < m < right:
                bank[i, k] = (
                    (m - left) / (center - left) if m <= center else (right - m) / (right - center)
                )
    return bank


@pytest.mark.parametrize(
    "args",
    [(128, 1024, 32000, 0.0, 15000.0), (128, 512, 16000, 20.0, 0.0), (40, 400, 16000, 5.0, -400.0)],
)
def test_kaldi_mel_banks_against_naive_loop(args: tuple) -> None:
    ours = kaldi_mel_banks(*args)
    assert ours.dtype == torch.float32
    assert ours.shape == (args[0], args[1] // 2 + 1)
    assert torch.all(ours[:, -1] == 0)
    # float32 (as torchaudio computes it) vs float64: a few 1e-5 at most
    np.testing.assert_allclose(ours.numpy(), _naive_kaldi_bank(*args), rtol=0, atol=5e-5)


def test_kaldi_mel_banks_documented_values() -> None:
    # reference/upstream-models.md §1.1: filter 0 has one non-zero weight, bin 1, value 0.1886
    bank = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    assert bank[0].nonzero().flatten().tolist() == [1]
    assert bank[0, 1].item() == pytest.approx(0.1886, abs=1e-4)


def _hz_to_mel(f: float, scale: str) -> float:
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + f / 700.0)
    return f * 3 / 200 if f < 1000 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)


def _mel_to_hz(m: float, scale: str) -> float:
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return m * 200 / 3 if m < 15.0 else 1000.0 * math.exp((m - 15.0) * math.log(6.4) / 27.0)


def _naive_melscale(n_freqs, f_min, f_max, n_mels, sr, norm, scale) -> np.ndarray:  # type: ignore[no-untyped-def]
    lo, hi = _hz_to_mel(f_min, scale), _hz_to_mel(f_max, scale)
    pts = [_mel_to_hz(lo + (hi - lo) * i / (n_mels + 1), scale) for i in range(n_mels + 2)]
    fb = np.zeros((n_freqs, n_mels))
    for k in range(n_freqs):
        f = (sr // 2) * k / (n_freqs - 1)
        for i in range(n_mels):
            left, center, right = pts[i : i + 3]
            w = max(0.0, min((f - left) / (center - left), (right - f) / (right - center)))
            fb[k, i] = w * (2.0 / (right - left) if norm == "slaney" else 1.0)
    return fb


@pytest.mark.parametrize("scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", [None, "slaney"])
def test_melscale_fbanks_against_naive_loop(scale: str, norm: str | None) -> None:
    args = (257, 30.0, 7600.0, 40, 16000)
    ours = melscale_fbanks(*args, norm=norm, mel_scale=scale)
    assert ours.shape == (257, 40)
    ref = _naive_melscale(*args, norm, scale)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=5e-5 * ref.max())


def test_melscale_fbanks_warns_on_empty_filters() -> None:
    with pytest.warns(UserWarning, match="all zero"):
        melscale_fbanks(33, 0.0, 8000.0, 64, 16000)


# --------------------------------------------------------------------------- banded mel product


@pytest.mark.parametrize(
    "bank",
    [
        kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0),
        kaldi_mel_banks(128, 512, 16000, 20.0, 8000.0),
        kaldi_mel_banks(5, 64, 16000, 0.0, 8000.0),  # fewer rows than blocks
        pytest.param(None, id="empty_filters"),
    ],
)
def test_project_mel_equals_dense_product(bank: torch.Tensor | None) -> None:
    if bank is None:  # melscale bank with all-zero filters: their rows must come out zero
        with pytest.warns(UserWarning, match="all zero"):
            bank = melscale_fbanks(33, 0.0, 8000.0, 64, 16000).T.contiguous()
    blocks = band_blocks(bank)
    # the blocks tile the rows, and every non-zero weight lies inside its block's bin range
    assert [b[0] for b in blocks] == [0] + [b[1] for b in blocks[:-1]]
    assert blocks[-1][1] == bank.shape[0]
    for r0, r1, c0, c1 in blocks:
        outside = bank[r0:r1].clone()
        outside[:, c0:c1] = 0
        assert not outside.any()
    power = torch.rand(3, bank.shape[1], 50, generator=torch.Generator().manual_seed(0))
    dense = torch.matmul(bank, power)
    torch.testing.assert_close(project_mel(bank, power, blocks), dense, rtol=1e-6, atol=1e-6)
    # any strides: the Kaldi frontend passes a transposed (B, T, F) spectrogram
    transposed = power.transpose(1, 2).contiguous().transpose(1, 2)
    torch.testing.assert_close(project_mel(bank, transposed, blocks), dense, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- CPU batch chunks


@pytest.mark.parametrize(
    "name", ["stft_mel", "kaldi_fbank_natural", "kaldi_fbank", "mel", "mel_db_uncentred"]
)
def test_cpu_chunks_give_the_whole_batch_result(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    frontend = _build(name)
    x = _noise(5, 4000)
    whole = frontend(x)
    monkeypatch.setattr(_common, "CPU_CHUNK_SAMPLES", 8000)  # chunks of 2, 2, 1 clips
    assert [len(c) for c in _common.cpu_batch_chunks(x)] == [2, 2, 1]
    # equal up to rounding: BLAS may block the mel product of another batch size differently
    torch.testing.assert_close(frontend(x), whole, rtol=1e-6, atol=1e-5)
    monkeypatch.setattr(_common, "CPU_CHUNK_SAMPLES", 1)  # a clip per chunk even when it is longer
    assert len(_common.cpu_batch_chunks(x)) == 5
    torch.testing.assert_close(frontend(x), whole, rtol=1e-6, atol=1e-5)


def test_cpu_chunks_keep_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "CPU_CHUNK_SAMPLES", 1)
    x = _noise(3, 3000).requires_grad_()
    KaldiFbank(n_mels=40, target_frames=None)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stft_mel", "kaldi_fbank_natural"])
def test_export_and_trace_do_not_chunk(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torch.export and torch.jit.trace the batch is not split: the graph holds one FFT,
    and a graph traced on a batch that eager mode would chunk runs on other batch sizes."""
    monkeypatch.setattr(_common, "CPU_CHUNK_SAMPLES", 1)
    frontend = _build(name)
    x, other = _noise(3, 4000), _noise(5, 4000, seed=1)
    program = torch.export.export(frontend, (x,))
    ffts = [n for n in program.graph.nodes if any(op in str(n.target) for op in ("fft", "stft"))]
    assert len(ffts) == 1, ffts
    torch.testing.assert_close(program.module()(x), frontend(x), rtol=1e-5, atol=1e-5)
    torch_version = tuple(int(part) for part in torch.__version__.split(".")[:2])
    if torch_version >= (2, 5):  # torch 2.4 cannot trace an FFT with a symbolic batch
        batch = torch.export.Dim("batch", min=1, max=64)
        program = torch.export.export(frontend, (x,), dynamic_shapes=({0: batch},))
        torch.testing.assert_close(program.module()(other), frontend(other), rtol=1e-5, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning; trace is deprecated in torch >= 2.10
        traced = torch.jit.trace(frontend, (x,), check_trace=False)
    torch.testing.assert_close(traced(other), frontend(other), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- full pipelines vs naive


def _naive_kaldi_fbank(wave: np.ndarray, fe: KaldiFbank) -> np.ndarray:
    """One clip, float64, frame by frame, straight from reference/upstream-models.md §1.2/§4.1."""
    win, shift, n_fft = fe.win_length, fe.hop_length, fe.n_fft
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / (win - 1)) for n in range(win)])
    bank = _naive_kaldi_bank(fe.n_mels, n_fft, fe.sample_rate, fe.low_freq, fe.high_freq)
    rows = []
    for t in range(1 + (len(wave) - win) // shift):
        frame = wave[t * shift : t * shift + win].astype(np.float64)
        frame = frame - frame.mean()
        emph = np.empty_like(frame)
        for j in range(win):
            emph[j] = frame[j] - 0.97 * frame[max(0, j - 1)]
        spec = np.abs(np.fft.rfft(np.concatenate([emph * window, np.zeros(n_fft - win)]))) ** 2
        rows.append(np.log(np.maximum(bank @ spec, np.finfo(np.float32).eps)))
    logmel = np.stack(rows, axis=1)  # (F, T)
    if fe.target_frames is not None:
        logmel = logmel[:, : fe.target_frames]
        logmel = np.pad(logmel, ((0, 0), (0, fe.target_frames - logmel.shape[1])))
    return (logmel - fe.mean) / (2 * fe.std)


def test_kaldi_fbank_against_naive_reference() -> None:
    fe = KaldiFbank(target_frames=20).eval()
    x = _noise(2, 2500, seed=5)
    ours = fe(x)[:, 0].numpy()
    for b in range(2):
        np.testing.assert_allclose(ours[b], _naive_kaldi_fbank(x[b].numpy(), fe), atol=1e-4)


def _naive_stft_power(
    wave: np.ndarray, n_fft: int, win: int, hop: int, window: np.ndarray
) -> np.ndarray:
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    full = np.zeros(n_fft)
    full[(n_fft - win) // 2 : (n_fft - win) // 2 + win] = window
    frames = [
        np.abs(np.fft.rfft(padded[t * hop : t * hop + n_fft] * full)) ** 2
        for t in range(1 + (len(padded) - n_fft) // hop)
    ]
    return np.stack(frames, axis=1)  # (n_fft // 2 + 1, T)


def test_mel_spectrogram_against_naive_reference() -> None:
    fe = MelSpectrogram(16000, 512, 400, 160, n_mels=40, f_min=20.0, f_max=7000.0).eval()
    x = _noise(1, 3000, seed=7)
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    power = _naive_stft_power(x[0].numpy(), 512, 400, 160, periodic_hann)
    fb = _naive_melscale(257, 20.0, 7000.0, 40, 16000, None, "htk")
    ref = np.log(fb.T @ power + 1e-5)
    np.testing.assert_allclose(fe(x)[0, 0].numpy(), ref, atol=1e-4)


def test_stft_mel_against_naive_reference() -> None:
    fe = StftMel(16000, 512, 400, 160, 64, fmax_aug_range=1000).eval()
    x = _noise(1, 3000, seed=9)
    w = x[0].numpy().astype(np.float64)
    emph = w[1:] - 0.97 * w[:-1]  # valid convolution with [-0.97, 1]
    symmetric_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)
    power = _naive_stft_power(emph, 512, 400, 160, symmetric_hann)
    bank = _naive_kaldi_bank(64, 512, 16000, 0.0, 7500.0)
    ref = (np.log(bank @ power + 1e-5) + 4.5) / 5
    np.testing.assert_allclose(fe(x)[0, 0].numpy(), ref, atol=1e-4)


def test_preemphasis_difference_equals_valid_conv() -> None:
    x = _noise(3, 10000)
    conv = torch.nn.functional.conv1d(x[:, None], torch.tensor([[[-0.97, 1.0]]]))[:, 0]
    torch.testing.assert_close(x[:, 1:] - 0.97 * x[:, :-1], conv, rtol=0, atol=0)


# --------------------------------------------------------------------------- EfficientAT fixture


def test_stft_mel_matches_efficientat_fixture() -> None:
    path = FIXTURES / "efficientat" / "mn10_as.safetensors"
    if not path.exists():
        pytest.skip(f"EfficientAT fixture not found at {path} (set AUDIOZOO_FIXTURES)")
    from safetensors.torch import load_file

    data = load_file(str(path))
    out = StftMel().eval()(data["waveform"])
    assert out.shape == (2, 1, *data["mel"].shape[1:])
    diff = (out[:, 0] - data["mel"]).abs().max().item()
    assert diff <= 1e-4, diff


# --------------------------------------------------------------------------- property tests


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(FACTORIES)),
    n=st.integers(min_value=1, max_value=6000),
    log_amp=st.floats(min_value=-8.0, max_value=3.0, allow_subnormal=False),
    batch=st.integers(min_value=1, max_value=3),
)
def test_any_length_and_amplitude_gives_finite_output(
    name: str, n: int, log_amp: float, batch: int
) -> None:
    fe = _build(name)
    if n < fe.min_samples:
        n = fe.min_samples
    x = _noise(batch, n, seed=n) * 10.0**log_amp
    out = fe(x)
    assert out.shape == (batch, 1, fe.n_mels, fe.num_frames(n))
    assert torch.isfinite(out).all()


@settings(max_examples=10, deadline=None)
@given(n=st.integers(min_value=2, max_value=3000))
def test_silence_gives_finite_output(n: int) -> None:
    for name in FACTORIES:
        fe = _build(name)
        assert torch.isfinite(fe(torch.zeros(1, n))).all()

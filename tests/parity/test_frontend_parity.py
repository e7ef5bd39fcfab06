"""Frontends, filterbanks and resampling against the upstream implementations.

Runs in the parity environment (torchaudio, transformers, hear21passt); skipped elsewhere.
Tolerance: max abs difference <= 1e-4 everywhere (the filterbanks are bit-identical).
"""

from __future__ import annotations

import itertools

import pytest
import torch

torchaudio = pytest.importorskip(
    "torchaudio", reason="parity tests need torchaudio (nox -s parity)"
)
kaldi = pytest.importorskip("torchaudio.compliance.kaldi")

from audiozoo.frontends import (  # noqa: E402
    KaldiFbank,
    MelSpectrogram,
    StftMel,
    kaldi_mel_banks,
    melscale_fbanks,
)
from audiozoo.resample import resample  # noqa: E402
from tests.parity_report import record_parity  # noqa: E402

pytestmark = [
    pytest.mark.parity,
    # upstream's own deprecation noise (hear21passt's stft/autocast calls)
    pytest.mark.filterwarnings("ignore:stft with return_complex=False:UserWarning"),
    pytest.mark.filterwarnings("ignore:`torch.cuda.amp.autocast:FutureWarning"),
]

ATOL = 1e-4


def _noise(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    # uniform in [-1, 1): full-scale audio, the hardest case for absolute tolerances
    return torch.rand(batch, n, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item()


# --------------------------------------------------------------------------- filterbanks


@pytest.mark.parametrize(
    "args",
    [
        (128, 1024, 32000, 0.0, 15000.0),  # EfficientAT / PaSST eval
        (128, 1024, 32000, 7.0, 14321.0),  # a training jitter draw
        (64, 1024, 32000, 0.0, 15000.0),
        (256, 1024, 32000, 0.0, 15000.0),
        (128, 512, 16000, 20.0, 0.0),  # AST (high 0 = Nyquist)
        (40, 400, 16000, 5.0, -400.0),  # negative high = offset from Nyquist
    ],
)
def test_kaldi_mel_banks(args: tuple) -> None:
    ref, _ = kaldi.get_mel_banks(*args, 100.0, -500.0, 1.0)
    ref = torch.nn.functional.pad(ref, (0, 1))
    diff = _max_diff(kaldi_mel_banks(*args), ref)
    record_parity("kaldi_mel_banks vs torchaudio get_mel_banks", "6 settings", {"abs": diff})
    assert diff == 0.0


@pytest.mark.parametrize(
    ("mel_scale", "norm"), list(itertools.product(["htk", "slaney"], [None, "slaney"]))
)
@pytest.mark.parametrize(
    "args",
    [
        (513, 0.0, 16000.0, 128, 32000),
        (201, 50.0, 7000.0, 64, 16000),
        (1025, 0.0, 22050.0, 80, 44100),
    ],
)
def test_melscale_fbanks(args: tuple, mel_scale: str, norm: str | None) -> None:
    ref = torchaudio.functional.melscale_fbanks(*args, norm=norm, mel_scale=mel_scale)
    diff = _max_diff(melscale_fbanks(*args, norm=norm, mel_scale=mel_scale), ref)
    record_parity("melscale_fbanks vs torchaudio", "HTK and Slaney", {"abs": diff})
    assert diff == 0.0


# --------------------------------------------------------------------------- StftMel vs hear21passt


@pytest.fixture(scope="module")
def augment_mel_stft() -> type:
    preprocess = pytest.importorskip("hear21passt.models.preprocess")
    return preprocess.AugmentMelSTFT


@pytest.mark.parametrize("hop", [320, 160, 100])
@pytest.mark.parametrize("n", [514, 1001, 32000, 32319, 96001])
def test_stft_mel_eval_vs_hear21passt(augment_mel_stft: type, hop: int, n: int) -> None:
    upstream = augment_mel_stft(
        n_mels=128,
        sr=32000,
        win_length=800,
        hopsize=hop,
        n_fft=1024,
        freqm=48,
        timem=192,
        fmin=0.0,
        fmax=None,
        fmin_aug_range=10,
        fmax_aug_range=2000,
    ).eval()
    ours = StftMel(hop_length=hop).eval()
    x = _noise(2, n, seed=n + hop)
    with torch.no_grad():
        ref = upstream(x)
    diff = _max_diff(ours(x)[:, 0], ref)
    record_parity("StftMel vs hear21passt AugmentMelSTFT (eval)", f"hop {hop}", {"abs": diff})
    assert diff <= ATOL


@pytest.mark.parametrize("n_mels", [64, 256])
def test_stft_mel_mel_variants_vs_hear21passt(augment_mel_stft: type, n_mels: int) -> None:
    upstream = augment_mel_stft(n_mels=n_mels, fmin_aug_range=10, fmax_aug_range=2000).eval()
    x = _noise(2, 16000, seed=n_mels)
    with torch.no_grad():
        ref = upstream(x)
    assert _max_diff(StftMel(n_mels=n_mels).eval()(x)[:, 0], ref) <= ATOL


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stft_mel_train_jitter_vs_hear21passt(augment_mel_stft: type, seed: int) -> None:
    # Without masks the only randomness is the two randint draws (fmin, then fmax), which
    # upstream takes from the global generator and we from `generator`: same seed, same draws.
    upstream = augment_mel_stft(freqm=0, timem=0, fmin_aug_range=10, fmax_aug_range=2000).train()
    ours = StftMel(augment=True).train()
    ours.generator = torch.Generator().manual_seed(seed)
    x = _noise(2, 20000, seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        ref = upstream(x)
    diff = _max_diff(ours(x)[:, 0], ref)
    record_parity(
        "StftMel vs hear21passt AugmentMelSTFT (train, fmin/fmax jitter)", "3 seeds", {"abs": diff}
    )
    assert diff <= ATOL


# --------------------------------------------------------------------------- KaldiFbank


def _ast_reference(clip: torch.Tensor, target: int | None) -> torch.Tensor:
    """AST's dataloader on one clip: kaldi.fbank, pad/trim, normalise; returned as (F, T)."""
    fb = kaldi.fbank(
        clip[None],
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=128,
        dither=0.0,
        frame_shift=10,
    )
    if target is not None:
        missing = target - fb.shape[0]
        fb = torch.nn.functional.pad(fb, (0, 0, 0, missing)) if missing > 0 else fb[:target]
    return ((fb - -4.2677393) / (4.5689974 * 2)).T


@pytest.mark.parametrize("target", [1024, None])
@pytest.mark.parametrize("n", [400, 401, 559, 560, 12345, 160000, 170000])
def test_kaldi_fbank_vs_torchaudio(n: int, target: int | None) -> None:
    x = _noise(2, n, seed=n)
    ours = KaldiFbank(target_frames=target).eval()(x)[:, 0]
    for b in range(2):
        diff = _max_diff(ours[b], _ast_reference(x[b], target))
        record_parity(
            "KaldiFbank vs torchaudio kaldi.fbank (AST pipeline)", f"target {target}", {"abs": diff}
        )
        assert diff <= ATOL


def test_kaldi_fbank_short_clip_is_zero_padded_to_one_frame() -> None:
    x = _noise(1, 123)
    ours = KaldiFbank(target_frames=None).eval()(x)[0, 0]
    ref = _ast_reference(torch.nn.functional.pad(x[0], (0, 400 - 123)), None)
    assert _max_diff(ours, ref) <= ATOL


def test_kaldi_fbank_vs_ast_feature_extractor() -> None:
    transformers = pytest.importorskip("transformers")
    extractor = transformers.ASTFeatureExtractor()
    x = _noise(3, 50000, seed=3)
    x[2, 30000:] = 0.0  # trailing silence
    ref = extractor([c.numpy() for c in x], sampling_rate=16000, return_tensors="pt")[
        "input_values"
    ]
    ours = KaldiFbank().eval()(x)[:, 0]
    diff = _max_diff(ours, ref.transpose(1, 2))
    record_parity("KaldiFbank vs transformers ASTFeatureExtractor", "3 clips", {"abs": diff})
    assert diff <= ATOL


# --------------------------------------------------------------------------- MelSpectrogram

MEL_CONFIGS = [
    dict(sample_rate=32000, n_fft=1024, win_length=800, hop_length=320, n_mels=128),
    dict(
        sample_rate=16000,
        n_fft=512,
        win_length=400,
        hop_length=160,
        n_mels=64,
        f_min=50.0,
        f_max=7600.0,
        norm="slaney",
        mel_scale="slaney",
    ),
    dict(
        sample_rate=22050,
        n_fft=2048,
        win_length=None,
        hop_length=None,
        n_mels=80,
        power=1.0,
        center=False,
    ),
    dict(
        sample_rate=16000,
        n_fft=400,
        win_length=400,
        hop_length=160,
        n_mels=128,
        pad_mode="constant",
        mel_scale="slaney",
    ),
]


@pytest.mark.parametrize("config", MEL_CONFIGS)
@pytest.mark.parametrize("n", [2049, 16001, 32000])
def test_mel_spectrogram_vs_torchaudio(config: dict, n: int) -> None:
    x = _noise(2, n, seed=n)
    ref_power = torchaudio.transforms.MelSpectrogram(**config)(x)  # (B, F, T)
    power = MelSpectrogram(**config, log=None).eval()(x)[:, 0]
    # raw (mel) power spans ~1e4: compare relative to its scale
    assert _max_diff(power, ref_power) <= ATOL * ref_power.abs().max().item()
    ref_log = (ref_power + 1e-5).log()
    assert _max_diff(MelSpectrogram(**config).eval()(x)[:, 0], ref_log) <= ATOL
    # AmplitudeToDB on (B, 1, F, T) clips at top_db below each clip's own maximum
    ref_db = torchaudio.transforms.AmplitudeToDB(top_db=80.0)(ref_power[:, None])
    ours_db = MelSpectrogram(**config, log="db", top_db=80.0).eval()(x)
    diff_db = _max_diff(ours_db, ref_db)
    record_parity(
        "MelSpectrogram vs torchaudio MelSpectrogram (+ AmplitudeToDB)",
        "4 configs",
        {"dB abs": diff_db},
    )
    assert diff_db <= ATOL


# --------------------------------------------------------------------------- resample

RATE_PAIRS = [(44100, 32000), (48000, 16000), (16000, 32000), (8000, 16000), (22050, 32000)]


@pytest.mark.parametrize(("orig", "new"), RATE_PAIRS)
@pytest.mark.parametrize("method", ["sinc_interp_hann", "sinc_interp_kaiser"])
@pytest.mark.parametrize("n", [1, 7, 999, 16001])
def test_resample_vs_torchaudio(orig: int, new: int, method: str, n: int) -> None:
    x = _noise(2, n, seed=n)
    ours = resample(x, orig, new, resampling_method=method)
    ref = torchaudio.functional.resample(x, orig, new, resampling_method=method)
    assert ours.shape == ref.shape
    if n:
        diff = _max_diff(ours, ref)
        record_parity("resample vs torchaudio (float32)", method, {"abs": diff})
        assert diff <= ATOL
    # Our kernel is computed in float64 even for float32 audio; torchaudio's float32 kernel is the
    # larger error (up to ~7e-5 for 22.05k -> 32k). Against torchaudio in float64 we agree to 1e-6.
    ref64 = torchaudio.functional.resample(x.double(), orig, new, resampling_method=method)
    diff64 = _max_diff(ours, ref64)
    record_parity("resample vs torchaudio (float64 reference)", method, {"abs": diff64})
    assert diff64 <= 1e-6

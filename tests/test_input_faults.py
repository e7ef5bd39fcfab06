"""Hostile inputs at the API boundary (issue 16): each test names the fault it pins down.

Layouts that are not audio (samples, channels), clips shorter than an analysis window, bad sample
rates, amplitudes that overflow float32 spectra, odd tensor kinds, low-precision models, freezing
back and forth, and the frame count of a clip that fits into one transformer window.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo import AudioTypeError, InvalidAudioError, RegistryError
from audiozoo.resample import resample

SMALL = {"embed_dim": 32, "depth": 1, "num_heads": 2}


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 0.1


@pytest.fixture(scope="module")
def mn() -> audiozoo.AudioModel:
    torch.manual_seed(0)
    return audiozoo.create("mn01", pretrained=False).eval()


@pytest.fixture(scope="module")
def sed() -> audiozoo.AudioModel:
    torch.manual_seed(0)
    return audiozoo.create("mn01", pretrained=False, head="sed", num_classes=3).eval()


# ------------------------------------------------------------------ 6: (samples, channels)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros((132300, 2), dtype=np.float32),  # soundfile.read of 3 s stereo
        lambda: torch.zeros(4410, 2),
        lambda: torch.zeros(64, 8),  # the boundary: 8 columns, 64 rows
    ],
)
def test_samples_by_channels_is_refused_with_the_fix(mn, make) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidAudioError, match=r"\(samples, channels\).*\.T"):
        mn(make())
    assert time.perf_counter() - start < 1.0  # refused before any work


def test_batched_samples_by_channels_and_list_items_are_refused(mn) -> None:
    with pytest.raises(InvalidAudioError, match=r"\(samples, channels\).*transpose"):
        mn(torch.zeros(2, 4410, 2))
    with pytest.raises(InvalidAudioError, match=r"waveform\[1\].*\(samples, channels\).*\.T"):
        mn([torch.zeros(3000), np.zeros((4410, 2), dtype=np.float32)])


def test_short_batches_below_the_boundary_still_run(mn) -> None:
    """A genuine batch of very short clips (fewer than 64 rows, or more than 8 samples) runs,
    with the short-clip warning, which also hints at the transposed layout."""
    for shape in ((63, 8), (64, 9), (4, 2)):
        with pytest.warns(UserWarning, match=r"samples, channels"):
            out = mn(_noise(*shape))
        assert out.shape == (shape[0], 527) and torch.isfinite(out).all()


# ------------------------------------------------------------------ 7: shorter than a window


def test_clip_shorter_than_one_window_warns_at_the_callers_line(mn) -> None:
    with pytest.warns(UserWarning, match=r"3 samples.*800 samples") as record:
        mn(_noise(3))
    assert len(record) == 1
    assert record[0].filename == __file__  # stacklevel: the user's call, not audiozoo or torch


def test_one_warning_per_call_for_a_list_and_none_at_the_window(mn, sed) -> None:
    with pytest.warns(UserWarning, match=r"2 clips.*shortest 5 samples") as record:
        mn.embed([_noise(5), _noise(7), _noise(2000)])
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mn(_noise(1, 800))
        mn.embed([_noise(800), _noise(2000)])
        sed(_noise(1, 800))  # fixed 10 s windows: padding is the head's design, not a fault


def test_short_warning_counts_samples_at_the_model_rate(mn) -> None:
    with pytest.warns(UserWarning, match=r"726 samples"):  # 1000 samples at 44.1 kHz
        mn(_noise(1000), sample_rate=44100)


# ------------------------------------------------------------------ 8: sample rates


BAD_RATES = [44100.5, 1.9, True, 0, -1, float("nan"), float("inf"), [44100], "44100"]


@pytest.mark.parametrize("rate", BAD_RATES, ids=repr)
def test_bad_sample_rates_are_refused_at_every_entry(mn, sed, rate) -> None:
    wave = _noise(1, 4000)
    calls = [
        lambda: mn(wave, sample_rate=rate),
        lambda: mn.embed(wave, sample_rate=rate),
        lambda: mn.clip_logits(wave, sample_rate=rate),
        lambda: mn([wave[0]], sample_rate=rate),
        lambda: sed.frame_and_clip_logits(wave, sample_rate=rate),
    ]
    for call in calls:
        with pytest.raises(InvalidAudioError, match=r"sample_rate.*positive integer"):
            call()


def test_integral_rates_of_any_numeric_type_are_accepted(mn) -> None:
    wave = _noise(1, 4410)
    with torch.no_grad():
        ref = mn(wave, sample_rate=44100)
        for rate in (44100.0, np.int64(44100), np.float32(44100.0), np.int32(44100)):
            torch.testing.assert_close(mn(wave, sample_rate=rate), ref, rtol=0, atol=0)


def test_rates_in_khz_are_refused(mn) -> None:
    with pytest.raises(InvalidAudioError, match=r"sample_rate=16 .*16000"):
        mn(_noise(1, 4000), sample_rate=16)


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), [44100], None])
def test_resample_names_its_argument(rate) -> None:
    with pytest.raises(InvalidAudioError, match="orig_freq"):
        resample(torch.zeros(10), rate, 32000)  # type: ignore[arg-type]


def test_coprime_rates_that_need_a_gigabyte_kernel_are_refused(mn) -> None:
    """44101 -> 32000 Hz reduces to 44101:32000: a 32000 x 44119 float64 kernel (11 GB)."""
    start = time.perf_counter()
    with pytest.raises(InvalidAudioError, match=r"44101 Hz.*GB"):
        resample(torch.zeros(1, 100), 44101, 32000)
    with pytest.raises(InvalidAudioError, match=r"44101 Hz.*GB"):
        mn(_noise(1, 4000), sample_rate=44101)
    assert time.perf_counter() - start < 1.0
    # odd but real rates still work: 44056 Hz (NTSC-locked CD audio)
    assert resample(torch.zeros(1, 441), 44056, 32000).shape == (1, 321)


# ------------------------------------------------------------------ 12: freezing


def _stage_flags(model: audiozoo.AudioModel) -> list[tuple[bool, bool]]:
    """(all parameters trainable, all modules in train mode) per backbone stage (a stage may be
    a fresh wrapper such as a Sequential slice: its own flag means nothing, its modules' do)."""
    flags = []
    for stage in model.backbone.stages():
        modes = {m.training for m in list(stage.modules())[1:]} or {stage.training}
        assert len(modes) == 1, "a stage half in train mode"
        flags.append((all(p.requires_grad for p in stage.parameters()), modes.pop()))
    return flags


def test_freeze_moves_both_ways_and_keeps_modes_consistent() -> None:
    model = audiozoo.create("mn01", pretrained=False, freeze=True).train()
    n = len(model.backbone.stages())
    assert _stage_flags(model) == [(False, False)] * n
    model.freeze(2)
    assert _stage_flags(model) == [(False, False)] * 2 + [(True, True)] * (n - 2)
    assert not model.frontend.training and not model.frozen
    model.freeze(False)
    assert _stage_flags(model) == [(True, True)] * n
    assert all(p.requires_grad for p in model.parameters())
    model.freeze(3)
    model.eval().train()  # train() after freeze keeps the frozen stages in eval
    assert _stage_flags(model) == [(False, False)] * 3 + [(True, True)] * (n - 3)


def test_partially_refrozen_batchnorm_statistics_stay_fixed() -> None:
    model = audiozoo.create("mn01", pretrained=False, freeze=True)
    model.freeze(2).train()
    stages = model.backbone.stages()
    bn = [[m for m in s.modules() if isinstance(m, torch.nn.BatchNorm2d)] for s in stages]
    before = [[b.running_mean.clone() for b in group] for group in bn]
    model(_noise(2, 8000))
    for k, group in enumerate(bn):
        moved = [
            not torch.equal(b.running_mean, old) for b, old in zip(group, before[k], strict=True)
        ]
        assert (not any(moved)) if k < 2 else all(moved), k


def test_unfreezing_restores_only_what_freeze_changed() -> None:
    model = audiozoo.create("mn01", pretrained=False)
    last = model.backbone.stages()[-1]
    mine = next(last.parameters())
    mine.requires_grad_(False)  # the user's own choice
    model.freeze(True)
    model.freeze(False)
    assert not mine.requires_grad
    assert all(p.requires_grad for p in model.parameters() if p is not mine)


@pytest.mark.parametrize("bad", [1.5, "3", None, [1], -1, 99])
def test_bad_freeze_arguments_are_refused(bad) -> None:
    model = audiozoo.create("mn01", pretrained=False)
    with pytest.raises(RegistryError, match="freeze"):
        model.freeze(bad)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(RegistryError, match="freeze"):
        audiozoo.create("mn01", pretrained=False, freeze=bad)


def test_numpy_integer_freeze_is_accepted() -> None:
    model = audiozoo.create("mn01", pretrained=False, freeze=np.int64(2))
    assert [f for f, _ in _stage_flags(model)][:3] == [False, False, True]


# ------------------------------------------------------------------ 13: amplitude


def test_amplitude_that_overflows_float32_spectra_is_refused(mn) -> None:
    t = torch.arange(32000, dtype=torch.float64) / 32000
    sine = torch.sin(2 * math.pi * 1000 * t)[None]
    with pytest.raises(InvalidAudioError, match=r"peak amplitude 1e\+16.*normali"):
        mn(sine * 1e16)
    with pytest.raises(InvalidAudioError, match=r"beyond the float32 range") as info:
        mn(sine * 1e39)
    assert "NaN" not in str(info.value)
    nan = sine.clone()
    nan[0, 5] = float("nan")
    with pytest.raises(InvalidAudioError, match="NaN or Inf"):
        mn(nan)


def test_unnormalised_pcm_ranges_still_run(mn) -> None:
    """int16 and int32 full scale stored as floats are far below the bound: finite outputs."""
    wave = _noise(1, 8000)
    for scale in (2.0**15, 2.0**31):
        assert torch.isfinite(mn(wave / wave.abs().max() * scale)).all()


def test_every_shipped_frontend_is_finite_at_its_max_amplitude() -> None:
    """The bound holds for the worst signals: a full-scale sine at 1 kHz, a square wave at half
    Nyquist, DC and the Nyquist alternation."""
    configs = {
        repr(audiozoo.get_pretrained_cfg(n).frontend): audiozoo.get_pretrained_cfg(n).frontend
        for n in audiozoo.list_models(pretrained=True)
    }
    for cfg in configs.values():
        fe = audiozoo.build_frontend(cfg).eval()
        sr, n = fe.sample_rate, fe.sample_rate // 4
        t = torch.arange(n, dtype=torch.float64) / sr
        signals = [
            torch.sin(2 * math.pi * 1000 * t),
            torch.sign(torch.sin(2 * math.pi * sr / 4 * t + 0.1)),
            torch.ones(n, dtype=torch.float64),
            (-1.0) ** torch.arange(n, dtype=torch.float64),
        ]
        peak = fe.max_amplitude
        batch = (torch.stack(signals) * peak).float()
        with torch.no_grad():
            assert torch.isfinite(fe(batch)).all(), cfg


# ------------------------------------------------------------------ 17: float16 / bfloat16


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mn01", "passt_s", "ast"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_run_with_a_float32_frontend(arch, dtype) -> None:
    torch.manual_seed(0)
    kwargs = {} if arch == "mn01" else SMALL
    ref_model = audiozoo.create(arch, pretrained=False, **kwargs).eval()
    model = audiozoo.create(arch, pretrained=False, **kwargs).eval()
    model.load_state_dict(ref_model.state_dict())
    model = model.half() if dtype == torch.float16 else model.to(dtype)
    buffers = list(model.frontend.buffers())
    assert buffers and all(b.dtype == torch.float32 for b in buffers if b.is_floating_point())
    assert next(model.backbone.parameters()).dtype == dtype
    wave = _noise(2, 2 * model.sample_rate)
    with torch.no_grad():
        ref, out = ref_model(wave), model(wave)
        listed = model([wave[0], wave[1, :20000]])
    assert out.dtype == dtype and listed.dtype == dtype
    # float16 keeps ~3 decimal digits, bfloat16 ~2: relative to the logits' spread
    tol = (1e-2 if dtype == torch.float16 else 5e-2) * float(ref.abs().max())
    torch.testing.assert_close(out.float(), ref, rtol=0, atol=tol)
    # the frontend's filterbanks and windows were never rounded: back in float32 it is exact
    with torch.no_grad():
        spec = model.float().frontend(wave)
        torch.testing.assert_close(spec, ref_model.frontend(wave), rtol=0, atol=0)


# ------------------------------------------------------------------ 24: tensor kinds and lists


def test_negative_stride_and_big_endian_numpy_arrays(mn) -> None:
    wave = _noise(2, 8000).numpy()
    with torch.no_grad():
        ref = mn(torch.from_numpy(wave[:, ::-1].copy()))
        torch.testing.assert_close(mn(wave[:, ::-1]), ref)
        torch.testing.assert_close(mn(list(wave[:, ::-1])), ref)
        torch.testing.assert_close(mn(wave.astype(">f4")), mn(wave))


def test_equal_length_lists_work_everywhere(sed) -> None:
    clips = [_noise(32000, seed=1), _noise(32000, seed=2)]
    batch = torch.stack(clips)
    with torch.no_grad():
        both = sed.frame_and_clip_logits(clips)
        ref = sed.frame_and_clip_logits(batch)
        padded = sed.frame_and_clip_logits(batch, lengths=[32000, 20000])
        alone = sed.frame_and_clip_logits(batch[1, :20000])
    assert isinstance(both.frames, list) and len(both.frames) == 2
    for i in range(2):
        torch.testing.assert_close(both.frames[i], ref.frames[i])
    torch.testing.assert_close(both.clip, ref.clip)
    torch.testing.assert_close(padded.frames[1], alone.frames)
    torch.testing.assert_close(padded.clip[1], alone.clip)


def test_mixed_lists_say_what_a_list_of_clips_is(mn) -> None:
    with pytest.raises(AudioTypeError, match=r"list of clips.*item 1"):
        mn([torch.zeros(100), [0.0] * 100])
    with pytest.raises(AudioTypeError, match=r"different lengths.*list of"):
        mn([[0.0] * 100, [0.0] * 50])


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: torch.empty(1, 8000, device="meta"), "meta"),
        (lambda: torch.zeros(1, 8000).to_sparse(), "to_dense"),
        (lambda: torch.zeros(1, 8000).to_sparse_csr(), "to_dense"),
    ],
)
def test_meta_and_sparse_tensors_get_a_type_error(mn, make, match) -> None:
    with pytest.raises(AudioTypeError, match=match):
        mn(make())
    with pytest.raises(AudioTypeError, match=match):
        mn.embed([torch.zeros(8000), make()[0]])


# ------------------------------------------------------------------ 26: one window's frames


@pytest.mark.parametrize(
    ("arch", "seconds", "frames"),
    [("ast", 10.24, 101), ("ast", 10.1, 101), ("ast", 10.0, 100), ("passt_s", 10.05, 99)],
)
def test_one_window_gives_the_single_pass_frames_as_documented(arch, seconds, frames) -> None:
    """A clip within one window keeps the backbone's own frames: up to two fewer than
    ceil(N / hop) for AST and PaSST (docs/guides/long-and-short-audio.md), each the upstream
    single pass's; clip logits are exactly the single pass's."""
    torch.manual_seed(0)
    frame = audiozoo.create(arch, pretrained=False, head="frame", num_classes=3, **SMALL).eval()
    torch.manual_seed(0)
    clip = audiozoo.create(arch, pretrained=False, head="linear", num_classes=3, **SMALL).eval()
    n = round(seconds * frame.sample_rate)
    wave = _noise(2, n)
    with torch.no_grad():
        direct = clip.backbone(clip.frontend(wave))
        torch.testing.assert_close(clip(wave), clip.head(direct), rtol=0, atol=0)
        single = frame.head(frame.backbone(frame.frontend(wave)))  # (2, T'w, 3)
        out, seq = frame(wave), frame.embed(wave, frames=True)
    hop = frame.frontend.hop_length * frame.backbone.time_stride
    assert out.shape[1] == seq.shape[1] == frames
    assert 0 <= math.ceil(n / hop) - frames <= 2
    torch.testing.assert_close(out, single[:, :frames], rtol=0, atol=0)

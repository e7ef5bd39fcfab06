"""Input validation at the API boundary (model(...), embed(...)): one test per documented case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo import AudioTypeError, AudiozooError, InvalidAudioError


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return audiozoo.create("mn01", pretrained=False).eval()


@pytest.fixture(scope="module")
def clip():
    return torch.randn(2, 16000, generator=torch.Generator().manual_seed(1)) * 0.1


def test_rank0_and_rank4_raise(model):
    for bad in (torch.tensor(0.5), torch.zeros(1, 1, 1, 1000)):
        with pytest.raises(InvalidAudioError, match=r"shape \(N,\), \(batch, N\)"):
            model(bad)


def test_multichannel_is_averaged(model, clip):
    stereo = torch.stack([clip, clip * 0.5], dim=1)  # (B, 2, N)
    assert torch.equal(model(stereo), model(clip * 0.75))


def test_int16_pcm_is_scaled(model, clip):
    pcm = (clip * 2**15).round().clamp(-(2**15), 2**15 - 1).to(torch.int16)
    torch.testing.assert_close(model(pcm), model(pcm.float() / 2**15))
    pcm32 = pcm.to(torch.int32) * 2**16
    torch.testing.assert_close(model(pcm32), model(pcm.float() / 2**15))


def test_other_integer_and_bool_dtypes_raise(model, clip):
    for bad in (clip.to(torch.int64), clip > 0, clip.to(torch.uint8)):
        with pytest.raises(AudioTypeError, match="dtype"):
            model(bad)


def test_float64_and_float16_work(model, clip):
    ref = model(clip)
    torch.testing.assert_close(model(clip.double()), ref)
    assert model(clip.half()).dtype == torch.float32


def test_nan_and_inf_raise(model, clip):
    for value in (float("nan"), float("inf")):
        bad = clip.clone()
        bad[1, 100] = value
        with pytest.raises(InvalidAudioError, match=r"NaN or Inf.*batch item 1"):
            model(bad)


def test_empty_raises(model):
    for bad in (torch.zeros(0), torch.zeros(2, 0), torch.zeros(0, 100)):
        with pytest.raises(InvalidAudioError, match="empty"):
            model(bad)


def test_numpy_and_lists(model, clip):
    ref = model(clip)
    torch.testing.assert_close(model(clip.numpy()), ref)
    torch.testing.assert_close(model(clip.tolist()), ref)
    torch.testing.assert_close(model(clip.numpy().astype(np.float64)), ref)
    with pytest.raises(AudioTypeError):
        model("clip.wav")


def test_non_contiguous_view(model, clip):
    wide = torch.zeros(2, 32000)
    wide[:, ::2] = clip
    view = wide[:, ::2]
    assert not view.is_contiguous()
    torch.testing.assert_close(model(view), model(clip))


def test_unbatched_and_batch_of_one(model, clip):
    single = model(clip[0])
    assert single.shape == (527,)
    torch.testing.assert_close(single, model(clip[:1])[0])
    assert model.embed(clip[0]).shape == (model.num_features,)


def test_errors_share_one_base_and_builtin_types():
    assert issubclass(InvalidAudioError, AudiozooError) and issubclass(
        InvalidAudioError, ValueError
    )
    assert issubclass(AudioTypeError, AudiozooError) and issubclass(AudioTypeError, TypeError)


# --------------------------------------------------------------------------- devices


def test_input_goes_to_the_model_device(model, clip, monkeypatch):
    """The model hands its device to as_waveform, which moves tensors that are elsewhere."""
    import audiozoo._inputs as inputs_module

    seen = []
    real = inputs_module.as_waveform

    def spy(audio, *, device=None, name="waveform", max_amplitude=None):
        seen.append(device)
        return real(audio, device=torch.device("cpu"), name=name, max_amplitude=max_amplitude)

    monkeypatch.setattr(inputs_module, "as_waveform", spy)
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda", 3)))
    model(clip)
    assert seen == [torch.device("cuda", 3)]


def test_model_device_follows_parameters():
    m = audiozoo.create("mn01", pretrained=False).to("meta")
    assert m.device == torch.device("meta")


def test_padding_and_windows_stay_on_the_input_device():
    """Everything after validation creates its tensors on the input's device (checked on meta)."""
    from audiozoo import _outputs, _windows

    torch.manual_seed(0)
    m = audiozoo.create(
        "passt_s", pretrained=False, head="frame", num_classes=3, embed_dim=32, depth=1, num_heads=2
    ).eval()
    n = 25 * m.sample_rate
    plan = _windows.plan_windows(m.frontend, m.backbone, n)
    assert plan.count > 1
    m.to("meta")
    windows = _windows.split(torch.empty(2, n, device="meta"), plan)
    spec = torch.empty(windows.shape[0], 1, 128, m.frontend.num_frames(plan.length), device="meta")
    out = m.head(_outputs.merge(m, m.backbone(spec), plan))
    assert out.device.type == "meta" and out.shape == (2, plan.out_frames, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_input_to_cuda_model(model, clip):
    ref = model(clip)
    gpu = audiozoo.create("mn01", pretrained=False).eval()
    gpu.load_state_dict(model.state_dict())
    gpu.cuda()
    out = gpu(clip)  # CPU tensor, CUDA model
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    long = torch.randn(1, 25 * 32000) * 0.1  # windowed path on the GPU
    passt = (
        audiozoo.create(
            "passt_s",
            pretrained=False,
            head="frame",
            num_classes=3,
            embed_dim=32,
            depth=1,
            num_heads=2,
        )
        .eval()
        .cuda()
    )
    assert passt(long).device.type == "cuda"


def test_audio_shorter_than_one_frame_is_padded(model):
    """A 1-sample click (shorter than any analysis frame) works: zero-padded at the end, with a
    warning (tests/test_input_faults.py)."""
    click = torch.tensor([[0.5]])
    with pytest.warns(UserWarning, match="shorter than one analysis window"):
        out = model(click)
        torch.testing.assert_close(out, model(torch.tensor([[0.5, 0.0]])))
    assert out.shape == (1, 527) and torch.isfinite(out).all()

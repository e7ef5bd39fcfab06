"""EfficientAT MobileNetV3: architecture tables, sizes, SE variants, weight table, converter.

Expected numbers are typed in from ``reference/upstream-models.md`` (sections 2.2, 2.4, 2.5, 6),
which were measured on the upstream implementation: an independent source.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

import audiozoo
from audiozoo._errors import CheckpointError, InvalidAudioError
from audiozoo.backbones.mobilenet import WIDTHS, ConcurrentSE, MobileNetV3, SqueezeExcitation
from audiozoo.heads import AttentionHead, ConvHead, MLPHead

# name: (stem channels, expanded channels of blocks 0..14, out channels, last_channel, lastconv)
CHANNELS = {
    "mn01": (8, "8,8,8,8,16,16,24,24,24,24,48,64,64,96,96", "8,8,8,8,8,8,8,8,8,8,16,16,16,16,16", 128, 96),
    "mn02": (8, "8,16,16,16,24,24,48,40,40,40,96,136,136,192,192", "8,8,8,8,8,8,16,16,16,16,24,24,32,32,32", 256, 192),
    "mn04": (8, "8,24,32,32,48,48,96,80,72,72,192,272,272,384,384", "8,16,16,16,16,16,32,32,32,32,48,48,64,64,64", 512, 384),
    "mn05": (8, "8,32,40,40,64,64,120,104,96,96,240,336,336,480,480", "8,16,16,24,24,24,40,40,40,40,56,56,80,80,80", 640, 480),
    "mn06": (16, "16,40,40,40,72,72,144,120,112,112,288,400,400,576,576", "16,16,16,24,24,24,48,48,48,48,64,64,96,96,96", 768, 576),
    "mn08": (16, "16,48,56,56,96,96,192,160,144,144,384,536,536,768,768", "16,24,24,32,32,32,64,64,64,64,88,88,128,128,128", 1024, 768),
    "mn10": (16, "16,64,72,72,120,120,240,200,184,184,480,672,672,960,960", "16,24,24,40,40,40,80,80,80,80,112,112,160,160,160", 1280, 960),
    "mn12": (24, "24,80,88,88,144,144,288,240,224,224,576,808,808,1152,1152", "24,32,32,48,48,48,96,96,96,96,136,136,192,192,192", 1536, 1152),
    "mn14": (24, "24,88,104,104,168,168,336,280,256,256,672,944,944,1344,1344", "24,32,32,56,56,56,112,112,112,112,160,160,224,224,224", 1792, 1344),
    "mn16": (24, "24,104,112,112,192,192,384,320,296,296,768,1072,1072,1536,1536", "24,40,40,64,64,64,128,128,128,128,176,176,256,256,256", 2048, 1536),
    "mn20": (32, "32,128,144,144,240,240,480,400,368,368,960,1344,1344,1920,1920", "32,48,48,80,80,80,160,160,160,160,224,224,320,320,320", 2560, 1920),
    "mn30": (48, "48,192,216,216,360,360,720,600,552,552,1440,2016,2016,2880,2880", "48,72,72,120,120,120,240,240,240,240,336,336,480,480,480", 3840, 2880),
    "mn40": (64, "64,256,288,288,480,480,960,800,736,736,1920,2688,2688,3840,3840", "64,96,96,160,160,160,320,320,320,320,448,448,640,640,640", 5120, 3840),
}  # fmt: skip

# backbone + MLP head (527 classes), verified upstream (section 6)
PARAMS = {
    "mn01": 123_783, "mn02": 324_695, "mn04": 983_599, "mn05": 1_431_239, "mn06": 1_947_583,
    "mn08": 3_246_647, "mn10": 4_876_831, "mn12": 6_836_831, "mn14": 9_140_807,
    "mn16": 11_710_071, "mn20": 17_909_287, "mn30": 39_086_367, "mn40": 68_427_303,
}  # fmt: skip


def build(arch: str, **kwargs) -> MobileNetV3:
    return audiozoo.get_architecture(arch).builder(**kwargs)


def blocks(model: MobileNetV3) -> list[nn.Module]:
    return list(model.features[1:16])


def first_se(model: MobileNetV3) -> ConcurrentSE:
    return next(m for m in model.modules() if isinstance(m, ConcurrentSE))


def test_all_widths_registered():
    assert sorted(WIDTHS) == sorted(CHANNELS)
    for arch in CHANNELS:
        assert arch in audiozoo.list_backbones()


@pytest.mark.parametrize("arch", list(CHANNELS))
def test_channel_table_and_parameter_count(arch):
    stem, expanded, out, last_channel, lastconv = CHANNELS[arch]
    with torch.device("meta"):
        model = build(arch)
        head = MLPHead(model.num_features, 527, hidden=last_channel)
    assert model.features[0][0].out_channels == stem
    # the depthwise conv has `expanded` channels; the project conv is the block's last module
    assert [b.block[b.depthwise_index][0].out_channels for b in blocks(model)] == [
        int(c) for c in expanded.split(",")
    ]
    assert [b.block[-1][0].out_channels for b in blocks(model)] == [int(c) for c in out.split(",")]
    assert model.num_features == lastconv == model.features[16][0].out_channels
    assert model.last_channel == last_channel
    assert audiozoo.get_architecture(arch).cfg(None).head["hidden"] == last_channel
    n_params = sum(p.numel() for p in (*model.parameters(), *head.parameters()))
    assert n_params == PARAMS[arch]


@pytest.mark.parametrize(
    ("arch", "no_expand"), [("mn01", [0, 1, 2, 3]), ("mn10", [0]), ("mn40", [0])]
)
def test_blocks_without_expansion_shift_indices(arch, no_expand):
    with torch.device("meta"):
        model = build(arch)
    assert [i for i, b in enumerate(blocks(model)) if b.depthwise_index == 0] == no_expand


def test_mn10_state_dict_layout_matches_upstream():
    """Keys and shapes of upstream's mn10_as_mAP_471.pt (section 2.4), prefixed for audiozoo."""
    with torch.device("meta"):
        model = build("mn10")
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(sd) == 312 - 4  # upstream's 312 entries include 4 MLP-head tensors
    expected = {
        "features.0.0.weight": (16, 1, 3, 3),
        "features.0.1.num_batches_tracked": (),
        "features.1.block.0.0.weight": (16, 1, 3, 3),
        "features.1.block.1.0.weight": (16, 16, 1, 1),
        "features.2.block.0.0.weight": (64, 16, 1, 1),
        "features.2.block.1.0.weight": (64, 1, 3, 3),
        "features.2.block.2.0.weight": (24, 64, 1, 1),
        "features.4.block.0.0.weight": (72, 24, 1, 1),
        "features.4.block.1.0.weight": (72, 1, 5, 5),
        "features.4.block.2.conc_se_layers.0.fc1.weight": (24, 72),
        "features.4.block.2.conc_se_layers.0.fc1.bias": (24,),
        "features.4.block.2.conc_se_layers.0.fc2.weight": (72, 24),
        "features.4.block.3.0.weight": (40, 72, 1, 1),
        "features.4.block.3.1.running_var": (40,),
        "features.16.0.weight": (960, 160, 1, 1),
        "features.16.1.weight": (960,),
    }
    for key, shape in expected.items():
        assert sd[key] == shape, key
    squeeze = [
        sd[f"features.{n}.block.2.conc_se_layers.0.fc1.bias"][0]
        for n in (4, 5, 6, 11, 12, 13, 14, 15)
    ]
    assert squeeze == [24, 32, 32, 120, 168, 168, 240, 240]
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (1e-3, 0.01)
        if isinstance(m, SqueezeExcitation):
            assert isinstance(m.gate, nn.Sigmoid) and isinstance(m.act, nn.ReLU)


def test_mn10_feature_map_shapes():
    """Section 2.2: output shapes of every features.N for a (1, 1, 128, 1000) input."""
    model = build("mn10").eval()
    shapes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
        for m in model.features
    ]
    with torch.no_grad():
        grid = model(torch.randn(1, 1, 128, 1000)).grid
    for h in hooks:
        h.remove()
    expected = [(16, 64, 500), (16, 64, 500), (24, 32, 250), (24, 32, 250)]
    expected += [(40, 16, 125)] * 3 + [(80, 8, 63)] * 4 + [(112, 8, 63)] * 2
    expected += [(160, 4, 32)] * 3 + [(960, 4, 32)]
    assert shapes == expected
    assert grid.shape == (1, 960, 4, 32)
    assert model.num_output_frames(1000) == 32 and model.time_stride == 32


@pytest.mark.parametrize(
    ("kwargs", "strides"),
    [
        ({}, (2, 2, 2, 2, 2)),
        ({"strides": (2, 2, 2, 1)}, (2, 2, 2, 2, 1)),
        ({"strides": (2, 2, 1, 1)}, (2, 2, 2, 1, 1)),
        ({"dilated": True}, (2, 2, 2, 2, 1)),  # dilation replaces the last stride
        ({"reduced_tail": True}, (2, 2, 2, 2, 2)),
    ],
)
def test_num_output_frames_matches_forward(kwargs, strides):
    torch.manual_seed(0)
    model = build("mn01", **kwargs).eval()
    assert model.time_stride == math.prod(strides)
    for t in (1, 2, 5, 16, 31, 32, 33, 100, 257):
        # every strided conv has an odd kernel and "same" padding: ceil division per stride
        expected = t
        for s in strides:
            expected = -(-expected // s)
        assert model.num_output_frames(t) == expected
        with torch.no_grad():
            grid = model(torch.randn(1, 1, 24, t)).grid
        assert grid.shape[-1] == expected, t


def test_reduced_tail_halves_the_tail():
    model = build("mn10", reduced_tail=True)
    assert model.num_features == 6 * 80 and model.last_channel == 640
    assert blocks(model)[12].block[0][0].out_channels == 672  # expansion of the first tail block


def _naive_se(se: SqueezeExcitation, x: torch.Tensor) -> torch.Tensor:
    """Squeeze-excitation written per axis with explicit broadcasting."""
    b, c, f, t = x.shape
    pooled = {1: x.mean(dim=(2, 3)), 2: x.mean(dim=(1, 3)), 3: x.mean(dim=(1, 2))}[se.axis]
    h = torch.relu(pooled @ se.fc1.weight.T + se.fc1.bias)
    w = torch.sigmoid(h @ se.fc2.weight.T + se.fc2.bias)
    shape = {1: (b, c, 1, 1), 2: (b, 1, f, 1), 3: (b, 1, 1, t)}[se.axis]
    return x * w.reshape(shape)


@pytest.mark.parametrize("axis", [1, 2, 3])
def test_squeeze_excitation_each_axis(axis):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7)
    dim = x.shape[axis]
    se = SqueezeExcitation(dim, 8, axis)
    nn.init.normal_(se.fc1.weight)
    nn.init.normal_(se.fc2.weight)
    torch.testing.assert_close(se(x), _naive_se(se, x))


@pytest.mark.parametrize("agg", ["max", "avg", "add", "min"])
def test_frequency_time_se_variants_run(agg):
    torch.manual_seed(0)
    model = build("mn01", se_dims="cft", se_agg=agg, input_dim_f=32, input_dim_t=50)
    se = first_se(model)
    assert len(se.conc_se_layers) == 3
    spec = torch.randn(2, 1, 32, 50, requires_grad=True)
    grid = model(spec).grid
    assert grid.shape == (2, 96, 1, 2)
    grid.sum().backward()
    assert spec.grad is not None and torch.isfinite(spec.grad).all()
    assert model.min_frames == model.max_frames == 50
    with pytest.raises(InvalidAudioError, match="input_dim_t"):
        model(torch.randn(1, 1, 32, 60))
    with pytest.raises(InvalidAudioError, match="input_dim_f"):
        model(torch.randn(1, 1, 40, 50))


def test_concurrent_se_aggregation():
    torch.manual_seed(0)
    model = build("mn01", se_dims="ct", se_agg="max", input_dim_f=16, input_dim_t=20)
    se = first_se(model)
    channels, time = (layer.fc1.in_features for layer in se.conc_se_layers)
    x = torch.randn(2, channels, 4, time)
    expected = torch.maximum(_naive_se(se.conc_se_layers[0], x), _naive_se(se.conc_se_layers[1], x))
    torch.testing.assert_close(se(x), expected)


def test_se_none_removes_se():
    model = build("mn01", se_dims="none")
    assert not any("conc_se_layers" in k for k in model.state_dict())


def test_stages_partition_the_parameters():
    model = build("mn01")
    stages = model.stages()
    assert stages[0] is model.features[0] and stages[-1] is model.features[16]
    ids = [id(p) for s in stages for p in s.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
HOPS = {"as_hop_5": 160, "as_hop_15": 480, "as_hop_20": 640, "as_hop_25": 800}


# --- weight table ------------------------------------------------------------------------


def _all_weights():
    return [cfg for arch in WIDTHS for cfg in audiozoo.get_architecture(arch).weights.values()]


def test_weight_names_follow_upstream_file_names():
    """Tag rule: upstream file name, first underscore -> dot, metric dropped. Repeated runs of
    the same configuration get _2/_3."""
    names = set()
    for cfg in _all_weights():
        filename = cfg.url.rsplit("/", 1)[1]
        assert cfg.url == RELEASE + filename
        stem = re.sub(r"_mAP_\d+(\(\d\))?$", "", filename.removesuffix(".pt"))
        derived = stem.replace("_", ".", 1)
        repeated_run = re.fullmatch(re.escape(derived) + r"_[23]", cfg.name)
        assert cfg.name == derived or repeated_run, cfg.name
        assert "mAP" not in cfg.name and cfg.name not in names
        names.add(cfg.name)
        mAP = re.search(r"_mAP_(\d+)", filename)
        assert cfg.metrics == ({"audioset_mAP": int(mAP.group(1)) / 1000} if mAP else {})
    assert len(names) == 8 + 8 + 8 + 1 + 4 + 3 + 3  # as, im, mn40 extras, im_pytorch, hop, mels, fc
    for name in (
        "mn10.as",
        "mn10.as_hop_5",
        "mn10.as_fc_s2221",
        "mn10.im_pytorch",
        "mn40.as_ext",
        "mn40.as_no_im_pre",
        "mn40.as_2",
        "mn40.as_3",
        "mn01.im",
    ):
        assert name in names


def test_weight_configs():
    for cfg in _all_weights():
        assert cfg.converter == "efficientat" and audiozoo.get_converter(cfg.converter)
        assert cfg.license == "MIT" and "Schmid" in cfg.citation and "2211.04772" in cfg.paper
        assert cfg.num_classes == 527
        trained = not cfg.tag.startswith("im")
        assert cfg.label_set == ("audioset" if trained else None), cfg.name
        fe = audiozoo.build_frontend(cfg.frontend)
        assert cfg.frontend["name"] == "stft_mel" and fe.sample_rate == 32000
        assert (fe.win_length, fe.n_fft, fe.fmin_aug_range, fe.fmax_aug_range) == (
            800,
            1024,
            10,
            2000,
        )
        hop = HOPS.get(cfg.tag, 320)
        n_mels = {"as_mels_40": 40, "as_mels_64": 64, "as_mels_256": 256}.get(cfg.tag, 128)
        assert (fe.hop_length, fe.n_mels) == (hop, n_mels), cfg.name
        if cfg.tag.startswith("as_fc"):
            assert cfg.head_config() == {"name": "conv", "num_classes": 527}
        else:
            assert cfg.head_config() == {
                "name": "mlp",
                "num_classes": 527,
                "hidden": CHANNELS[cfg.arch][3],
            }
        strides = {"as_fc_s2221": (2, 2, 2, 1), "as_fc_s2211": (2, 2, 1, 1)}.get(cfg.tag)
        assert cfg.backbone_kwargs.get("strides") == strides
        assert ("random" in cfg.notes) if cfg.tag.startswith("im") else True
    for arch in WIDTHS:
        a = audiozoo.get_architecture(arch)
        assert a.default_tag == ("as" if a.weights else None)


# --- converter -----------------------------------------------------------------------------


def _to_upstream(native: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """audiozoo keys -> EfficientAT keys, written independently of the converter's rules."""
    head_names = {"fc1": "2", "fc2": "5", "conv": "0", "bn": "1"}
    out = {}
    for key, value in native.items():
        part, rest = key.split(".", 1)
        if part == "backbone":
            out[rest] = value
        else:
            first, _, tail = rest.partition(".")
            layer = head_names.get(first, first)
            out[f"classifier.{layer}.{tail}" if tail else f"classifier.{layer}"] = value
    return out


@pytest.mark.parametrize("head_cls", [MLPHead, ConvHead, AttentionHead])
def test_converter_round_trip(head_cls):
    torch.manual_seed(0)
    model = nn.ModuleDict({"backbone": build("mn01")})
    model["head"] = head_cls(model["backbone"].num_features, 527)
    native = {
        k: torch.randn(v.shape) if v.is_floating_point() else v + 7
        for k, v in model.state_dict().items()
    }
    upstream = _to_upstream(native)
    assert any(k.startswith("classifier.") for k in upstream)
    converted = audiozoo.get_converter("efficientat")(upstream)
    assert converted.keys() == native.keys()
    for k in native:
        assert torch.equal(converted[k], native[k]), k
    model.load_state_dict(converted, strict=True)
    # upstream files may also be wrapped in {"state_dict": ...}
    assert audiozoo.get_converter("efficientat")({"state_dict": upstream}).keys() == native.keys()


@pytest.mark.parametrize("bad", ["classifier.3.weight", "module.features.0.0.weight", "extra"])
def test_converter_unknown_key_raises(bad):
    with pytest.raises(CheckpointError, match=re.escape(bad)):
        audiozoo.get_converter("efficientat")(
            {"features.0.0.weight": torch.zeros(1), bad: torch.zeros(1)}
        )

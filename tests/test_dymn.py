"""EfficientAT DyMN: block internals against naive references, sizes, weight table, converter.

Expected numbers come from the upstream implementation (fschmid56/EfficientAT at a425fdc,
``models/dymn``), instantiated and counted there: ``reference/upstream-models.md`` sections 2.3,
2.4 and 6 for the "all" variant, and counts of ``get_model(width_mult=w,
use_dy_blocks="replace_se")`` for the other. The naive references below are written from the
paper's equations, one sample at a time, independently of the vectorised modules.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import audiozoo
from audiozoo._errors import CheckpointError, InvalidAudioError, RegistryError
from audiozoo._registry import backbones, converters
from audiozoo.backbones.dymn import WIDTHS, ContextGen, DyBlock, DyMN, DynamicConv, DyReLU
from audiozoo.backbones.mobilenet import InvertedResidual
from audiozoo.heads import MLPHead

ARCHS = ["dymn04", "dymn10", "dymn20"]

# backbone + MLP head (527 classes), counted on upstream's model
PARAMS = {"dymn04": 1_961_239, "dymn10": 10_548_479, "dymn20": 39_966_143}
PARAMS_REPLACE_SE = {"dymn04": 1_829_287, "dymn10": 9_833_935}

# context size H of blocks 0..14 (section 2.3)
CONTEXT = {
    "dymn04": "16,16,16,16,16,16,24,24,24,24,48,48,48,48,48",
    "dymn10": "32,32,32,32,32,32,64,48,48,48,120,128,128,128,128",
    "dymn20": "64,64,64,64,64,64,120,104,96,96,240,256,256,256,256",
}
EMBED = {"dymn04": (384, 512), "dymn10": (960, 1280), "dymn20": (1920, 2560)}


def build(arch: str, **kwargs) -> DyMN:
    return backbones.get(arch).builder(**kwargs)


def randomize(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial values for every parameter and BatchNorm statistic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if "weight" in name else 0.1))
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.add_(1.0)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


# --- blocks against naive references --------------------------------------------------------


def _naive_dynamic_conv(conv: DynamicConv, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Per sample: softmax(W_a h / T) weighs the K kernels, then an ordinary conv."""
    outs = []
    for xb, hb in zip(x, context, strict=True):
        att = torch.softmax(
            (conv.attention.weight @ hb + conv.attention.bias) / conv.temperature, 0
        )
        kernel = sum(a * w for a, w in zip(att, conv.weight, strict=True))
        outs.append(
            F.conv2d(
                xb[None],
                kernel,
                stride=conv.stride,
                padding=conv.padding,
                dilation=conv.dilation,
                groups=conv.groups,
            )
        )
    return torch.cat(outs)


@pytest.mark.parametrize(
    ("cin", "cout", "k", "kwargs"),
    [
        (6, 10, 1, {}),  # pointwise: the batched matrix product
        (10, 10, 3, {"groups": 10, "padding": 1}),  # depthwise
        (10, 10, 5, {"groups": 10, "padding": 2, "stride": 2}),
        (10, 10, 5, {"groups": 10, "padding": 4, "dilation": 2}),
        (6, 4, 3, {"groups": 2, "padding": 1}),  # grouped
        (6, 4, 1, {"stride": 2}),  # strided 1x1 takes the grouped-conv path
    ],
)
@pytest.mark.parametrize("temperature", [1.0, 30.0])
def test_dynamic_conv_matches_per_sample_conv(cin, cout, k, kwargs, temperature):
    torch.manual_seed(0)
    conv = DynamicConv(cin, cout, k, 8, temperature=temperature, **kwargs)
    nn.init.normal_(conv.attention.weight)
    x, context = torch.randn(3, cin, 9, 11), torch.randn(3, 8)
    torch.testing.assert_close(conv(x, context), _naive_dynamic_conv(conv, x, context))
    assert conv.weight.shape == (4, cout, cin // kwargs.get("groups", 1), k, k)


def test_kernel_attention_temperature():
    torch.manual_seed(0)
    conv = DynamicConv(4, 4, 1, 8, temperature=1.0)
    nn.init.normal_(conv.attention.weight, std=3.0)
    context = torch.randn(5, 8)
    sharp = conv.kernel_attention(context)
    conv.temperature = 1e6
    flat = conv.kernel_attention(context)
    torch.testing.assert_close(sharp.sum(-1), torch.ones(5))
    torch.testing.assert_close(flat, torch.full((5, 4), 0.25), atol=1e-5, rtol=0)
    assert sharp.max() > 0.5


@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_dyrelu_b_matches_formula(pieces):
    """DyReLU-B: y_c = max_m(a_c^m x_c + b_c^m), a^1 = 1 + θ, a^m = θ (m > 1), b^m = θ / 2."""
    torch.manual_seed(0)
    act = DyReLU(5, 8, pieces)
    nn.init.normal_(act.coefs.weight)
    x, context = torch.randn(2, 5, 3, 4), torch.randn(2, 8)
    theta = (2 * torch.sigmoid(context @ act.coefs.weight.T + act.coefs.bias) - 1).view(
        2, 5, 2 * pieces
    )
    lines = []
    for m in range(pieces):
        a = theta[..., m] + (1.0 if m == 0 else 0.0)
        b = 0.5 * theta[..., pieces + m]
        lines.append(x * a[..., None, None] + b[..., None, None])
    torch.testing.assert_close(act(x, context), torch.stack(lines).amax(0))


def test_dyrelu_with_zero_coefficients_is_relu():
    """θ = 0 leaves the offsets: max(1·x + 0, 0·x + 0) = ReLU."""
    act = DyReLU(3, 4)
    nn.init.zeros_(act.coefs.weight)
    nn.init.zeros_(act.coefs.bias)
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(act(x, torch.randn(2, 4)), x.clamp(min=0))


@pytest.mark.parametrize("stride", [1, 2])
def test_context_gen_matches_loops(stride):
    torch.manual_seed(0)
    gen = ContextGen(6, 8, 10, stride).eval()
    randomize(gen)
    x = torch.randn(2, 6, 7, 9)
    context, g_f, g_t = gen(x)
    # shared transform of the frequency profile (mean over T) and time profile (mean over F)
    w = gen.joint_conv.weight[:, :, 0, 0]
    bn = gen.joint_norm

    def joint(v):  # (B, C, L) -> (B, H, L)
        y = torch.einsum("hc,bcl->bhl", w, v)
        y = (y - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps)
        return F.hardswish(y * bn.weight[:, None] + bn.bias[:, None])

    h_f, h_t = joint(x.mean(3)), joint(x.mean(2))
    torch.testing.assert_close(context, torch.cat([h_f, h_t], 2).mean(2))
    if stride > 1:  # 3-tap average, zero padded, counted with the padding
        h_f = F.avg_pool1d(h_f, 3, stride, 1)
        h_t = F.avg_pool1d(h_t, 3, stride, 1)
    wf, wt = gen.conv_f.weight[:, :, 0, 0], gen.conv_t.weight[:, :, 0, 0]
    expected_f = torch.einsum("eh,bhl->bel", wf, h_f) + gen.conv_f.bias[:, None]
    expected_t = torch.einsum("eh,bhl->bel", wt, h_t) + gen.conv_t.bias[:, None]
    torch.testing.assert_close(g_f, expected_f[..., None])
    torch.testing.assert_close(g_t, expected_t[:, :, None, :])
    assert g_f.shape[2] == -(-7 // stride) and g_t.shape[3] == -(-9 // stride)


def test_block_output_sizes_agree_with_coordinate_attention():
    """Strided blocks pool the attention to the depthwise output size (odd sizes too)."""
    model = build("dymn04").eval()
    with torch.no_grad():
        for t in (1, 7, 33, 101):
            assert model(torch.randn(1, 1, 37, t)).grid.shape[-1] == model.num_output_frames(t)


# --- architecture ------------------------------------------------------------------------


def test_all_widths_registered():
    assert set(WIDTHS) == set(ARCHS)
    for arch in ARCHS:
        a = audiozoo.get_architecture(arch)
        assert a.family == "EfficientAT DyMN" and a.default_tag == "as"


@pytest.mark.parametrize("arch", ARCHS)
def test_sizes_and_parameter_count(arch):
    with torch.device("meta"):
        model = build(arch)
        head = MLPHead(model.num_features, 527, hidden=model.last_channel)
    assert (model.num_features, model.last_channel) == EMBED[arch]
    blocks = list(model.blocks)
    assert all(isinstance(b, DyBlock) for b in blocks)
    contexts = [b.context_gen.joint_conv.out_channels for b in blocks]
    assert contexts == [int(h) for h in CONTEXT[arch].split(",")]
    assert [b.exp_conv is None for b in blocks] == [True] + [False] * 14
    n_params = sum(p.numel() for p in (*model.parameters(), *head.parameters()))
    assert n_params == PARAMS[arch]
    assert backbones.get(arch).cfg(None).head["hidden"] == model.last_channel


@pytest.mark.parametrize("arch", ["dymn04", "dymn10"])
def test_replace_se_variant(arch):
    with torch.device("meta"):
        model = build(arch, use_dy_blocks="replace_se")
        head = MLPHead(model.num_features, 527, hidden=model.last_channel)
    dynamic = [i for i, b in enumerate(model.blocks) if isinstance(b, DyBlock)]
    assert dynamic == [3, 4, 5, 10, 11, 12, 13, 14]
    static = [b for b in model.blocks if not isinstance(b, DyBlock)]
    assert all(isinstance(b, InvertedResidual) for b in static)
    assert not any("conc_se_layers" in k for k in model.state_dict())
    n_params = sum(p.numel() for p in (*model.parameters(), *head.parameters()))
    assert n_params == PARAMS_REPLACE_SE[arch]


def test_dymn10_state_dict_layout():
    """Shapes of upstream's dymn10_as.pt (section 2.4) under audiozoo's names."""
    with torch.device("meta"):
        model = build("dymn10")
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # upstream's 578 entries: 4 MLP-head tensors and 2 DyReLU constants per block are not here
    assert len(sd) == 578 - 4 - 2 * 15
    expected = {
        "stem.0.weight": (16, 1, 3, 3),
        "blocks.0.depth_conv.weight": (4, 16, 1, 3, 3),
        "blocks.0.depth_conv.attention.weight": (4, 32),
        "blocks.0.depth_act.coefs.weight": (64, 32),
        "blocks.0.proj_conv.weight": (4, 16, 16, 1, 1),
        "blocks.0.context_gen.joint_conv.weight": (32, 16, 1, 1),
        "blocks.0.context_gen.conv_f.weight": (16, 32, 1, 1),
        "blocks.0.context_gen.conv_t.bias": (16,),
        "blocks.1.exp_conv.weight": (4, 64, 16, 1, 1),
        "blocks.1.exp_norm.running_var": (64,),
        "blocks.1.depth_conv.weight": (4, 64, 1, 3, 3),
        "blocks.1.depth_act.coefs.weight": (256, 32),
        "blocks.1.proj_conv.weight": (4, 24, 64, 1, 1),
        "blocks.3.exp_conv.weight": (4, 72, 24, 1, 1),
        "blocks.3.depth_conv.weight": (4, 72, 1, 5, 5),
        "blocks.3.proj_conv.weight": (4, 40, 72, 1, 1),
        "last_conv.0.weight": (960, 160, 1, 1),
        "last_conv.1.num_batches_tracked": (),
    }
    for key, shape in expected.items():
        assert sd[key] == shape, key
    assert not any(k.startswith("blocks.0.exp_") for k in sd)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (1e-3, 0.01)


def test_feature_map_shapes_and_strides():
    model = build("dymn04").eval()
    with torch.no_grad():
        grid = model(torch.randn(2, 1, 128, 1000)).grid
    assert grid.shape == (2, 384, 4, 32)
    assert model.time_stride == 32 and model.num_output_frames(1000) == 32
    model = build("dymn04", strides=(2, 2, 2, 1)).eval()
    assert model.time_stride == 16
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 100)).grid.shape == (1, 384, 4, 7)
    assert model.num_output_frames(100) == 7


def test_temperature_kwarg_and_setter():
    model = build("dymn04")
    convs = [m for m in model.modules() if isinstance(m, DynamicConv)]
    assert len(convs) == 3 * 15 - 1 and model.temperature == 1.0
    assert {m.temperature for m in convs} == {1.0}
    assert build("dymn04", temperature=30.0).temperature == 30.0
    model.set_temperature(5)
    assert {m.temperature for m in convs} == {5.0}
    with pytest.raises(RegistryError):
        model.set_temperature(0)


def test_temperature_changes_the_output():
    torch.manual_seed(0)
    model = build("dymn04").eval()
    randomize(model)
    spec = torch.randn(1, 1, 64, 50)
    with torch.no_grad():
        a = model(spec).grid
        model.set_temperature(30.0)
        b = model(spec).grid
    assert not torch.allclose(a, b, rtol=1e-3, atol=1e-3)


def test_bad_arguments_and_input():
    with pytest.raises(RegistryError, match="use_dy_blocks"):
        build("dymn04", use_dy_blocks="some")
    with pytest.raises(RegistryError, match="temperature"):
        build("dymn04", temperature=-1.0)
    with pytest.raises(InvalidAudioError, match=r"\(B, 1, F, T\)"):
        build("dymn04")(torch.randn(2, 64, 100))


def test_batch_items_are_independent():
    """The batch is folded into conv groups: each sample must see only its own kernel."""
    torch.manual_seed(0)
    model = build("dymn04").eval()
    randomize(model)
    spec = torch.randn(3, 1, 64, 40)
    with torch.no_grad():
        together = model(spec).grid
        alone = torch.cat([model(s[None]).grid for s in spec])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_stages_partition_the_parameters():
    model = build("dymn04")
    stages = model.stages()
    assert stages[0] is model.stem and stages[-1] is model.last_conv
    ids = [id(p) for s in stages for p in s.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_trains():
    torch.manual_seed(0)
    model = build("dymn04")
    spec = torch.randn(2, 1, 64, 30, requires_grad=True)
    model(spec).grid.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert torch.isfinite(spec.grad).all()


# --- weight table ------------------------------------------------------------------------

RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
# tag -> (upstream file, AudioSet mAP reported upstream: README table or file name)
EXPECTED_WEIGHTS = {
    "dymn04.as": ("dymn04_as.pt", 0.450),
    "dymn04.as_replace_se": ("dymn04_replace_se_as.pt", None),
    "dymn04.im": ("dymn04_im.pt", None),
    "dymn10.as": ("dymn10_as.pt", 0.477),
    "dymn10.as_replace_se": ("dymn10_replace_se_as.pt", None),
    "dymn10.im": ("dymn10_im.pt", None),
    "dymn20.as": ("dymn20_as_mAP_493.pt", 0.493),
    "dymn20.as_1": ("dymn20_as.pt", 0.491),
    "dymn20.as_2": ("dymn20_as_mAP_489.pt", 0.489),
    "dymn20.as_3": ("dymn20_as_mAP_490.pt", 0.490),
    "dymn20.im": ("dymn20_im.pt", None),
}


def test_weight_table():
    assert audiozoo.list_models("dymn*", pretrained=True) == sorted(EXPECTED_WEIGHTS)
    for name, (filename, mAP) in EXPECTED_WEIGHTS.items():
        cfg = audiozoo.get_pretrained_cfg(name)
        assert cfg.url == RELEASE + filename
        assert cfg.metrics == ({"audioset_mAP": mAP} if mAP is not None else {})
        assert cfg.converter == "dymn" and cfg.converter in converters
        assert cfg.license == "MIT" and "2310.15648" in cfg.paper and "Schmid" in cfg.citation
        assert cfg.head["name"] == "mlp" and cfg.head["hidden"] == EMBED[cfg.arch][1]
        assert cfg.num_classes == 527
        imagenet = cfg.tag == "im"
        assert cfg.label_set == (None if imagenet else "audioset")
        assert ("num_classes" in cfg.head) == imagenet
        assert cfg.backbone_kwargs.get("temperature", 1.0) == (30.0 if imagenet else 1.0)
        replace_se = cfg.tag == "as_replace_se"
        assert cfg.backbone_kwargs.get("use_dy_blocks", "all") == (
            "replace_se" if replace_se else "all"
        )
        if imagenet or replace_se:
            assert cfg.notes
    # the same frontend as the MobileNetV3 AudioSet weights
    mn = audiozoo.get_pretrained_cfg("mn10.as").frontend
    for name in EXPECTED_WEIGHTS:
        assert audiozoo.get_pretrained_cfg(name).frontend == mn


def test_imagenet_tag_builds_at_temperature_30():
    model = audiozoo.create("dymn04.im", pretrained=False)
    assert model.backbone.temperature == 30.0 and model.labels is None
    assert model.head.num_classes == 527


# --- converter -----------------------------------------------------------------------------


def _to_upstream(native: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """audiozoo keys -> EfficientAT DyMN keys, written independently of the converter's rules."""
    top = {"stem": "in_c", "blocks": "layers", "last_conv": "out_c"}
    out = {}
    for key, value in native.items():
        if key.startswith("head."):
            layer, name = key.split(".")[1:]
            index = {"fc1": 2, "fc2": 5}[layer]
            out[f"classifier.{index}.{name}"] = value
            continue
        parts = key.split(".")[1:]
        parts[0] = top[parts[0]]
        if parts[-2] == "attention":
            parts[-2:-1] = ["residuals", "0"]
        elif parts[-2] == "coefs":
            parts[-2:-1] = ["coef_net", "0"]
        elif parts[-1] == "weight" and value.dim() == 5:  # (K, out, in, k, k) -> (1, 1, K, N)
            value = value.reshape(1, 1, value.shape[0], -1)
        out[".".join(parts)] = value
        if parts[2] == "depth_act":  # upstream also saves DyReLU-B's two constant buffers
            prefix = ".".join(parts[:3])
            out[prefix + ".lambdas"] = torch.tensor([1.0, 1.0, 0.5, 0.5])
            out[prefix + ".init_v"] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    return out


@pytest.mark.parametrize("use_dy_blocks", ["all", "replace_se"])
def test_converter_round_trip(use_dy_blocks):
    torch.manual_seed(0)
    model = nn.ModuleDict({"backbone": DyMN(width_mult=0.1, use_dy_blocks=use_dy_blocks)})
    model["head"] = MLPHead(model["backbone"].num_features, 527, hidden=128)
    native = {
        k: torch.randn(v.shape) if v.is_floating_point() else v + 7
        for k, v in model.state_dict().items()
    }
    upstream = _to_upstream(native)
    assert "layers.0.depth_act.lambdas" in upstream or use_dy_blocks == "replace_se"
    assert "layers.3.depth_act.init_v" in upstream
    assert upstream["layers.3.depth_conv.weight"].shape[:3] == (1, 1, 4)
    converted = converters.get("dymn")(upstream)
    assert converted.keys() == native.keys()
    for k in native:
        assert torch.equal(converted[k], native[k]), k
    model.load_state_dict(converted, strict=True)
    assert converters.get("dymn")({"state_dict": upstream}).keys() == native.keys()


def _small_upstream() -> dict[str, torch.Tensor]:
    model = nn.ModuleDict({"backbone": DyMN(width_mult=0.1)})
    return _to_upstream(model.state_dict())


@pytest.mark.parametrize(
    "bad", ["classifier.3.weight", "module.in_c.0.weight", "layers.2.ca.weight", "extra"]
)
def test_converter_unknown_key_raises(bad):
    sd = _small_upstream()
    sd[bad] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=re.escape(bad)):
        converters.get("dymn")(sd)


def test_converter_checks_dyrelu_constants():
    sd = _small_upstream()
    sd["layers.4.depth_act.lambdas"] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    with pytest.raises(CheckpointError, match="lambdas"):
        converters.get("dymn")(sd)


def test_converter_checks_kernel_sizes():
    sd = _small_upstream()
    w = sd["layers.4.depth_conv.weight"]
    sd["layers.4.depth_conv.weight"] = w[..., :-1]
    with pytest.raises(CheckpointError, match="depth_conv"):
        converters.get("dymn")(sd)
    sd = _small_upstream()
    del sd["layers.4.proj_norm.weight"]
    with pytest.raises(CheckpointError, match="proj_norm"):
        converters.get("dymn")(sd)
    sd = _small_upstream()
    sd["layers.4.exp_conv.weight"] = sd["layers.4.exp_conv.weight"].reshape(1, 2, 2, -1)
    with pytest.raises(CheckpointError, match="attention group"):
        converters.get("dymn")(sd)


def test_mobilenet_checkpoint_is_refused():
    """An mn checkpoint is not a DyMN one: a CheckpointError naming the keys."""
    mn = {"features.0.0.weight": torch.zeros(8, 1, 3, 3), "classifier.2.bias": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=re.escape("features.0.0.weight")):
        converters.get("dymn")(mn)


@pytest.mark.parametrize(("arch", "macs"), [("dymn04", 0.12), ("dymn10", 0.58), ("dymn20", 2.2)])
def test_macs_match_upstream_readme(arch, macs):
    """Upstream's README: 0.12 / 0.58 / 2.2 GMACs for a 10 s clip (DeepSpeed profiler)."""
    from audiozoo.stats import count_macs

    model = audiozoo.create(arch, pretrained=False)
    assert round(count_macs(model, seconds=10) / 1e9, 2 if macs < 1 else 1) == macs

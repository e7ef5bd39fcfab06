"""Seeded BEATs weights in the upstream (microsoft/unilm) state-dict layout, for parity tests.

The parity fixtures of ``tests/fixtures/beats/`` were produced by upstream code loaded with exactly
these weights; the tests regenerate them here instead of storing ~360 MB of tensors. Every tensor
comes from its own generator, seeded by ``seed`` and the CRC32 of its upstream name, so the values do
not depend on the order of the keys. :func:`checksum` is stored with the fixtures: if torch's
random number generator ever changes, the test says so instead of reporting a parity failure.

The scales give outputs of trained-model-like spread: LayerNorm weights ``1 + 0.1 N``, biases
``0.1 N``, matrices ``N / sqrt(fan_in)``, the (shared) relative position table ``N``, the gate
scale ``1 + 0.1 N``, the weight-norm magnitude ``1 + 0.2 N``.
"""

from __future__ import annotations

import math
import zlib

import torch

# A BEATs_iter3-style configuration as stored in the unilm checkpoints' "cfg" (the subset that
# matters; PretrainedSED's BEATsConfig holds the same values).
UNILM_CFG: dict[str, object] = {
    "input_patch_size": 16,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 1.0,
    "layer_norm_first": False,
    "deep_norm": True,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05,
    "dropout_input": 0.1,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": True,
    "num_buckets": 320,
    "max_distance": 800,
    "gru_rel_pos": True,
    "finetuned_model": False,
    "predictor_dropout": 0.1,
    "predictor_class": 527,
}


def upstream_shapes(cfg: dict[str, object]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of upstream ``BEATs(BEATsConfig(cfg)).state_dict()`` (unilm layout:
    ``weight_g``/``weight_v`` weight norm, the relative position table under every layer)."""
    p, d = int(cfg["embed_dim"]), int(cfg["encoder_embed_dim"])  # type: ignore[call-overload]
    ffn, h = int(cfg["encoder_ffn_embed_dim"]), int(cfg["encoder_attention_heads"])  # type: ignore[call-overload]
    k, groups = int(cfg["conv_pos"]), int(cfg["conv_pos_groups"])  # type: ignore[call-overload]
    patch = int(cfg["input_patch_size"])  # type: ignore[call-overload]
    shapes: dict[str, tuple[int, ...]] = {
        "post_extract_proj.weight": (d, p),
        "post_extract_proj.bias": (d,),
        "patch_embedding.weight": (p, 1, patch, patch),
        "encoder.pos_conv.0.bias": (d,),
        "encoder.pos_conv.0.weight_g": (1, 1, k),
        "encoder.pos_conv.0.weight_v": (d, d // groups, k),
    }
    for i in range(int(cfg["encoder_layers"])):  # type: ignore[call-overload]
        L = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            shapes[f"{L}self_attn.{proj}.weight"] = (d, d)
            shapes[f"{L}self_attn.{proj}.bias"] = (d,)
        shapes[f"{L}self_attn.relative_attention_bias.weight"] = (int(cfg["num_buckets"]), h)  # type: ignore[call-overload]
        shapes[f"{L}self_attn.grep_linear.weight"] = (8, d // h)
        shapes[f"{L}self_attn.grep_linear.bias"] = (8,)
        shapes[f"{L}self_attn.grep_a"] = (1, h, 1, 1)
        shapes[f"{L}self_attn_layer_norm.weight"] = (d,)
        shapes[f"{L}self_attn_layer_norm.bias"] = (d,)
        shapes[f"{L}fc1.weight"] = (ffn, d)
        shapes[f"{L}fc1.bias"] = (ffn,)
        shapes[f"{L}fc2.weight"] = (d, ffn)
        shapes[f"{L}fc2.bias"] = (d,)
        shapes[f"{L}final_layer_norm.weight"] = (d,)
        shapes[f"{L}final_layer_norm.bias"] = (d,)
    shapes["encoder.layer_norm.weight"] = (d,)
    shapes["encoder.layer_norm.bias"] = (d,)
    shapes["layer_norm.weight"] = (p,)
    shapes["layer_norm.bias"] = (p,)
    if cfg.get("finetuned_model"):
        shapes["predictor.weight"] = (int(cfg["predictor_class"]), d)  # type: ignore[call-overload]
        shapes["predictor.bias"] = (int(cfg["predictor_class"]),)  # type: ignore[call-overload]
    return shapes


def _shared_name(name: str) -> str:
    """The relative position table is one tensor: every layer's copy is layer 0's."""
    if name.endswith("self_attn.relative_attention_bias.weight"):
        return "encoder.layers.0.self_attn.relative_attention_bias.weight"
    return name


def seeded_tensor(name: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The value of upstream parameter ``name`` (see the module docstring for the scales)."""
    name = _shared_name(name)
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    r = torch.randn(shape, generator=g)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith(("layer_norm.weight", "final_layer_norm.weight")):
        return 1.0 + 0.1 * r
    if name.endswith("relative_attention_bias.weight"):
        return r
    if leaf == "grep_a":
        return 1.0 + 0.1 * r
    if leaf == "weight_g":
        return 1.0 + 0.2 * r
    if leaf == "weight_v":
        return r
    if leaf == "bias" or len(shape) == 1:
        return 0.1 * r
    return r / math.sqrt(math.prod(shape[1:]))


def seeded_state_dict(cfg: dict[str, object], seed: int) -> dict[str, torch.Tensor]:
    """Upstream-layout state dict of the configuration ``cfg`` with seeded values."""
    return {name: seeded_tensor(name, shape, seed) for name, shape in upstream_shapes(cfg).items()}


def seeded_heads(num_classes: int, dim: int, seed: int) -> dict[str, torch.Tensor]:
    """PretrainedSED's ``strong_head`` / ``weak_head`` (Linear dim -> num_classes), seeded."""
    return {
        f"{head}.{p}": seeded_tensor(f"{head}.{p}", shape, seed)
        for head in ("strong_head", "weak_head")
        for p, shape in (("weight", (num_classes, dim)), ("bias", (num_classes,)))
    }


def checksum(sd: dict[str, torch.Tensor]) -> float:
    """Order-independent fingerprint of a state dict (sum over tensors of the mean |value| times
    a per-name weight), stored with fixtures to detect RNG drift."""
    total = 0.0
    for name in sorted(sd):
        weight = 1.0 + (zlib.crc32(name.encode()) % 997) / 997.0
        total += weight * sd[name].double().abs().mean().item()
    return total


def to_pretrainedsed(
    sd: dict[str, torch.Tensor], heads: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The same weights as a PretrainedSED ``PredictionsWrapper`` file: BEATs keys under
    ``model.model.``, weight norm as ``torch.nn.utils.parametrizations`` saves it
    (``parametrizations.weight.original0`` = g, ``original1`` = v), heads at the top level."""
    out = {}
    for name, value in sd.items():
        name = name.replace("pos_conv.0.weight_g", "pos_conv.0.parametrizations.weight.original0")
        name = name.replace("pos_conv.0.weight_v", "pos_conv.0.parametrizations.weight.original1")
        out["model.model." + name] = value
    out.update(heads or {})
    return out

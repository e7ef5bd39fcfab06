"""BEATs checkpoints: the microsoft/unilm release and the PretrainedSED release.

One converter, ``beats``, reads both formats:

- **unilm** (``BEATs_iter3.pt``, ``BEATs_iter3_plus_AS2M.pt``, ``..._finetuned_on_AS2M_cpt1.pt``
  ...): ``{"cfg": {...}, "model": state_dict, "label_dict": {index: AudioSet MID}}`` (the last one
  only in fine-tuned files), keys as in upstream's ``BEATs`` module (``patch_embedding.weight``,
  ``encoder.layers.0.self_attn.q_proj.weight``, ``predictor.weight`` ...);
- **PretrainedSED** (``BEATs_ssl.pt``, ``BEATs_weak.pt``, ``BEATs_strong_1.pt``): a plain state
  dict of its ``PredictionsWrapper``: the same BEATs keys under ``model.model.`` (or
  ``model.beats.``, the names its loader renames them to), plus ``strong_head.*`` / ``weak_head.*``
  when the file has trained heads.

Whole-dict steps (``prepare``), on upstream names before the rules:

1. weight norm of the positional convolution: ``weight = g * v / ||v||`` with the norm over every
   dimension but 2 (the kernel axis; upstream ``weight_norm(..., dim=2)``), from ``weight_g`` /
   ``weight_v`` (``torch.nn.utils.weight_norm``, unilm) or ``parametrizations.weight.original0`` /
   ``original1`` (``torch.nn.utils.parametrizations.weight_norm``, PretrainedSED, speechbrain);
2. the relative position table is one module shared by all layers, saved once per layer: layer 0's
   copy is kept, every other copy must be equal (or absent);
3. query, key and value Linear layers are concatenated (rows ``q | k | v``) into the fused
   ``qkv`` of audiozoo's attention.

Fine-tuned unilm checkpoints carry ``label_dict`` (predictor row -> AudioSet MID). Its order is not
the order of AudioSet's ``class_labels_indices.csv`` (see unilm issue 1012), so the converter
reorders the predictor rows into that canonical order, the order of audiozoo's ``audioset`` label
set; a fine-tuned checkpoint without ``label_dict`` is refused rather than mislabelled. The
``cfg`` of unilm files is checked against what this implementation computes (deep norm, gated
relative positions up to distance 800, post-LN, GELU).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .._errors import CheckpointError
from ..labels import get_label_set
from .base import Converter, Rule, StateDict, fuse_qkv, register_converter

__all__ = ["BEATS", "BEATsConverter", "fold_weight_norm", "prepare_beats"]

_PREFIX = r"(?:model\.(?:model|beats)\.)?"  # PretrainedSED's wrapper (file / in-memory names)
_P = r"(weight|bias)"
_LAYER = rf"{_PREFIX}encoder\.layers\.(\d+)\."

# What the checkpoints' cfg must say for this implementation to compute the same function: the
# settings that no tensor shape reveals (shapes are checked when the weights are loaded).
EXPECTED_CFG: dict[str, object] = {
    "layer_norm_first": False,
    "deep_norm": True,
    "relative_position_embedding": True,
    "gru_rel_pos": True,
    "max_distance": 800,
    "activation_fn": "gelu",
}


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor, dim: int) -> torch.Tensor:
    """The weight that weight norm computes: ``g * v / ||v||``, the norm taken over every
    dimension of ``v`` except ``dim`` (``torch._weight_norm``)."""
    other = tuple(i for i in range(v.ndim) if i != dim)
    norm = v.pow(2).sum(dim=other, keepdim=True).sqrt()
    return v * (g / norm)


_WN = re.compile(
    rf"({_PREFIX}encoder\.pos_conv\.0\.)"
    r"(weight_g|weight_v|parametrizations\.weight\.original0|parametrizations\.weight\.original1)"
)
_REL = re.compile(rf"({_PREFIX}encoder\.)layers\.(\d+)\.self_attn\.relative_attention_bias\.weight")
_QKV = re.compile(rf"({_LAYER}self_attn\.)(q|k|v)_proj\.{_P}")


def prepare_beats(sd: StateDict) -> StateDict:
    """Fold weight norm, de-duplicate the shared relative position table and fuse q/k/v (see
    the module docstring). Keys that none of this concerns pass through unchanged."""
    out: StateDict = {}
    norms: dict[str, dict[str, torch.Tensor]] = {}
    tables: dict[str, dict[int, torch.Tensor]] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if m := _WN.fullmatch(key):
            part = "g" if m[2] in ("weight_g", "parametrizations.weight.original0") else "v"
            if part in norms.setdefault(m[1], {}):
                raise CheckpointError(f"beats: {m[1]}weight is saved twice under weight norm")
            norms[m[1]][part] = value
        elif m := _REL.fullmatch(key):
            tables.setdefault(m[1], {})[int(m[2])] = value
        elif m := _QKV.fullmatch(key):
            qkv.setdefault(f"{m[1]}qkv_proj.{m[4]}", {})[m[3]] = value
        else:
            out[key] = value
    for prefix, parts in norms.items():
        if set(parts) != {"g", "v"}:
            raise CheckpointError(
                f"beats: {prefix}weight needs both weight-norm parts (g and v); the checkpoint "
                f"has only {', '.join(parts)}"
            )
        if prefix + "weight" in out:
            raise CheckpointError(f"beats: {prefix}weight is saved both plain and weight-normed")
        out[prefix + "weight"] = fold_weight_norm(parts["g"], parts["v"], dim=2)
    for prefix, per_layer in tables.items():
        if 0 not in per_layer:
            raise CheckpointError(
                "beats: the relative position table is shared by all layers and must be saved "
                f"with layer 0; found it only for layers {sorted(per_layer)}"
            )
        first = per_layer[0]
        for i, table in sorted(per_layer.items()):
            if not torch.equal(table, first):
                raise CheckpointError(
                    f"beats: layer {i}'s relative position table differs from layer 0's; BEATs "
                    "shares one table across layers, so this is not a BEATs checkpoint"
                )
        out[prefix + "relative_attention_bias.weight"] = first
    out.update(fuse_qkv("beats", qkv))
    return out


_RULES = (
    # patch_embedding.weight (512, 1, 16, 16) -> backbone.patch_embed.weight
    Rule(rf"{_PREFIX}patch_embedding\.weight", "backbone.patch_embed.weight"),
    # layer_norm.weight (512) -> backbone.patch_norm.weight
    Rule(rf"{_PREFIX}layer_norm\.{_P}", r"backbone.patch_norm.\1"),
    # post_extract_proj.weight (768, 512) -> backbone.proj.weight
    Rule(rf"{_PREFIX}post_extract_proj\.{_P}", r"backbone.proj.\1"),
    # encoder.pos_conv.0.weight (folded by prepare) / .bias -> backbone.pos_conv.*
    Rule(rf"{_PREFIX}encoder\.pos_conv\.0\.{_P}", r"backbone.pos_conv.\1"),
    # encoder.layer_norm.weight -> backbone.norm.weight (after the positional convolution)
    Rule(rf"{_PREFIX}encoder\.layer_norm\.{_P}", r"backbone.norm.\1"),
    # encoder.relative_attention_bias.weight (layer 0's, by prepare) -> backbone.rel_pos_bias
    Rule(rf"{_PREFIX}encoder\.relative_attention_bias\.weight", "backbone.rel_pos_bias.weight"),
    # encoder.layers.0.self_attn.qkv_proj.weight (fused by prepare) -> backbone.blocks.0.attn.qkv
    Rule(rf"{_LAYER}self_attn\.qkv_proj\.{_P}", r"backbone.blocks.\1.attn.qkv.\2"),
    # encoder.layers.0.self_attn.out_proj.weight -> backbone.blocks.0.attn.proj.weight
    Rule(rf"{_LAYER}self_attn\.out_proj\.{_P}", r"backbone.blocks.\1.attn.proj.\2"),
    # encoder.layers.0.self_attn.grep_linear.weight (8, 64) -> backbone.blocks.0.attn.gate
    Rule(rf"{_LAYER}self_attn\.grep_linear\.{_P}", r"backbone.blocks.\1.attn.gate.\2"),
    # encoder.layers.0.self_attn.grep_a (1, H, 1, 1) -> backbone.blocks.0.attn.gate_scale
    Rule(rf"{_LAYER}self_attn\.grep_a", r"backbone.blocks.\1.attn.gate_scale"),
    # encoder.layers.0.self_attn_layer_norm.weight -> backbone.blocks.0.norm1.weight
    Rule(rf"{_LAYER}self_attn_layer_norm\.{_P}", r"backbone.blocks.\1.norm1.\2"),
    # encoder.layers.0.fc1.weight -> backbone.blocks.0.mlp.fc1.weight (and fc2)
    Rule(rf"{_LAYER}(fc1|fc2)\.{_P}", r"backbone.blocks.\1.mlp.\2.\3"),
    # encoder.layers.0.final_layer_norm.weight -> backbone.blocks.0.norm2.weight
    Rule(rf"{_LAYER}final_layer_norm\.{_P}", r"backbone.blocks.\1.norm2.\2"),
    # predictor.weight (527, 768): fine-tuned unilm checkpoints -> head.fc.weight (linear head)
    Rule(rf"predictor\.{_P}", r"head.fc.\1"),
    # strong_head.weight (447, 768): PretrainedSED's per-frame head -> head.strong.weight
    Rule(rf"strong_head\.{_P}", r"head.strong.\1"),
    # weak_head.weight (447, 768): PretrainedSED's clip head -> head.weak.weight
    Rule(rf"weak_head\.{_P}", r"head.weak.\1"),
)


@dataclass(frozen=True)
class BEATsConverter(Converter):
    """The rules above plus the checks that need the whole unilm file: its ``cfg`` and the
    ``label_dict`` order of fine-tuned predictors (see the module docstring)."""

    def __call__(self, checkpoint: Mapping[str, object]) -> StateDict:
        out = super().__call__(checkpoint)
        cfg = checkpoint.get("cfg")
        if isinstance(cfg, Mapping):
            _check_cfg(cfg, has_predictor="head.fc.weight" in out)
        if "head.fc.weight" in out:
            labels = checkpoint.get("label_dict")
            if not isinstance(labels, Mapping):
                raise CheckpointError(
                    "beats: this fine-tuned BEATs checkpoint has no 'label_dict', so the order of "
                    "its 527 classes is unknown (the unilm release does not use AudioSet's "
                    "class_labels_indices order); load the original unilm file, which has it"
                )
            order = canonical_order(labels, out["head.fc.weight"].shape[0])
            out["head.fc.weight"] = out["head.fc.weight"][order]
            out["head.fc.bias"] = out["head.fc.bias"][order]
        return out


def _check_cfg(cfg: Mapping[str, object], has_predictor: bool) -> None:
    wrong = {k: cfg[k] for k, v in EXPECTED_CFG.items() if k in cfg and cfg[k] != v}
    if wrong:
        raise CheckpointError(
            "beats: the checkpoint's cfg describes a BEATs variant this implementation does not "
            f"compute: {', '.join(f'{k}={v!r} (expected {EXPECTED_CFG[k]!r})' for k, v in wrong.items())}"
        )
    finetuned = bool(cfg.get("finetuned_model", False))
    if finetuned != has_predictor:
        raise CheckpointError(
            f"beats: cfg says finetuned_model={finetuned} but the state dict "
            f"{'has' if has_predictor else 'has no'} predictor weights"
        )


def canonical_order(label_dict: Mapping[object, object], num_classes: int) -> torch.Tensor:
    """Row order that sorts a predictor's classes into AudioSet's canonical order.

    Args:
        label_dict: predictor row (int or str) -> AudioSet MID (``"/m/09x0r"``), as unilm's
            fine-tuned checkpoints store it.
        num_classes: rows of the predictor.

    Returns:
        (num_classes,) int64 ``order`` with ``weight[order][i]`` the row of canonical class ``i``.
    """
    canonical = get_label_set("audioset").ids
    assert canonical is not None  # the AudioSet label set carries its MIDs
    if num_classes != len(canonical):
        raise CheckpointError(
            f"beats: the predictor has {num_classes} classes; AudioSet has {len(canonical)}"
        )
    mids: list[str] = []
    for i in range(num_classes):
        mid = label_dict.get(i, label_dict.get(str(i)))
        if not isinstance(mid, str):
            raise CheckpointError(f"beats: label_dict has no AudioSet MID for predictor row {i}")
        mids.append(mid)
    position = {mid: row for row, mid in enumerate(mids)}
    missing = [mid for mid in canonical if mid not in position]
    if missing or len(position) != num_classes:
        raise CheckpointError(
            "beats: label_dict is not a permutation of AudioSet's 527 MIDs "
            f"(missing {missing[:5]}{' ...' if len(missing) > 5 else ''})"
        )
    return torch.tensor([position[mid] for mid in canonical], dtype=torch.long)


BEATS = register_converter(BEATsConverter("beats", _RULES, prepare=prepare_beats))

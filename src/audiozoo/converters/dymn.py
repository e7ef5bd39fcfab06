"""EfficientAT DyMN checkpoints (``dymn*_as.pt``, ``dymn*_im.pt`` from the fschmid56/EfficientAT
releases) -> :class:`~audiozoo.backbones.dymn.DyMN` + MLP head.

Upstream files are plain state dicts of ``models/dymn/model.py`` ``DyMN``. The network keeps its
module names except for the top level and three details:

=========================================  ===============================================
upstream key                               audiozoo key
=========================================  ===============================================
``in_c.{0,1}.*``                           ``backbone.stem.{0,1}.*``
``layers.N.*``                             ``backbone.blocks.N.*``
``out_c.{0,1}.*``                          ``backbone.last_conv.{0,1}.*``
``*_conv.weight`` (1, 1, K, out·in·k·k)    ``*_conv.weight`` (K, out, in/groups, k, k)
``*_conv.residuals.0.*`` (K, H)            ``*_conv.attention.*``
``depth_act.coef_net.0.*``                 ``depth_act.coefs.*``
``depth_act.lambdas`` / ``init_v``         dropped (DyReLU-B's fixed constants, checked)
``classifier.2/5.*`` (``mlp`` head)        ``head.fc1.*`` / ``head.fc2.*``
``classifier.0/1.*`` (``fully_conv``)      ``head.conv.*`` / ``head.bn.*``
=========================================  ===============================================

The dynamic-conv kernels are stored flattened upstream; their (out, in/groups, k, k) shape follows
from the block's other tensors (BatchNorm sizes, the context generator's input channels), which
:func:`unflatten_kernels` reads before the key rules run. Static MobileNetV3 blocks of the
``replace_se`` variant (``layers.N.block.M.*``) keep their keys under ``backbone.blocks.N``.
"""

from __future__ import annotations

import math
import re

import torch

from .._errors import CheckpointError
from .base import BN_PARAMS, Converter, Rule, StateDict, register_converter
from .efficientat import HEAD_RULES

__all__ = ["DYMN", "unflatten_kernels"]

_KERNEL = re.compile(r"layers\.(\d+)\.(exp|depth|proj)_conv\.weight")


def unflatten_kernels(sd: StateDict) -> StateDict:
    """Reshape every dynamic-conv kernel (1, 1, K, out·(in/groups)·k·k) to (K, out, in/groups,
    k, k), reading the sizes from the same block: the BatchNorm after the conv gives ``out``,
    the context generator's ``joint_conv`` the block's input channels; the depthwise conv has
    one input channel per group and a square kernel."""
    out = dict(sd)
    for key, weight in sd.items():
        m = _KERNEL.fullmatch(key)
        if m is None:
            continue
        block, conv = f"layers.{m.group(1)}.", m.group(2)
        # out: the BatchNorm after the conv; in (per group): the block input for the expansion,
        # 1 for the depthwise conv, the expanded channels for the projection
        sources = [f"{block}{conv}_norm.weight"]
        if conv == "exp":
            sources.append(f"{block}context_gen.joint_conv.weight")
        elif conv == "proj":
            sources.append(f"{block}depth_norm.weight")
        missing = [s for s in sources if s not in sd]
        if missing:
            raise CheckpointError(f"dymn: {key} comes without {', '.join(missing)}")
        out_channels = sd[sources[0]].numel()
        in_channels = 1
        if conv == "exp":
            in_channels = sd[sources[1]].shape[1]
        elif conv == "proj":
            in_channels = sd[sources[1]].numel()
        if weight.dim() != 4 or weight.shape[:2] != (1, 1):
            raise CheckpointError(
                f"dymn: {key} has shape {tuple(weight.shape)}, expected (1, 1, K, N) "
                "(one attention group, as all released DyMNs)"
            )
        per_kernel = weight.shape[3]
        kernel_area = per_kernel // (out_channels * in_channels)
        size = math.isqrt(kernel_area)
        if size * size * out_channels * in_channels != per_kernel:
            raise CheckpointError(
                f"dymn: {key} holds {per_kernel} values per kernel, not out ({out_channels}) x "
                f"in ({in_channels}) x a square kernel"
            )
        out[key] = weight.reshape(weight.shape[2], out_channels, in_channels, size, size)
    return out


def _dyrelu_constant(key: str, value: torch.Tensor) -> StateDict:
    """DyReLU-B's ``lambdas`` = (1,)·M + (0.5,)·M and ``init_v`` = (1, 0, ...): constants that
    audiozoo builds itself. A checkpoint with other values is not one DyMN can reproduce."""
    pieces = value.numel() // 2
    if key.endswith("lambdas"):
        expected = torch.tensor([1.0] * pieces + [0.5] * pieces)
    else:
        expected = torch.tensor([1.0] + [0.0] * (2 * pieces - 1))
    if value.shape != expected.shape or not torch.equal(value.float().cpu(), expected):
        raise CheckpointError(f"dymn: {key} = {value.tolist()}, expected {expected.tolist()}")
    return {}


DYMN = register_converter(
    Converter(
        "dymn",
        (
            # stem: in_c.1.running_var -> backbone.stem.1.running_var
            Rule(r"in_c\.(.+)", r"backbone.stem.\1"),
            # last conv: out_c.0.weight -> backbone.last_conv.0.weight
            Rule(r"out_c\.(.+)", r"backbone.last_conv.\1"),
            # kernel attention: layers.3.depth_conv.residuals.0.weight
            #   -> backbone.blocks.3.depth_conv.attention.weight
            Rule(
                r"layers\.(\d+)\.(exp|depth|proj)_conv\.residuals\.0\.(weight|bias)",
                r"backbone.blocks.\1.\2_conv.attention.\3",
            ),
            # DyReLU-B coefficients: layers.3.depth_act.coef_net.0.bias
            #   -> backbone.blocks.3.depth_act.coefs.bias
            Rule(
                r"layers\.(\d+)\.depth_act\.coef_net\.0\.(weight|bias)",
                r"backbone.blocks.\1.depth_act.coefs.\2",
            ),
            # DyReLU-B constants: layers.3.depth_act.lambdas -> checked and dropped
            Rule(r"layers\.\d+\.depth_act\.(lambdas|init_v)", None, _dyrelu_constant),
            # dynamic-conv kernels (unflattened by prepare): layers.3.exp_conv.weight
            #   -> backbone.blocks.3.exp_conv.weight
            Rule(
                r"layers\.(\d+)\.((?:exp|depth|proj)_conv)\.weight", r"backbone.blocks.\1.\2.weight"
            ),
            # context generator: layers.3.context_gen.joint_norm.running_mean
            #   -> backbone.blocks.3.context_gen.joint_norm.running_mean
            Rule(
                rf"layers\.(\d+)\.context_gen\.(joint_conv\.weight|joint_norm\.{BN_PARAMS}|conv_[ft]\.(?:weight|bias))",
                r"backbone.blocks.\1.context_gen.\2",
            ),
            # BatchNorms after the convs: layers.3.proj_norm.bias -> backbone.blocks.3.proj_norm.bias
            Rule(
                rf"layers\.(\d+)\.((?:exp|depth|proj)_norm)\.{BN_PARAMS}",
                r"backbone.blocks.\1.\2.\3",
            ),
            # static MobileNetV3 blocks of replace_se: layers.0.block.1.0.weight
            #   -> backbone.blocks.0.block.1.0.weight (conv), layers.0.block.1.1.bias (BatchNorm)
            Rule(
                rf"layers\.(\d+)\.block\.(\d+)\.(0\.weight|1\.{BN_PARAMS})",
                r"backbone.blocks.\1.block.\2.\3",
            ),
            # classifier.2.weight -> head.fc1.weight ...: EfficientAT's mlp / fully conv. heads
            *HEAD_RULES,
        ),
        prepare=unflatten_kernels,
    )
)

"""The course CNN: a small residual network for teaching and quick baselines (random init only).

Residual blocks follow He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385 (the two-conv ``BasicBlock``).

Layout, with ``base`` = 16 and ``multiplier`` = 2 (the defaults) and a (B, 1, 128, 1000) input::

    stem    5x5 conv stride 2 + BN + ReLU                  (B,  16, 64, 500)
    layer1  BasicBlock(16 -> 32), 2x2 max-pool             (B,  32, 32, 250)
    layer2  BasicBlock(32 -> 32), 2x2 max-pool             (B,  32, 16, 125)
    layer3  BasicBlock(32 -> 64, stride 2)                 (B,  64,  8,  63)
    layer4  BasicBlock(64 -> 128, stride 2)                (B, 128,  4,  32)

Channels are ``base, base*m, base*m, base*m**2, base*m**3``; the total stride is 32 along both
frequency and time; :attr:`CNN.num_features` = ``base * m**3``.
"""

from __future__ import annotations

import torch
from torch import nn

from .._errors import InvalidAudioError, RegistryError
from ..pretrained import PretrainedCfg
from .base import Backbone, Features, check_spectrogram, register_backbone

__all__ = ["CNN", "BasicBlock"]


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN with ReLU, plus a shortcut (1x1 conv + BN when the shape changes).

    Args:
        in_channels, out_channels: channels before and after the block.
        stride: stride of the first conv (and of the shortcut).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def out_size(self, size: int) -> int:
        """Output length along frequency or time (the 3x3 conv and the 1x1 shortcut agree)."""
        return _out_size(size, 3, self.stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, F, T). Returns: (B, C_out, F', T')."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CNN(Backbone):
    """The course CNN: spectrogram (B, 1, F, T) → grid (B, base·m³, F/32, T/32).

    Args:
        base: channels of the stem.
        multiplier: channel growth factor ``m`` between stages.

    The shortest input along frequency and time is :attr:`min_frames` = 7 (enough for both
    max-pools to see two frames).
    """

    def __init__(self, base: int = 16, multiplier: int = 2) -> None:
        super().__init__()
        if base < 1 or multiplier < 1:
            raise RegistryError(f"base and multiplier must be positive, got {base}, {multiplier}")
        self.base, self.multiplier = base, multiplier
        c1, c2, c3, c4 = (
            base * multiplier,
            base * multiplier,
            base * multiplier**2,
            base * multiplier**3,
        )
        self.stem = nn.Sequential(
            nn.Conv2d(1, base, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(base),
            nn.ReLU(),
        )
        self.layer1 = nn.Sequential(BasicBlock(base, c1), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(BasicBlock(c1, c2), nn.MaxPool2d(2))
        self.layer3 = BasicBlock(c2, c3, stride=2)
        self.layer4 = BasicBlock(c3, c4, stride=2)
        self.num_features = c4
        self.time_stride = 32
        self.min_frames = next(t for t in range(1, 64) if self.num_output_frames(t) > 0)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def num_output_frames(self, num_frames: int) -> int:
        """``T'`` for ``num_frames`` input frames (0 if the input is too short)."""
        t = _out_size(num_frames, 5, 2, 2)  # stem
        t = t // 2  # layer1: stride-1 block, then max-pool (kernel 2, stride 2, no padding)
        t = t // 2  # layer2: likewise
        if t < 1:
            return 0
        t = self.layer3.out_size(t)
        return self.layer4.out_size(t)

    def forward(self, spec: torch.Tensor) -> Features:
        """Args: spec (B, 1, F, T). Returns: Features with grid (B, num_features, F', T')."""
        check_spectrogram(spec, "CNN")
        if min(spec.shape[2], spec.shape[3]) < self.min_frames:
            raise InvalidAudioError(
                f"CNN needs at least {self.min_frames} frequency bins and frames, got "
                f"{spec.shape[2]} x {spec.shape[3]}; pad the input or use a longer clip"
            )
        x = self.layer2(self.layer1(self.stem(spec)))
        return Features(grid=self.layer4(self.layer3(x)))

    def stages(self) -> list[nn.Module]:
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]

    def layer_time_strides(self) -> list[int]:
        """Stem stride 2, then each stage halves the time resolution."""
        return [2, 4, 8, 16, 32]


@register_backbone(
    "cnn",
    family="CNN",
    default_cfg=PretrainedCfg(
        arch="cnn",
        frontend={"name": "mel"},  # the mel defaults are the course CNN's
        head={"name": "linear", "num_classes": 10},
        notes="No pretrained weights: the course CNN is trained from scratch.",
    ),
)
def cnn(**kwargs: int) -> CNN:
    """The course CNN (``base`` stem channels, channel ``multiplier`` per stage)."""
    return CNN(**kwargs)

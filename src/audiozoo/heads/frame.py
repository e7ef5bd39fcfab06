"""Frame-level heads: (B, C, F', T') features -> (B, T', K) logits, ``frame_hop`` seconds apart."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_int
from ..backbones.base import Features
from .base import Head, register_head

__all__ = ["FrameHead", "RNNHead"]


@register_head("frame")
class FrameHead(Head):
    """Mean over frequency → per-frame Linear."""

    output = "frame"

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__(num_features, num_classes)
        self.fc = nn.Linear(num_features, num_classes)

    def forward(self, features: Features) -> torch.Tensor:
        return self.fc(features.frames())


@register_head("rnn")
class RNNHead(Head):
    """Mean over frequency → bidirectional GRU → per-frame Linear (as in PretrainedSED teachers)."""

    output = "frame"

    def __init__(
        self, num_features: int, num_classes: int, hidden: int = 256, num_layers: int = 1
    ) -> None:
        super().__init__(num_features, num_classes)
        hidden = check_int(hidden, "hidden", self._where())
        num_layers = check_int(num_layers, "num_layers", self._where())
        self.hidden, self.num_layers = hidden, num_layers
        self.rnn = nn.GRU(
            num_features, hidden, num_layers=num_layers, batch_first=True, bidirectional=True
        )
        self.fc = nn.Linear(2 * hidden, num_classes)

    def forward(self, features: Features) -> torch.Tensor:
        seq, _ = self.rnn(features.frames())
        return self.fc(seq)

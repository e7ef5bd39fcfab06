"""The SUPERB / HEAR probing head: a learned softmax-weighted sum of every layer.

Yang et al., "SUPERB: Speech processing Universal PERformance Benchmark", Interspeech 2021,
https://arxiv.org/abs/2105.01051 (the weighted sum of hidden states); Turian et al., "HEAR:
Holistic Evaluation of Audio Representations", PMLR 176, 2022, https://arxiv.org/abs/2203.03022.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from .._checks import check_bool, check_int
from .._errors import RegistryError
from ..backbones.base import Features
from .base import Head, register_head

__all__ = ["WeightedHead"]


@register_head("weighted")
class WeightedHead(Head):
    """Softmax-weighted sum of the clip embeddings of all layers → optional LayerNorm → Linear.

    Every layer ``l`` of the backbone (``model.layer_names``, the backbone output last) is pooled
    like :meth:`Features.pooled` (summary token, else the mean over frequency and time) to
    (B, C_l); layers narrower or wider than ``num_features`` (the stages of a CNN) first go
    through their own Linear projection to ``num_features``; transformers' layers all have the
    width ``num_features`` and are used as they are (the SUPERB recipe). The weights start equal
    (zeros before the softmax); :attr:`weights` shows what was learned.

    Args:
        num_features: width of the backbone output (and of the weighted sum).
        num_classes: outputs.
        layer_dims: width of each layer, input to output. None: filled in by
            :class:`~audiozoo.AudioModel` from one dry run when the model is built.
        layer_norm: LayerNorm on the weighted sum before the classifier.

    Shapes:
        Features with ``layers`` (every stage but the last) -> (B, num_classes).
    """

    needs_layers: ClassVar[bool] = True

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        layer_dims: Sequence[int] | None = None,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(num_features, num_classes)
        self.layer_norm = check_bool(layer_norm, "layer_norm", self._where())
        self.layer_dims: list[int] | None = None
        self.norm = nn.LayerNorm(num_features) if layer_norm else nn.Identity()
        self.fc = nn.Linear(num_features, num_classes)
        if layer_dims is not None:
            self.bind(layer_dims)

    def bind(self, layer_dims: Sequence[int]) -> None:
        """Create the layer weights and projections for layers of widths ``layer_dims``."""
        if isinstance(layer_dims, (str, bytes)) or not isinstance(layer_dims, Sequence):
            raise RegistryError(f"{self._where()}: layer_dims must be a list of widths")
        dims = [check_int(d, "layer_dims[]", self._where()) for d in layer_dims]
        if not dims:
            raise RegistryError(f"{self._where()}: layer_dims must be positive widths, got []")
        self.layer_dims = dims
        self.layer_weights = nn.Parameter(torch.zeros(len(dims)))
        self.proj = nn.ModuleList(
            nn.Identity() if d == self.num_features else nn.Linear(d, self.num_features)
            for d in dims
        )

    @property
    def weights(self) -> torch.Tensor:
        """(L,) the softmax weights of the layers."""
        return torch.softmax(self.layer_weights.detach(), dim=0)

    def forward(self, features: Features) -> torch.Tensor:
        if self.layer_dims is None:
            raise RuntimeError(
                "WeightedHead is not bound to a backbone: build it with layer_dims= or through "
                "audiozoo.create(..., head='weighted')"
            )
        if features.layers is None:
            raise ValueError(
                "WeightedHead needs the features of every layer (Features.layers); AudioModel "
                "records them for heads with needs_layers"
            )
        layers = [*features.layers.values(), features]
        if len(layers) != len(self.layer_dims):
            raise ValueError(
                f"WeightedHead was built for {len(self.layer_dims)} layers, got {len(layers)}"
            )
        pooled = torch.stack(
            [proj(f.pooled()) for proj, f in zip(self.proj, layers, strict=True)]
        )  # (L, B, C)
        w = torch.softmax(self.layer_weights, dim=0).to(pooled.dtype)
        return self.fc(self.norm(torch.einsum("l,lbc->bc", w, pooled)))

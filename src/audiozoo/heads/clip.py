"""Clip-level heads: (B, C, F', T') features -> (B, K) logits, or (B, C) embeddings."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_bool, check_choice, check_int, check_real
from ..backbones.base import Features
from .base import Head, register_head

__all__ = ["AttentionHead", "ConvHead", "IdentityHead", "LinearHead", "MLPHead"]


@register_head("linear")
class LinearHead(Head):
    """Clip pooling (summary token if any, else mean over F', T') → optional LayerNorm → Linear.

    With ``norm=True`` this is the PaSST / AST head (LayerNorm + Linear on the summary token).

    ``chunk_average`` applies to features with :attr:`~audiozoo.backbones.Features.chunk_tokens`
    (a backbone that split a long input into chunks, as CED does): the head then runs on every
    chunk and combines the chunks' logits as upstream did: ``"probs"`` gives the logits whose
    sigmoid is the mean of the chunks' sigmoids (CED's clip output beyond 10.12 s),
    ``"logits"`` the mean of the chunks' logits. With None (default), or features without
    chunks, the head runs once on the pooled token.
    """

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        norm: bool = False,
        norm_eps: float = 1e-5,
        chunk_average: str | None = None,
    ) -> None:
        super().__init__(num_features, num_classes)
        check_bool(norm, "norm", self._where())
        norm_eps = check_real(norm_eps, "norm_eps", self._where(), low=0.0, strict_low=True)
        check_choice(chunk_average, "chunk_average", self._where(), (None, "probs", "logits"))
        self.norm_eps = norm_eps
        self.chunk_average = chunk_average
        self.norm = nn.LayerNorm(num_features, eps=norm_eps) if norm else nn.Identity()
        self.fc = nn.Linear(num_features, num_classes)

    def forward(self, features: Features) -> torch.Tensor:
        if self.chunk_average is None or features.chunk_tokens is None:
            return self.fc(self.norm(features.pooled()))
        z = self.fc(self.norm(features.chunk_tokens))  # (B, K, classes)
        if self.chunk_average == "logits":
            return z.mean(dim=1)
        # logit(mean_k sigmoid(z_k)) = log(mean sigmoid(z)) - log(mean sigmoid(-z)), stably
        log_p = torch.logsumexp(nn.functional.logsigmoid(z), dim=1)
        log_q = torch.logsumexp(nn.functional.logsigmoid(-z), dim=1)
        return log_p - log_q

    def config(self) -> dict[str, object]:
        return {
            "name": "linear",
            "num_classes": self.num_classes,
            "norm": isinstance(self.norm, nn.LayerNorm),
            "norm_eps": self.norm_eps,
            "chunk_average": self.chunk_average,
        }


@register_head("mlp")
class MLPHead(Head):
    """EfficientAT's head: clip pooling → Linear → Hardswish → Dropout → Linear."""

    def __init__(
        self, num_features: int, num_classes: int, hidden: int = 1280, dropout: float = 0.2
    ) -> None:
        super().__init__(num_features, num_classes)
        hidden = check_int(hidden, "hidden", self._where())
        dropout = check_real(dropout, "dropout", self._where(), low=0.0, high=1.0)
        self.hidden, self.dropout = hidden, dropout
        self.fc1 = nn.Linear(num_features, hidden)
        self.act = nn.Hardswish()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, features: Features) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(features.pooled()))))


@register_head("conv")
class ConvHead(Head):
    """EfficientAT's fully convolutional head: 1x1 conv → BatchNorm → mean over F', T'.

    Needs a feature grid; for transformers the grid of patch tokens is used.
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__(num_features, num_classes)
        self.conv = nn.Conv2d(num_features, num_classes, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(num_classes)  # PyTorch defaults (eps 1e-5), as upstream

    def forward(self, features: Features) -> torch.Tensor:
        return self.bn(self.conv(features.grid)).mean(dim=(2, 3))


@register_head("attention")
class AttentionHead(Head):
    """EfficientAT's multi-head attention pooling over time (PSLA style).

    Frequency is averaged; per head, one projection gives attention weights (sigmoid, clamped,
    normalised over time) and one gives class values; their weighted sum over time is scaled by a
    learned per-head weight and summed over heads.
    """

    def __init__(
        self, num_features: int, num_classes: int, num_heads: int = 4, eps: float = 1e-7
    ) -> None:
        super().__init__(num_features, num_classes)
        num_heads = check_int(num_heads, "num_heads", self._where())
        eps = check_real(eps, "eps", self._where(), low=0.0, high=0.5, strict_low=True)
        self.num_heads, self.eps = num_heads, eps
        self.subspace_proj = nn.Linear(num_features, num_classes * 2 * num_heads)
        self.head_weight = nn.Parameter(torch.full((1, num_heads, 1), 1.0 / num_heads))

    def forward(self, features: Features) -> torch.Tensor:
        x = features.frames()  # (B, T', C)
        b, t, _ = x.shape
        # (B, T', 2 * H * K) -> (2, B, H, T', K): attention and value paths per head
        x = self.subspace_proj(x).reshape(b, t, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        att = torch.sigmoid(x[0]).clamp(self.eps, 1.0 - self.eps)
        att = att / att.sum(dim=2, keepdim=True)
        out = (att * x[1]).sum(dim=2) * self.head_weight  # (B, H, K)
        return out.sum(dim=1)


@register_head("identity")
class IdentityHead(Head):
    """No classifier: returns the (B, C) clip embedding, so ``model(x)`` equals ``model.embed(x)``."""

    output = "embedding"
    needs_num_classes = False

    def __init__(self, num_features: int, num_classes: int | None = None) -> None:
        super().__init__(num_features, None)

    def forward(self, features: Features) -> torch.Tensor:
        return features.pooled()

    def config(self) -> dict[str, object]:
        return {"name": "identity"}

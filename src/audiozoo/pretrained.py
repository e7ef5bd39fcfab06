"""Pretrained weight descriptions: one :class:`PretrainedCfg` per ``arch.tag``.

A config says where the weights are, which converter reads them, which frontend and head they
were trained with, and where they come from (license, citation, reported metric). The loading
machinery lives in :mod:`audiozoo._hub` (download, cache) and :mod:`audiozoo._factory`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PretrainedCfg"]


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything audiozoo knows about one released set of weights.

    Attributes:
        arch: registered architecture name, e.g. ``"mn10"``.
        tag: training description, e.g. ``"as"`` (AudioSet); the full name is ``arch.tag``.
        url: upstream download address (GitHub release asset, ...), if any.
        hf_hub_id: Hugging Face Hub repository that holds the upstream files, if any.
        hf_filename: file to fetch from ``hf_hub_id`` (``model.safetensors`` by default).
        audiozoo_hub_id: Hub repository in audiozoo format; preferred over the others when set.
        converter: registered converter that maps the upstream checkpoint to audiozoo keys.
        frontend: the frontend the weights were trained with: ``{"name": ..., **kwargs}``.
        backbone_kwargs: keyword arguments for the architecture builder (strides, lengths, ...).
        head: the checkpoint's own head: ``{"name": ..., "num_classes": ..., **kwargs}``.
        labels: label source for the classifier (``"audioset"``, ``"speech_commands"``, ...).
        license: license of the weights (SPDX identifier where one exists).
        citation: BibTeX of the paper to cite.
        paper: URL of the paper.
        metrics: reported upstream results, e.g. ``{"audioset_mAP": 0.471}``.
        notes: anything a user should know before using the weights.
    """

    arch: str
    tag: str = ""
    url: str | None = None
    hf_hub_id: str | None = None
    hf_filename: str | None = None
    audiozoo_hub_id: str | None = None
    converter: str = "native"
    frontend: dict[str, Any] = field(default_factory=dict)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)
    labels: str | None = None
    license: str | None = None
    citation: str | None = None
    paper: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    notes: str | None = None

    @property
    def name(self) -> str:
        """``arch.tag`` (just ``arch`` for an untagged configuration)."""
        return f"{self.arch}.{self.tag}" if self.tag else self.arch

    @property
    def has_weights(self) -> bool:
        return bool(self.url or self.hf_hub_id or self.audiozoo_hub_id)

    @property
    def num_classes(self) -> int | None:
        return self.head.get("num_classes")

    def replace(self, **changes: Any) -> PretrainedCfg:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

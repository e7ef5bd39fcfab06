"""Pretrained weight descriptions: one :class:`PretrainedCfg` per ``arch.tag``.

A config says where the weights are, which converter reads them, which frontend and head they
were trained with, which label set the head predicts, and where they come from (license,
citation, reported metric). Configs are read-only: the registry's tables cannot be changed by
editing ``model.pretrained_cfg``. Downloading lives in :mod:`audiozoo.download`, reading and
converting checkpoints in :mod:`audiozoo.checkpoints`, building in :func:`audiozoo.create`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .labels import LabelSet, get_label_set

__all__ = ["PretrainedCfg"]


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes (``TypeError``): JSON-, copy- and pickle-friendly, unlike
    ``MappingProxyType``. Copy it with ``dict(d)`` to change it."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "a PretrainedCfg is read-only (it is shared by every model of its tag); change a copy: "
            "dict(cfg.frontend), or cfg.replace(frontend={...})"
        )

    __setitem__ = __delitem__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self  # immutable: a copy is the same value

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))


def _frozen(value: Any) -> Any:
    """Read-only deep copy: mappings become :class:`FrozenDict`, lists become tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    """Plain, mutable copy of a :func:`_frozen` value (dicts; tuples stay tuples)."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_thawed(v) for v in value)
    return value


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything audiozoo knows about one released set of weights.

    Attributes:
        arch: registered architecture name, e.g. ``"mn10"``.
        tag: training description, e.g. ``"as"`` (AudioSet); the full name is ``arch.tag``.
        url: upstream download address (GitHub release asset, ...), if any.
        alt_urls: further addresses of the same file, tried in order when ``url`` fails (for
            upstream links known to break).
        hf_hub_id: Hugging Face Hub repository that holds the upstream files, if any.
        hf_filename: file to fetch from ``hf_hub_id`` (``model.safetensors`` by default).
        audiozoo_hub_id: Hub repository in audiozoo format; preferred over the others when set.
        sha256: hex digest of the upstream file, checked after download when set.
        converter: registered converter that maps the upstream checkpoint to audiozoo keys.
        frontend: the frontend the weights were trained with: ``{"name": ..., **kwargs}``, the
            arguments that differ from that frontend's defaults.
        backbone_kwargs: arguments for the architecture builder that differ from its defaults.
        head: the checkpoint's own head: ``{"name": ..., **kwargs}``; ``num_classes`` follows from
            ``label_set`` when it is not given.
        label_set: name of the label set the head predicts (see :func:`audiozoo.list_label_sets`);
            None when the classifier is not trained (then ``head`` gives ``num_classes``).
        license: license of the weights (SPDX identifier where one exists).
        citation: BibTeX of the paper to cite.
        paper: URL of the paper.
        metrics: reported upstream results, e.g. ``{"audioset_mAP": 0.471}``.
        notes: anything a user should know before using the weights.
    """

    arch: str
    tag: str = ""
    url: str | None = None
    alt_urls: tuple[str, ...] = ()
    hf_hub_id: str | None = None
    hf_filename: str | None = None
    audiozoo_hub_id: str | None = None
    sha256: str | None = None
    converter: str = "native"
    frontend: Mapping[str, Any] = field(default_factory=dict)
    backbone_kwargs: Mapping[str, Any] = field(default_factory=dict)
    head: Mapping[str, Any] = field(default_factory=dict)
    label_set: str | None = None
    license: str | None = None
    citation: str | None = None
    paper: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    notes: str | None = None

    def __post_init__(self) -> None:
        for name in ("frontend", "backbone_kwargs", "head", "metrics"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "alt_urls", tuple(self.alt_urls))

    @property
    def name(self) -> str:
        """``arch.tag`` (just ``arch`` for an untagged configuration)."""
        return f"{self.arch}.{self.tag}" if self.tag else self.arch

    @property
    def has_weights(self) -> bool:
        return bool(self.url or self.hf_hub_id or self.audiozoo_hub_id)

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class names of the head's outputs in index order, or None without a label set."""
        return self.label_set_info.names if self.label_set else None

    @property
    def label_set_info(self) -> LabelSet:
        """The :class:`~audiozoo.labels.LabelSet` named by :attr:`label_set`."""
        if not self.label_set:
            raise ValueError(f"{self.name!r} has no label set")
        return get_label_set(self.label_set)

    @property
    def num_classes(self) -> int | None:
        """Outputs of the checkpoint's own head (from the label set unless the head says)."""
        given = self.head.get("num_classes")
        if given is not None:
            return int(given)
        return len(self.label_set_info) if self.label_set else None

    def head_config(self) -> dict[str, Any]:
        """The head's ``{"name": ..., **kwargs}`` with ``num_classes`` filled in (mutable copy)."""
        cfg = _thawed(self.head)
        if cfg and "num_classes" not in cfg and self.label_set:
            cfg["num_classes"] = len(self.label_set_info)
        return cfg

    @property
    def source(self) -> str | None:
        """Where the weights come from: ``hf-hub:REPO[/FILE]`` or a URL; None without weights."""
        if self.audiozoo_hub_id:
            return f"hf-hub:{self.audiozoo_hub_id}"
        if self.hf_hub_id:
            return f"hf-hub:{self.hf_hub_id}/{self.hf_filename or 'model.safetensors'}"
        return self.url

    def replace(self, **changes: Any) -> PretrainedCfg:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain, mutable copy of every field."""
        return {f.name: _thawed(getattr(self, f.name)) for f in dataclasses.fields(self)}

"""Reading and validating the ``config.json`` of the audiozoo format (see :mod:`audiozoo.format`).

A config can come from anyone (``hf-hub:`` names), so it is read as data and checked field by
field before anything is built: JSON only (no ``NaN``/``Infinity``, no number that overflows to
infinity, at most :data:`MAX_DEPTH` levels of nesting), registered parts only, every field of its
type, and labels that match the head's classes. Every problem is one :class:`RegistryError`
that names the field. The arguments of the parts are checked by their constructors, and their
sizes against the weights by :func:`audiozoo.create`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._errors import RegistryError
from ._registry import backbones, frontends, heads

__all__ = ["MAX_DEPTH", "parse_config", "read_config", "validate_config"]

FORMAT_NAME = "audiozoo"
FORMAT_VERSION = 1
# An audiozoo config nests 4 levels (backbone_kwargs -> strides -> pairs); deeper is not ours.
MAX_DEPTH = 16
_REQUIRED = ("format", "format_version", "architecture", "backbone_kwargs", "frontend", "head")
_OPTIONAL = ("audiozoo_version", "pretrained_name", "labels", "pretrained_cfg")
PRETRAINED_FIELDS = ("license", "citation", "paper", "metrics", "notes")


class _NonFinite:
    """Stands for a ``NaN``/``Infinity`` (or overflowing) number until the walk names its field."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> Any:
    value = float(text)
    return value if value - value == 0 else _NonFinite(text)  # inf - inf is nan


def parse_config(text: str, where: str) -> Any:
    """JSON text → Python data, with non-finite numbers kept as markers for :func:`validate_config`.

    Raises:
        RegistryError: not JSON, or nested too deeply for the parser.
    """
    try:
        return json.loads(text, parse_constant=_NonFinite, parse_float=_parse_float)
    except RecursionError:
        raise RegistryError(
            f"invalid audiozoo config {where}: nested too deeply (an audiozoo config has at most "
            f"{MAX_DEPTH} levels)"
        ) from None
    except ValueError as exc:
        raise RegistryError(f"cannot read {where} as JSON: {exc}") from None


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an audiozoo ``config.json``.

    Raises:
        RegistryError: not JSON, not the audiozoo format, an unknown field, a part that is not
            registered, a non-finite number, or a field of the wrong type.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read {path} as JSON: {exc}") from None
    return validate_config(parse_config(text, str(path)), str(path))


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise RegistryError(f"invalid audiozoo config {where}: {message}")


def _check_data(config: Any, where: str) -> None:
    """JSON data only, at most MAX_DEPTH deep, finite numbers, string keys; names the field."""
    stack: list[tuple[Any, str, int]] = [(config, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        field = path or "the top level"
        _check(depth <= MAX_DEPTH, where, f"{field} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, _NonFinite):
            _check(False, where, f"{field} is {value.text}; config.json holds finite numbers only")
        elif isinstance(value, float):
            _check(
                value - value == 0, where, f"{field} is {value}; only finite numbers are allowed"
            )
        elif isinstance(value, dict):
            for key, item in value.items():
                _check(isinstance(key, str), where, f"{field} has a key {key!r} that is no string")
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
        else:
            _check(
                value is None or isinstance(value, (bool, int, str)),
                where,
                f"{field} is a {type(value).__name__}; config.json holds JSON values only",
            )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_part(part: Any, where: str, field: str, registry: Any) -> None:
    _check(isinstance(part, dict), where, f"{field!r} must be an object with a 'name'")
    _check(isinstance(part.get("name"), str), where, f"{field!r} has no 'name' string")
    _check(
        part["name"] in registry,
        where,
        f"{field} {part['name']!r} is not registered; known: {', '.join(registry.names())}",
    )
    _check(
        all(isinstance(v, (bool, int, float, str, list)) or v is None for v in part.values()),
        where,
        f"{field!r} arguments must be JSON scalars or lists",
    )


def _check_labels(config: dict[str, Any], where: str) -> None:
    """Labels are strings, one per output of the head."""
    labels = config.get("labels")
    if labels is None:
        return
    _check(
        isinstance(labels, list) and all(isinstance(x, str) for x in labels),
        where,
        "'labels' must be a list of strings or null",
    )
    head = config["head"]
    if not heads.get(head["name"]).needs_num_classes:
        _check(False, where, f"'labels' must be null: a {head['name']!r} head has no classes")
    _check(
        len(labels) == head.get("num_classes"),
        where,
        f"'labels' has {len(labels)} names but head.num_classes is {head.get('num_classes')}; "
        "there must be one label per class, in output order",
    )


def validate_config(config: Any, where: str = "config.json") -> dict[str, Any]:
    """Check every field of an audiozoo config (see :func:`read_config`)."""
    _check(isinstance(config, dict), where, "the top level must be a JSON object")
    _check_data(config, where)
    _check(
        config.get("format") == FORMAT_NAME,
        where,
        f"'format' must be {FORMAT_NAME!r} (is this a transformers or timm config?)",
    )
    missing = [k for k in _REQUIRED if k not in config]
    _check(not missing, where, f"missing fields {missing}")
    unknown = sorted(set(config) - set(_REQUIRED) - set(_OPTIONAL))
    _check(not unknown, where, f"unknown fields {unknown}")
    version = config["format_version"]
    _check(
        isinstance(version, int) and not isinstance(version, bool) and version == FORMAT_VERSION,
        where,
        f"format_version {version!r} is not supported (this audiozoo reads version "
        f"{FORMAT_VERSION}); upgrade audiozoo",
    )
    arch = config["architecture"]
    _check(
        isinstance(arch, str) and arch in backbones,
        where,
        f"architecture {arch!r} is not registered; known: {', '.join(backbones.names())}",
    )
    _check(
        isinstance(config["backbone_kwargs"], dict),
        where,
        "'backbone_kwargs' must be an object of JSON values",
    )
    _check_part(config["frontend"], where, "frontend", frontends)
    _check_part(config["head"], where, "head", heads)
    num_classes = config["head"].get("num_classes")
    _check(
        num_classes is None or _is_count(num_classes),
        where,
        f"head.num_classes must be a positive integer, got {num_classes!r}",
    )
    _check_labels(config, where)
    for key in ("audiozoo_version", "pretrained_name"):
        _check(
            config.get(key) is None or isinstance(config[key], str),
            where,
            f"{key!r} must be a string",
        )
    info = config.get("pretrained_cfg")
    _check(
        info is None or (isinstance(info, dict) and set(info) <= set(PRETRAINED_FIELDS)),
        where,
        f"'pretrained_cfg' must be an object that may only hold {list(PRETRAINED_FIELDS)}",
    )
    info = info or {}
    for key in ("license", "citation", "paper", "notes"):
        _check(
            info.get(key) is None or isinstance(info[key], str),
            where,
            f"pretrained_cfg.{key} must be a string",
        )
    metrics = info.get("metrics")
    _check(
        metrics is None
        or (
            isinstance(metrics, dict)
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()
            )
        ),
        where,
        "pretrained_cfg.metrics must map names to numbers",
    )
    return config

"""A ``config.json`` checked against its weights before the model is built.

The config of an ``hf-hub:``/``local-dir:`` model can come from anyone; numbers in it decide how
much memory the build allocates (``num_classes = 10**7`` is a 3.8 GB head). The weights are
what the user asked for, so their shapes bound the build, read from the safetensors header (no
tensor data) before any part exists:

- the config's head is built on the meta device and compared with the weights' ``head.*``;
- the backbone (whose constructors cannot all run on the meta device) is built under an
  :class:`~audiozoo._budget.AllocationBudget` of about the weights' size, then compared;
- frontends hold no weights; their constructors bound their own sizes.

When the weights will be loaded the comparison is exact (a mismatch would fail the load anyway,
only later and after the allocation). With ``pretrained=False`` nothing is loaded, so only the
size is bounded: a config edited on purpose (a wider head) still builds, a hostile one does not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from . import format as audiozoo_format
from ._budget import AllocationBudget
from ._errors import CheckpointError
from .checkpoints import read_checkpoint
from .names import ModelName

__all__ = ["Shapes", "backbone_budget", "check_part", "format_weights"]

Shapes = dict[str, tuple[int, ...]]
# What a part built from a config may allocate beyond twice what its weights hold: buffers and
# temporaries of the constructors (the zoo's largest is 1.33x the weights, ATST-Frame).
SLACK = 1 << 22


def format_weights(
    name: ModelName,
    weights: str | None,
    checkpoint: str | None,
    converter: str,
    cache_dir: str | os.PathLike[str] | None,
) -> tuple[dict[str, torch.Tensor] | None, Shapes | None]:
    """The weights of a model in audiozoo format, before its build: a user checkpoint's state
    dict (read whole: it is needed anyway), and the shapes that bound the build when known.

    The format's own ``model.safetensors`` is fetched now and only its header read (the tensors
    are read after the build). With ``pretrained=False`` (``weights`` None) its header is read
    when the file is here without a download (a ``local-dir:`` folder, a Hub model in the cache).
    """
    if weights == "checkpoint":
        assert checkpoint is not None
        state_dict = read_checkpoint(checkpoint, converter=converter, cache_dir=cache_dir)
        return state_dict, {k: tuple(v.shape) for k, v in state_dict.items()}
    if weights == "format":
        path = audiozoo_format.fetch_file(name, audiozoo_format.WEIGHTS_NAME, cache_dir)
        return None, audiozoo_format.weights_shapes(path)
    found = audiozoo_format.weights_at_hand(name, cache_dir)
    return None, (audiozoo_format.weights_shapes(found) if found is not None else None)


def _held(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> int:
    return sum(math.prod(s) for k, s in shapes.items() if k.startswith(prefix))


def backbone_budget(shapes: Shapes | None, name: ModelName) -> AllocationBudget | None:
    """What building the backbone of ``name``'s config may allocate: about what its weights
    hold (None: no weights to compare with)."""
    if shapes is None:
        return None
    held = _held(shapes, "backbone.")

    def describe(used: int) -> str:
        return (
            f"the backbone_kwargs in the config.json of {name} describe a backbone larger than "
            f"its weights: building it would allocate more than {used:,} values, and the weights "
            f"hold {held:,}; the config does not belong to these weights"
        )

    return AllocationBudget(2 * held + SLACK, describe)


def check_part(
    prefix: str,
    built: Mapping[str, Any],
    shapes: Shapes,
    name: ModelName,
    what: str,
    *,
    exact: bool,
) -> None:
    """Compare the state dict ``built`` of one part (keys without ``prefix``; tensors on any
    device, meta included) with the weights' keys under ``prefix``.

    Args:
        what: the config field to blame, e.g. "the head {...}".
        exact: the same keys and shapes (the weights will be loaded), else only a size bound.
    """
    expected = {f"{prefix}{k}": tuple(v.shape) for k, v in built.items()}
    found = {k: s for k, s in shapes.items() if k.startswith(prefix)}
    if not exact:
        size, held = _held(expected, prefix), _held(found, prefix)
        if size > 2 * held + SLACK:
            raise CheckpointError(
                f"{what} in the config.json of {name} has {size:,} parameters, and its weights "
                f"hold {held:,}; the config does not belong to these weights"
            )
        return
    if expected == found:
        return
    diffs = [
        f"{k}: config {expected.get(k, 'absent')} vs weights {found.get(k, 'absent')}"
        for k in sorted(set(expected) | set(found))
        if expected.get(k) != found.get(k)
    ]
    raise CheckpointError(
        f"{what} in the config.json of {name} does not match its weights: "
        f"{'; '.join(diffs[:6])}{' ...' if len(diffs) > 6 else ''}"
    )

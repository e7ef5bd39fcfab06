"""An allocation budget for building modules from an untrusted configuration.

A ``config.json`` that says ``embed_dim = 10**6`` or ``depth = 10**6`` would make the backbone's
constructor allocate gigabytes (or fail in the allocator) before any weight is compared with it.
Not every backbone can be built on the meta device (their constructors read tensor values), so
instead :class:`AllocationBudget` watches the tensor factory calls (``torch.empty``,
``torch.zeros``, ...) that parameters and buffers are made with: each call is first evaluated on
the meta device (no memory, no random draws) to learn its size, and refused with a
:class:`~audiozoo.CheckpointError` once the running total passes the budget. Calls within the
budget then run as usual, so a model built under a budget is bit-identical to one built without.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ._errors import CheckpointError

__all__ = ["AllocationBudget"]

# Functions that create a tensor from sizes alone (tensors built from data are as large as data
# the caller already holds).
_FACTORIES = frozenset(
    {
        torch.empty,
        torch.empty_strided,
        torch.zeros,
        torch.ones,
        torch.full,
        torch.rand,
        torch.randn,
        torch.randint,
        torch.randperm,
        torch.arange,
        torch.linspace,
        torch.logspace,
        torch.eye,
        torch.hann_window,
        torch.hamming_window,
        torch.blackman_window,
        torch.bartlett_window,
        torch.kaiser_window,
    }
)
_NOT_FOR_META = ("generator", "pin_memory", "out", "device")


class AllocationBudget(TorchFunctionMode):
    """``with AllocationBudget(n, describe): build()`` refuses tensor factory calls beyond ``n``
    elements in total; ``describe(used)`` gives the error message."""

    def __init__(self, limit: int, describe: Callable[[int], str]) -> None:
        super().__init__()
        self.limit = limit
        self.used = 0
        self._describe = describe

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _FACTORIES:
            meta_kwargs = {k: v for k, v in kwargs.items() if k not in _NOT_FOR_META}
            try:
                size = func(*args, **meta_kwargs, device="meta").numel()
            except Exception:  # let the real call raise its own error for bad arguments
                size = 0
            self.used += size
            if self.used > self.limit:
                raise CheckpointError(self._describe(self.used))
        return func(*args, **kwargs)

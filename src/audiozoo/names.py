"""The model-name grammar, parsed in one place.

::

    arch                      a registered architecture with its default tag   "mn10"
    arch.tag                  one released set of weights                      "mn10.as_hop_5"
    hf-hub:org/repo[@rev]     a model in audiozoo format on the Hugging Face Hub
    local-dir:PATH            a model in audiozoo format in a local folder

The prefixes only change where the configuration comes from; every name then goes through the
same build path (:func:`audiozoo.create`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ._errors import RegistryError

__all__ = ["HF_HUB_PREFIX", "LOCAL_DIR_PREFIX", "ModelName", "parse_model_name", "split_model_name"]

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class ModelName:
    """A parsed model name.

    Attributes:
        kind: ``"registry"`` (``arch[.tag]``), ``"hf-hub"`` or ``"local-dir"``.
        arch: architecture (registry names only).
        tag: tag, or None for the architecture's default (registry names only).
        repo_id: ``org/repo`` (``hf-hub`` only).
        revision: branch, tag or commit, or None for the default branch (``hf-hub`` only).
        path: the folder (``local-dir`` only).
    """

    kind: Literal["registry", "hf-hub", "local-dir"]
    arch: str | None = None
    tag: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.kind == "local-dir":
            return f"{LOCAL_DIR_PREFIX}{self.path}"
        if self.kind == "hf-hub":
            return f"{HF_HUB_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")
        return f"{self.arch}.{self.tag}" if self.tag else str(self.arch)

    @property
    def is_format(self) -> bool:
        """True for names of models in audiozoo format (``hf-hub:``, ``local-dir:``)."""
        return self.kind != "registry"


def split_model_name(name: str) -> tuple[str, str | None]:
    """``"mn10.as_hop_5"`` → ``("mn10", "as_hop_5")``; ``"mn10"`` → ``("mn10", None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


# one '/'-separated part of a branch or tag name: letters, digits, '_', '-', '+', '.', not
# starting with '.' (this refuses '.', '..', hidden names, '%2e%2e', ':', backslashes and
# control characters)
_REVISION_PART = re.compile(r"[\w+-][\w.+-]*")


def _check_revision(name: str, revision: str) -> None:
    """A revision is a branch, tag or commit: never a path that could leave the cache
    (huggingface_hub stores ``refs/<revision>`` in its cache)."""
    ok = (
        len(revision) <= 255
        and all(_REVISION_PART.fullmatch(part) for part in revision.split("/"))
        and ".." not in revision
        and not revision.endswith(".lock")
    )
    if not ok:
        raise RegistryError(
            f"{name!r}: revision {revision!r} is not a branch, tag or commit name: use "
            "'/'-separated parts of letters, digits, '_', '-', '+' and '.' that do not start "
            "with '.' (no '..', no empty parts, at most 255 characters)"
        )


def parse_model_name(name: str) -> ModelName:
    """Parse any model name (see the module docstring).

    Raises:
        RegistryError: the name is empty or not of one of the forms above.
    """
    if not isinstance(name, str) or not name:
        raise RegistryError(
            f"a model name must be a non-empty string such as 'mn10' or 'mn10.as', got {name!r}"
        )
    if name.startswith(LOCAL_DIR_PREFIX):
        path = name[len(LOCAL_DIR_PREFIX) :]
        if not path:
            raise RegistryError("local-dir: needs a folder, e.g. 'local-dir:runs/best'")
        return ModelName("local-dir", path=path)
    if name.startswith(HF_HUB_PREFIX):
        repo, _, revision = name[len(HF_HUB_PREFIX) :].partition("@")
        if not _REPO_ID.fullmatch(repo):
            raise RegistryError(
                f"{name!r}: expected 'hf-hub:org/repo' or 'hf-hub:org/repo@revision'"
            )
        if revision:
            _check_revision(name, revision)
        return ModelName("hf-hub", repo_id=repo, revision=revision or None)
    arch, tag = split_model_name(name)
    return ModelName("registry", arch=arch, tag=tag)

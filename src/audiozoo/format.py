"""The audiozoo format: ``config.json`` + ``model.safetensors`` in a folder or a Hub repository.

``config.json`` names registered parts only (architecture, frontend, head) with JSON arguments;
loading validates every field (:mod:`audiozoo._format_config`), compares the config with the
weights before building (:mod:`audiozoo._preflight`) and builds the model through the
registries, so nothing in a config is ever executed. ``model.safetensors`` holds the native keys of
``AudioModel.state_dict()`` (``backbone.*``, ``head.*``). Example config::

    {
      "format": "audiozoo",
      "format_version": 1,
      "audiozoo_version": "0.1.0",
      "architecture": "mn10",
      "pretrained_name": "mn10.as",
      "backbone_kwargs": {},
      "frontend": {"name": "stft_mel", "sample_rate": 32000, ...},
      "head": {"name": "linear", "num_classes": 10, "norm": false, "norm_eps": 1e-05},
      "labels": ["dog", "rain", ...],
      "pretrained_cfg": {"license": "MIT", "citation": "...", "paper": "...", "metrics": {...},
                         "notes": null}
    }
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ._errors import CheckpointError, PretrainedUnavailableError, RegistryError
from ._format_config import (
    FORMAT_NAME,
    FORMAT_VERSION,
    PRETRAINED_FIELDS,
    read_config,
    validate_config,
)
from ._registry import heads
from .checkpoints import read_state_dict_file
from .download import atomic_write, cache_root, hub_download
from .names import ModelName
from .pretrained import PretrainedCfg

if TYPE_CHECKING:
    from .model import AudioModel

__all__ = [
    "fetch_file",
    "model_card",
    "push_to_hub",
    "read_config",
    "read_weights",
    "resolve_config",
    "save_pretrained",
    "validate_config",
    "weights_at_hand",
    "weights_shapes",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Hugging Face model-card license identifiers for the SPDX names used in weight tables.
_HF_LICENSES = {"MIT": "mit", "Apache-2.0": "apache-2.0", "BSD-3-Clause": "bsd-3-clause"}


# ------------------------------------------------------------------------------------ save
def model_config(model: AudioModel) -> dict[str, Any]:
    """The ``config.json`` content for ``model``."""
    base = model.config()
    if base.get("head") is None:
        raise RegistryError(
            f"the model's head is a {type(model.head).__name__}, not a registered head: the "
            "audiozoo format can only name registered parts (see audiozoo.register_head)"
        )
    labels, num_classes = base.get("labels"), base["head"].get("num_classes")
    if labels is not None and len(labels) != num_classes:
        raise RegistryError(
            f"model.labels has {len(labels)} names but the head has {num_classes} classes; set "
            "one label per class (in output order) or model.labels = None"
        )
    cfg = model.pretrained_cfg
    config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **base}
    config["pretrained_cfg"] = {k: getattr(cfg, k) for k in PRETRAINED_FIELDS}
    # what is written must load: the same checks as create("local-dir:...") runs
    return validate_config(_jsonable(config, "config"), "of the model")


def _jsonable(value: Any, where: str) -> Any:
    """Tuples → lists; anything that is not plain JSON data is an error."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RegistryError(f"{where} = {value} cannot be stored in config.json")
        return value
    raise RegistryError(
        f"{where} is a {type(value).__name__}; the audiozoo format stores JSON values only"
    )


def save_pretrained(model: AudioModel, path: str | os.PathLike[str]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into the folder ``path`` (created).

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    folder = Path(path).expanduser()
    config = model_config(model)
    folder.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors that share memory, and must not see views
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(
        folder / WEIGHTS_NAME,
        lambda p: save_file(
            tensors, str(p), metadata={"format": "pt", "audiozoo_architecture": model.arch}
        ),
    )
    text = json.dumps(config, indent=2) + "\n"
    atomic_write(folder / CONFIG_NAME, lambda p: p.write_text(text, encoding="utf-8"))
    return folder


# ------------------------------------------------------------------------------------ card
def model_card(model: AudioModel, repo_id: str | None = None) -> str:
    """A Hugging Face model card (README.md) for ``model``: task, labels, metrics, license,
    citation and how to load it."""
    config = model_config(model)
    cfg = model.pretrained_cfg
    head = config["head"]
    head_cls = heads.get(head["name"])
    output = getattr(head_cls, "output", "clip")
    task = {
        "clip": f"clip-level audio classification ({head.get('num_classes')} classes)",
        "frame": (
            f"frame-level audio tagging / sound event detection ({head.get('num_classes')} "
            f"classes, one output every {model.frame_hop:g} s)"
        ),
        "embedding": f"audio embeddings ({model.num_features} dimensions)",
    }.get(output, output)
    name = f"hf-hub:{repo_id}" if repo_id else "local-dir:PATH"
    lines = ["---", "library_name: audiozoo", "tags:", "- audio", "- audiozoo", f"- {model.arch}"]
    if cfg.license:
        lines.append(f"license: {_HF_LICENSES.get(cfg.license, 'other')}")
    if output == "clip":
        lines.append("pipeline_tag: audio-classification")
    lines += [
        "---",
        "",
        f"# {repo_id or model.arch}",
        "",
        f"An [audiozoo](https://github.com/audiozoo/audiozoo) model: `{model.arch}` backbone, "
        f"`{head['name']}` head, built from `{config.get('pretrained_name')}`.",
        "",
        "## Task",
        "",
        task,
        "",
        f"Input: mono audio at {model.sample_rate} Hz ({config['frontend']['name']} frontend).",
        "",
    ]
    lines += [
        "## How to load",
        "",
        "```python",
        "import audiozoo",
        "",
        f'model = audiozoo.create("{name}")',
        f"logits = model(waveform)  # waveform: (batch, samples) at {model.sample_rate} Hz",
        "```",
        "",
        f"or from the command line: `audiozoo tag clip.wav --model {name}`.",
        "",
    ]
    labels = config.get("labels")
    lines += ["## Labels", ""]
    if labels:
        lines += [
            f"{len(labels)} classes:",
            "",
            "<details>",
            "",
            *(f"{i}. {label}" for i, label in enumerate(labels)),
            "",
            "</details>",
            "",
        ]
    else:
        lines += ["No label names are stored with this model.", ""]
    lines += ["## Metrics", ""]
    if cfg.metrics:
        lines += [
            f"Reported for the original `{config.get('pretrained_name')}` weights (not "
            "re-measured for this upload):",
            "",
            "| metric | value |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in cfg.metrics.items()),
            "",
        ]
    else:
        lines += ["No metrics reported.", ""]
    lines += ["## License", "", cfg.license or "Not stated; ask the uploader.", ""]
    if cfg.notes:
        lines += ["## Notes", "", cfg.notes, ""]
    if cfg.citation:
        lines += ["## Citation", "", "```bibtex", cfg.citation, "```", ""]
    return "\n".join(lines)


def push_to_hub(
    model: AudioModel,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload audiozoo model",
) -> Any:
    """Upload ``config.json``, ``model.safetensors`` and a generated ``README.md`` model card
    to the Hub repository ``repo_id`` (created if needed).

    Returns:
        What ``huggingface_hub.HfApi.upload_folder`` returns (the commit information).
    """
    from huggingface_hub import HfApi

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    with tempfile.TemporaryDirectory(prefix="audiozoo-upload-") as tmp:
        save_pretrained(model, tmp)
        Path(tmp, "README.md").write_text(model_card(model, repo_id), encoding="utf-8")
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id, folder_path=tmp, revision=revision, commit_message=commit_message
        )


# ------------------------------------------------------------------------------------ load
def fetch_file(
    name: ModelName, filename: str, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """``filename`` of the audiozoo-format model ``name`` (``hf-hub:`` or ``local-dir:``):
    downloaded into the cache from the Hub, or found in the local folder."""
    if name.kind == "local-dir":
        assert name.path is not None
        path = Path(name.path).expanduser() / filename
        if not path.is_file():
            raise PretrainedUnavailableError(
                f"{path} not found: a local-dir: folder holds {CONFIG_NAME} and {WEIGHTS_NAME} "
                "as written by model.save_pretrained(folder)"
            )
        return path
    assert name.repo_id is not None
    return hub_download(name.repo_id, filename, revision=name.revision, cache_dir=cache_dir)


def _as_tuples(value: Any) -> Any:
    """JSON lists back to the tuples builders were called with (e.g. strides)."""
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_tuples(v) for k, v in value.items()}
    return value


def resolve_config(
    name: ModelName, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[PretrainedCfg, list[str] | None]:
    """The validated ``config.json`` of ``name`` as a :class:`PretrainedCfg` (weights in native
    keys), plus the label names it stores."""
    config = read_config(fetch_file(name, CONFIG_NAME, cache_dir))
    saved_name = config.get("pretrained_name") or ""
    _, _, tag = saved_name.partition(".")
    info = config.get("pretrained_cfg") or {}
    cfg = PretrainedCfg(
        arch=config["architecture"],
        tag=tag,
        audiozoo_hub_id=name.repo_id,
        converter="native",
        frontend=_as_tuples(config["frontend"]),
        backbone_kwargs=_as_tuples(config["backbone_kwargs"]),
        head=dict(config["head"]),
        license=info.get("license"),
        citation=info.get("citation"),
        paper=info.get("paper"),
        metrics=dict(info.get("metrics") or {}),
        notes=info.get("notes"),
    )
    return cfg, config.get("labels")


def weights_at_hand(
    name: ModelName, cache_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The ``model.safetensors`` of ``name`` if it is here without a download (a ``local-dir:``
    folder, or a Hub model in the cache), else None."""
    if name.kind == "local-dir":
        assert name.path is not None
        path = Path(name.path).expanduser() / WEIGHTS_NAME
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    assert name.repo_id is not None
    found = try_to_load_from_cache(
        name.repo_id,
        WEIGHTS_NAME,
        cache_dir=str(cache_root(cache_dir) / "hub"),
        revision=name.revision,
    )
    return Path(found) if isinstance(found, str) else None


def weights_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Key → shape of every tensor in a safetensors file, from its header only (no tensor data
    is read), so that a config can be compared with its weights before anything is built.

    Raises:
        CheckpointError: the file is not a valid safetensors file.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None


def read_weights(
    name: ModelName,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The native-key weights (``model.safetensors``) of the audiozoo-format model ``name``
    (from ``path`` when the file was fetched already)."""
    if path is None:
        path = fetch_file(name, WEIGHTS_NAME, cache_dir)
    state_dict = read_state_dict_file(path)
    if not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"the weights of {name} are not a flat dict of tensors")
    return state_dict

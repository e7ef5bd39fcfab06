"""The model zoo page, generated from the registry when the site is built.

Every ``arch.tag`` in ``audiozoo.list_models(pretrained=True)`` gets a row. Parameters and MACs
are measured on the built model (``pretrained=False``: same architecture, no download), never
copied from a table, so the page cannot drift from the code. ``tests/test_zoo_page.py`` checks
the numbers against the models.

Used two ways: as a mkdocs hook (``hooks:`` in ``mkdocs.yml``; adds ``zoo.md`` to the site), and
as a script, ``python docs/hooks/zoo.py [PATTERN]``, which prints the page's Markdown.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

import audiozoo
from audiozoo.stats import count_macs, count_parameters

SECONDS = 10  # MACs are reported for this much audio

# keys in lower case: tags spell metrics either way (``audioset_mAP``, ``audioset_strong_PSDS1``)
METRIC_NAMES = {"map": "mAP", "accuracy": "accuracy", "acc": "accuracy", "psds1": "PSDS1"}
DATASET_NAMES = {
    "audioset": "AudioSet",
    "audioset_strong": "AudioSet-Strong",
    "desed": "DESED",
    "fsd50k": "FSD50K",
    "openmic": "OpenMIC",
    "speech_commands": "Speech Commands V2",
    "esc50": "ESC-50",
}


@dataclass(frozen=True)
class Measured:
    """What the built model says about itself."""

    params: int
    macs: int
    sample_rate: int
    frame_hop: float  # seconds
    embed_dim: int
    window: float | None = None  # seconds, when the model takes less than SECONDS at once


@dataclass(frozen=True)
class ZooRow:
    """One line of the zoo table."""

    name: str
    family: str
    measured: Measured
    num_classes: int | None
    metrics: dict[str, float]
    license: str | None
    source: str | None
    paper: str | None


def _key(name: str) -> str:
    """Tags that build the same model (same architecture, arguments, frontend and head) share
    one measurement: ``mn40.as`` and ``mn40.as_2`` differ only in their weights."""
    cfg = audiozoo.get_pretrained_cfg(name)
    return json.dumps(
        [cfg.arch, cfg.to_dict()["backbone_kwargs"], cfg.to_dict()["frontend"], cfg.head_config()],
        sort_keys=True,
    )


def measure(name: str) -> Measured:
    """Build ``name`` with random weights and measure it."""
    torch.manual_seed(0)
    model = audiozoo.create(name, pretrained=False)
    max_frames = model.backbone.max_frames
    window = None
    if (
        max_frames is not None
        and max_frames * model.frontend.hop_length < SECONDS * model.sample_rate
    ):
        window = max_frames * model.frontend.hop_length / model.sample_rate
    return Measured(
        window=window,
        params=count_parameters(model),
        macs=count_macs(model, seconds=SECONDS),
        sample_rate=model.sample_rate,
        frame_hop=model.frame_hop,
        embed_dim=model.num_features,
    )


def zoo_rows(
    names: Iterable[str] | None = None, *, measure: Callable[[str], Measured] = measure
) -> list[ZooRow]:
    """Rows for ``names`` (default: every tag with weights), in registry order."""
    names = audiozoo.list_models(pretrained=True) if names is None else list(names)
    cache: dict[str, Measured] = {}
    rows = []
    for name in names:
        key = _key(name)
        if key not in cache:
            cache[key] = measure(name)
        cfg = audiozoo.get_pretrained_cfg(name)
        arch = audiozoo.get_architecture(cfg.arch)
        rows.append(
            ZooRow(
                name=name,
                family=arch.family,
                measured=cache[key],
                num_classes=cfg.num_classes,
                metrics=dict(cfg.metrics),
                license=cfg.license,
                source=_source_url(cfg),
                paper=cfg.paper,
            )
        )
    return rows


def _source_url(cfg: Any) -> str | None:
    if cfg.audiozoo_hub_id:
        return f"https://huggingface.co/{cfg.audiozoo_hub_id}"
    if cfg.hf_hub_id:
        return f"https://huggingface.co/{cfg.hf_hub_id}"
    return cfg.url


# ---------------------------------------------------------------------- formatting
def fmt_count(n: int) -> str:
    """``4_880_000 -> "4.88 M"``, ``1.1e9 -> "1.10 G"``: three significant digits."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def fmt_metric(metrics: dict[str, float]) -> str:
    """``{"audioset_mAP": 0.471} -> "AudioSet mAP 0.471"``; several joined by ``<br>``."""
    out = []
    for key, value in metrics.items():
        dataset, _, metric = key.rpartition("_")
        name = METRIC_NAMES.get(metric.lower(), metric)
        label = f"{DATASET_NAMES.get(dataset.lower(), dataset)} {name}".strip()
        out.append(f"{label} {value:g}")
    return "<br>".join(out) or "–"


def _link(url: str | None, text: str) -> str:
    return f"[{text}]({url})" if url else "–"


def _source_text(url: str) -> str:
    if url.startswith("https://huggingface.co/"):
        return "HF Hub"
    if "github.com/" in url:
        return "GitHub"
    return "download"


def render_row(row: ZooRow) -> str:
    m = row.measured
    cells = [
        f"`{row.name}`",
        fmt_count(m.params),
        fmt_count(m.macs) + (f" per {m.window:g} s window" if m.window else ""),
        f"{m.sample_rate / 1000:g} kHz",
        f"{m.frame_hop * 1000:g} ms",
        str(m.embed_dim),
        str(row.num_classes) if row.num_classes is not None else "–",
        fmt_metric(row.metrics),
        row.license or "–",
        " · ".join(
            part
            for part in (
                _link(row.source, _source_text(row.source)) if row.source else "",
                _link(row.paper, "paper") if row.paper else "",
            )
            if part
        )
        or "–",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| name | params | MACs / 10 s | sample rate | frame hop | embedding | classes | "
    "upstream metric | license | source |\n"
    "|---|--:|--:|--:|--:|--:|--:|---|---|---|"
)


def render_page(rows: list[ZooRow]) -> str:
    """The Markdown of ``zoo.md``: an introduction, then one table per model family."""
    parts = [
        "---",
        "hide: [toc]",  # the table needs the width
        "---",
        "",
        "# Model zoo",
        "",
        f"Every pretrained weight audiozoo knows ({len(rows)} tags), generated from the registry "
        f"when this site was built (audiozoo {audiozoo.__version__}, torch "
        f"{torch.__version__.split('+')[0]}).",
        "",
        "- **params** and **MACs / 10 s** are measured on the built model (backbone and the "
        "checkpoint's own head; frontends have no parameters) with `pretrained=False`. MACs "
        f"are the multiply-accumulates of one forward pass over {SECONDS} s of audio, counted "
        "with `torch.utils.flop_counter` (convolutions, matrix products, attention); like the "
        "upstream papers, they leave out the frontend and element-wise operations. A model "
        "with a shorter fixed input shows the MACs of one window (`model(wave)` runs longer "
        "audio as overlapping windows).",
        "- **frame hop** is `model.frame_hop`: the time between output frames of frame heads "
        "and `model.embed(x, frames=True)`. **embedding** is `model.num_features`.",
        "- **classes** are the outputs of the checkpoint's head. The sound event detection tags "
        "(`*.as_strong`, PretrainedSED) give 447 AudioSet-Strong classes for every 40 ms frame; "
        "see the [sound event detection guide](guides/sed.md).",
        "- **upstream metric** is the result the authors report for these weights; audiozoo "
        "reproduces their outputs (see the parity tests), it does not re-evaluate them.",
        "- The weights keep the **license** of their release.",
        "",
        'Load any row with `audiozoo.create("NAME")`; list them with '
        "`audiozoo.list_models(pretrained=True)` or `audiozoo list`.",
        "",
    ]
    families: dict[str, list[ZooRow]] = {}
    for row in rows:
        families.setdefault(row.family, []).append(row)
    for family, members in families.items():
        if not members:
            continue
        parts += [f"## {family}", "", HEADER, *map(render_row, members), ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------- mkdocs hook
def on_files(files: Any, config: Any) -> Any:
    """Add the generated ``zoo.md`` to the site's files."""
    from mkdocs.structure.files import File

    torch.set_num_threads(min(2, torch.get_num_threads()))
    files.append(File.generated(config, "zoo.md", content=render_page(zoo_rows())))
    return files


if __name__ == "__main__":
    print(
        render_page(
            zoo_rows(
                audiozoo.list_models(sys.argv[1], pretrained=True) if len(sys.argv) > 1 else None
            )
        )
    )

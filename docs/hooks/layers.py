"""The layers page: every family's layer names and shapes, generated from the code.

For one architecture of each family (``PREFERRED`` or the first registered) the page builds the
model (``pretrained=False``), runs ``model.embed(10 s, layers="all", frames=True)`` and lists
what comes out: layer names, clip embedding widths, frame counts and hops. It also says how each
family runs a batch of clips of different lengths (``Backbone.supports_lengths``). Nothing is
copied by hand, so the page cannot drift from the code; ``tests/test_layers.py`` renders it.

Used as a mkdocs hook (adds ``layers.md``) and as a script: ``python docs/hooks/layers.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

import audiozoo

SECONDS = 10.0
# the family's usual (or smallest) size; layer names do not depend on the size
PREFERRED = {
    "EfficientAT MobileNetV3": "mn10",
    "EfficientAT DyMN": "dymn10",
    "Dasheng": "dasheng_base",
}


def representatives() -> dict[str, str]:
    """Family title -> the architecture shown for it."""
    out: dict[str, str] = {}
    for arch in audiozoo.list_models():
        family = audiozoo.get_architecture(arch).family
        out.setdefault(family, PREFERRED.get(family, arch))
    return out


def family_section(family: str, arch: str, small: bool = False) -> list[str]:
    kwargs = dict(audiozoo.get_architecture(arch).test_kwargs) if small else {}
    model = audiozoo.create(arch, pretrained=False, **kwargs).eval()
    wave = torch.zeros(1, round(SECONDS * model.sample_rate))
    with torch.no_grad():
        out = model.embed(wave, layers="all", frames="both")
    hops = model.layer_frame_hops
    masked = model.backbone.supports_lengths
    lines = [
        f"## {family}",
        "",
        f"`{arch}`{' (small test configuration)' if small else ''}: {len(out)} layers; a batch "
        "of clips of different lengths runs "
        + (
            "as **one padded batch** (`Backbone.forward_lengths`; see "
            "[variable lengths](guides/variable-length.md))."
            if masked
            else "in **groups of equal length** (padding would leak into real frames)."
        ),
        "",
        f"| layer | clip embedding | frames for {SECONDS:g} s | frame hop |",
        "|---|---|---|---|",
    ]
    for name, (clip, frames) in out.items():
        lines.append(
            f"| `{name}` | {clip.shape[-1]} | {frames.shape[1]} | {1000 * hops[name]:g} ms |"
        )
    return [*lines, ""]


def render_page(families: Iterable[tuple[str, str]] | None = None, small: bool = False) -> str:
    items = list(families) if families is not None else list(representatives().items())
    parts = [
        "# Layers of every family",
        "",
        '`model.embed(wave, layers=...)` returns the embeddings of any layer; `layers="all"` '
        "returns every one, in network order, the backbone output last "
        "([guide](guides/layers.md)). This page is generated from the code when the site is "
        f"built: each family's model, `pretrained=False`, on {SECONDS:g} s of audio. Layer "
        "names are the same for every size of a family; widths scale with it.",
        "",
        "- **clip embedding**: width `C` of `embed(wave, layers=[name])[name]`, (B, C).",
        "- **frames**: `T'` of `embed(wave, layers=[name], frames=True)[name]`, (B, T', C), "
        "frames `model.layer_frame_hops[name]` seconds apart.",
        "",
    ]
    for family, arch in items:
        parts += family_section(family, arch, small)
    return "\n".join(parts)


def on_files(files: Any, config: Any) -> Any:
    """Add the generated ``layers.md`` to the site's files."""
    from mkdocs.structure.files import File

    torch.set_num_threads(min(2, torch.get_num_threads()))
    files.append(File.generated(config, "layers.md", content=render_page()))
    return files


if __name__ == "__main__":
    print(render_page())

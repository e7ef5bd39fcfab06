"""mkdocs hook: render the site's figures when it is built.

Each figure comes from a script in ``docs/scripts/`` (its ``render()`` returns PNG bytes), so it
always shows what the current code computes; nothing generated is checked in:

- ``img/frontends.png`` (Concepts): ``frontend_figure.py``;
- ``img/sed.png`` (the sound event detection guide): ``sed_figure.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
FIGURES = {"img/frontends.png": "frontend_figure.py", "img/sed.png": "sed_figure.py"}


def _render(script: str) -> bytes:
    path = SCRIPTS / script
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return bytes(module.render())


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for target, script in FIGURES.items():
        files.append(File.generated(config, target, content=_render(script)))
    return files

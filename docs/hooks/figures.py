"""mkdocs hook: render the Concepts figure (``img/frontends.png``) when the site is built.

The figure comes from ``docs/scripts/frontend_figure.py``, so it always shows what the current
frontends compute; nothing generated is checked in.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "frontend_figure.py"


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    spec = importlib.util.spec_from_file_location("frontend_figure", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files.append(File.generated(config, "img/frontends.png", content=module.render()))
    return files

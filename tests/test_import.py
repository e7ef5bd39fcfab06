"""``import audiozoo`` stays light: no peer packages, little time over ``import torch``."""

from __future__ import annotations

import subprocess
import sys

PEERS = ("torchaudio", "torchvision", "timm", "transformers", "hear21passt")


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_does_not_load_peers():
    out = _run(
        "import sys, audiozoo; audiozoo.list_models(); "
        f"print([m for m in {PEERS!r} if m in sys.modules])"
    )
    assert out == "[]"


def test_import_time_over_torch_is_small():
    code = (
        "import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter(); "
        "import audiozoo; t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
    )
    # best of three runs: the machine is shared, a single sample can be noisy
    extra = min(float(_run(code).split()[1]) for _ in range(3))
    assert extra < 0.5, f"import audiozoo adds {extra:.3f} s to import torch"

"""The benchmark runner still runs: a tiny ``--quick`` pass, the training worker, the cache setup.

Timings are not checked (they mean nothing on a shared test machine); what is checked is that
the runner produces its table, that our side of every comparison runs, and that no comparison
that could run found outputs that disagree. Upstream peers are optional: without them their rows
are marked SKIPPED and only our code runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import audiozoo

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not (REPO / "benchmarks" / "runner.py").is_file(), reason="benchmarks/ not in this checkout"
)


@pytest.mark.slow
def test_quick_run_prints_a_table_without_failures(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "frontends",
            "mn10",
            "--output",
            str(report),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"torch {torch.__version__}" in out
    for case in (
        "StftMel vs hear21passt",
        "KaldiFbank vs torchaudio",
        "mn10 optimize_for_inference",
    ):
        assert case in out
    assert "FAILED" not in out
    # mn10 eager vs optimized needs no peer: it always runs and its outputs are compared
    mn10_row = next(line for line in out.splitlines() if "mn10 optimize_for_inference" in line)
    assert "rel " in mn10_row and "| ok" in mn10_row
    assert report.read_text().count("\n|") >= 5


def test_training_worker_reports_time_and_memory() -> None:
    from benchmarks._worker import train

    args = argparse.Namespace(
        model="mn01", mode="frozen", batch=1, seconds=0.5, threads=1, warmup=0, steps=1
    )
    threads = torch.get_num_threads()
    try:
        result = train(args)
    finally:
        torch.set_num_threads(threads)
    assert float(result["step_s"]) > 0  # type: ignore[arg-type]
    assert float(result["peak_mib"]) >= 0  # type: ignore[arg-type]
    head = audiozoo.create("mn01", pretrained=False).head
    assert result["trainable"] == sum(p.numel() for p in head.parameters())


def test_warm_cache_is_filled_through_the_real_download_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.runner import _prepare_cache

    _prepare_cache(tmp_path, None)  # no fixtures: a random checkpoint served from a file URL
    assert (tmp_path / "converted" / "mn10.as" / "model.safetensors").is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = audiozoo.create("mn10.as", cache_dir=tmp_path)
    source = torch.load(tmp_path / "mn10_random.pt", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, source[key]), key


@pytest.mark.slow
def test_corpus_case_runs_both_sides_on_a_tiny_folder() -> None:
    from benchmarks.corpus import corpus_rows

    (row,) = corpus_rows(files=3, repeats=1, model="mn01")
    assert row.ratio is not None and row.ratio > 0
    assert "files/s" in row.ours and "files/s" in row.theirs and "decoding" in row.check


def test_cpu_burners_start_and_stop() -> None:
    from benchmarks._timing import cpu_burners

    with cpu_burners(1):
        pass  # the burner is killed on the way out (a leftover would slow every later test)

"""The example scripts run end to end (tiny configurations), and the SED scoring is right."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile
import torch

import audiozoo
from audiozoo.data import SYNTHETIC_CLASSES, SyntheticAudio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = [
    "--model",
    "mn01",
    "--num-train",
    "16",
    "--num-test",
    "8",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--duration",
    "0.5",
    "--threads",
    "1",
    "--no-progress",
]


def _run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _check_run(out: Path, classes: list[str], epochs: int = 1) -> dict:
    record = json.loads((out / "run.json").read_text())
    assert set(record["versions"]) >= {"python", "torch", "audiozoo"}
    assert record["versions"]["audiozoo"] == audiozoo.__version__
    assert "commit" in record["git"]
    assert record["classes"] == classes
    assert len(record["history"]) == epochs
    model = audiozoo.create(f"local-dir:{out / 'best'}")
    assert model.labels == classes
    assert model(torch.zeros(model.sample_rate // 2)).shape == (len(classes),)
    return record


@pytest.mark.slow
def test_finetune_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = _run(
        "finetune.py",
        *TINY,
        "--out",
        str(out),
        "--freeze-stages",
        "2",
        "--mixup",
        "0.3",
        "--gain-db",
        "3",
        "--freqm",
        "8",
        "--timem",
        "8",
        cwd=tmp_path,
    )
    assert "best held-out accuracy" in stdout
    record = _check_run(out, list(SYNTHETIC_CLASSES))
    assert 0.0 <= record["history"][0]["accuracy"] <= 1.0
    assert record["config"]["model"] == "mn01" and record["config"]["seed"] == 0
    names = {g["name"].split(".no_decay")[0] for g in record["param_groups"]}
    assert "backbone.stage0" not in names and "backbone.stage1" not in names  # frozen
    assert "backbone.stage2" in names and "head" in names


@pytest.mark.slow
def test_finetune_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ds = SyntheticAudio(6, sample_rate=16000, duration=0.5, classes=["tone", "click_train"])
    rows = ["filename,label"]
    for i in range(len(ds)):
        wave, label = ds[i]
        soundfile.write(data / f"clip{i}.wav", wave.numpy(), 16000)  # resampled to 32 kHz
        rows.append(f"clip{i}.wav,{ds.classes[label]}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    _run(
        "finetune.py",
        *TINY,
        "--data",
        str(data),
        "--val-fraction",
        "0.34",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    record = _check_run(out, ["click_train", "tone"])
    assert record["num_train"] == 4 and record["num_test"] == 2


@pytest.mark.slow
def test_finetune_lightning_one_epoch(tmp_path: Path) -> None:
    pytest.importorskip(
        "lightning",
        reason="the Lightning example needs the 'lightning' extra "
        "(pip install 'audiozoo[lightning]')",
    )
    has_wandb = importlib.util.find_spec("wandb") is not None
    out = tmp_path / "run"
    _run(
        "finetune_lightning.py",
        *TINY,
        "--out",
        str(out),
        *(["--wandb"] if has_wandb else []),
        cwd=tmp_path,
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    _check_run(out, list(SYNTHETIC_CLASSES))
    assert list((out / "csv").glob("version_*/metrics.csv"))
    if has_wandb:
        assert list((out / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_sed_example(tmp_path: Path) -> None:
    stdout = _run(
        "sed.py",
        "--model",
        "mn01",
        "--num-train",
        "8",
        "--num-test",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--duration",
        "2.0",
        "--out",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert "event-based F1" in stdout and "chance level" in stdout
    result = json.loads((tmp_path / "sed.json").read_text())
    assert 0.0 <= result["event_f1"] <= 1.0 and 0.0 <= result["chance_event_f1"] <= 1.0


@pytest.mark.slow
def test_sed_example_frame_mn10_strong(tmp_path: Path) -> None:
    """The PretrainedSED tag's architecture with a new 5-class frame head on the 40 ms grid."""
    stdout = _run(
        "sed.py",
        "--model",
        "frame_mn10.as_strong",
        "--pretrained",
        "false",
        "--num-train",
        "4",
        "--num-test",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--duration",
        "2.0",
        "--out",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert "frames 0.040 s apart, 50 per 2 s clip" in stdout
    result = json.loads((tmp_path / "sed.json").read_text())
    assert result["frame_hop_s"] == pytest.approx(0.04) and result["num_frames"] == 50
    assert result["median_frames"] == 9 and result["collar_s"] == pytest.approx(0.2)
    assert 0.0 <= result["event_f1"] <= 1.0 and 0.0 <= result["chance_event_f1"] <= 1.0


# ---------------------------------------------------------------------------------------------
# the scoring functions of sed.py


@pytest.fixture(scope="module")
def sed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sed_example", EXAMPLES / "sed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decode_uses_the_median_filter_and_class_indices(sed: ModuleType) -> None:
    probs = torch.zeros(1, 10, 2)
    probs[0, 2:7, 1] = 0.9  # a 5-frame event of class 1 ...
    probs[0, 8, 0] = 0.9  # ... and a 1-frame blip of class 0, which a 3-frame median removes
    assert sed.decode(probs, 0.5, 0.5, 1, 5.0) == [[(1.0, 3.5, 1), (4.0, 4.5, 0)]]
    assert sed.decode(probs, 0.5, 0.5, 3, 5.0) == [[(1.0, 3.5, 1)]]
    assert sed.decode(probs, 0.5, 0.5, 3, 3.0) == [[(1.0, 3.0, 1)]]  # offset clipped


def test_median_frames(sed: ModuleType) -> None:
    assert sed.median_frames(0.36, 0.04) == 9  # PretrainedSED's filter, as `audiozoo tag`
    assert sed.median_frames(0.36, 0.32) == 1  # coarse frames: no filter
    assert sed.median_frames(0.2, 0.04) == 5
    assert sed.median_frames(0.0, 0.04) == 1


def test_event_f_score_by_hand(sed: ModuleType) -> None:
    refs = [[(0.0, 1.0, 0), (2.0, 3.0, 0), (1.0, 2.0, 1)]]
    # matches: (0.1, 1.1, 0) -> first ref; (2.5, 3.0, 0): onset 0.5 off -> no;
    # (1.0, 2.0, 0): wrong class for the third ref -> no.
    ests = [[(0.1, 1.1, 0), (2.5, 3.0, 0), (1.0, 2.0, 0)]]
    s = sed.event_f_score(refs, ests, collar=0.2)
    assert (s["tp"], s["n_ref"], s["n_est"]) == (1, 3, 3)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(1 / 3)
    # offset tolerance is max(collar, 20 % of the reference length): 1.0 s for a 5 s event
    long_ref = [[(0.0, 5.0, 2)]]
    assert sed.event_f_score(long_ref, [[(0.1, 4.1, 2)]], collar=0.2)["tp"] == 1
    assert sed.event_f_score(long_ref, [[(0.1, 3.9, 2)]], collar=0.2)["tp"] == 0
    # one-to-one: two estimates near one reference count once
    assert sed.event_f_score([[(0.0, 1.0, 0)]], [[(0.0, 1.0, 0), (0.1, 1.0, 0)]])["tp"] == 1
    # perfect and empty
    assert sed.event_f_score(refs, refs)["f1"] == 1.0
    assert sed.event_f_score([[]], [[]])["f1"] == 0.0


def test_event_f_score_matches_brute_force(sed: ModuleType) -> None:
    """Greedy matching by onset distance equals the best one-to-one matching on random cases
    where each estimate is near at most one reference (independent brute force)."""
    from itertools import permutations

    rng = np.random.default_rng(0)
    for _ in range(50):
        refs = [(float(t), float(t) + 1.0, 0) for t in sorted(rng.choice(10, 3, replace=False) * 2)]
        ests = [
            (on + float(rng.uniform(-0.4, 0.4)), off + float(rng.uniform(-0.4, 0.4)), 0)
            for on, off, _ in refs
            if rng.random() < 0.8
        ]
        best = 0
        for perm in permutations(range(len(refs)), len(ests)):
            best = max(
                best,
                sum(
                    abs(ests[j][0] - refs[i][0]) <= 0.2 and abs(ests[j][1] - refs[i][1]) <= 0.2
                    for j, i in enumerate(perm)
                ),
            )
        assert sed.event_f_score([refs], [ests], collar=0.2)["tp"] == best

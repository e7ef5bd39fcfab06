"""Embedding a corpus (``audiozoo.corpus`` and ``audiozoo embed``): inputs, shares, outputs,
failures, resuming after a kill, two processes under torchrun, and the merge check."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import audiozoo
from audiozoo import corpus
from audiozoo.cli import main
from audiozoo.resample import resample

REPO = Path(__file__).resolve().parents[1]


def write_corpus(folder: Path, n: int, seconds: tuple[float, float] = (0.3, 2.0), seed: int = 0):
    """``n`` WAV files of mixed rates, mono and stereo, random lengths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rate = (16000, 22050, 32000, 44100, 48000)[i % 5]
        channels = 1 + i % 2
        samples = int(rate * rng.uniform(*seconds))
        data = (0.1 * rng.standard_normal((samples, channels))).astype(np.float32)
        sub = folder / ("a" if i % 3 else "b")
        sub.mkdir(exist_ok=True)
        soundfile.write(sub / f"clip{i:03d}.wav", data, rate)
    return folder


@pytest.fixture(scope="module")
def model() -> audiozoo.AudioModel:
    torch.manual_seed(0)
    return audiozoo.create("mn01", pretrained=False).eval()


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = write_corpus(tmp_path / "in", 7)
    (folder / "broken.wav").write_text("not audio")
    return folder


def alone(model: audiozoo.AudioModel, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """What the Python API gives for one file: mono mix, resampled, embedded on its own."""
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    wave = resample(torch.from_numpy(data.mean(axis=1)), rate, model.sample_rate)
    with torch.no_grad():
        return model.embed(wave), model.embed(wave, frames=True)


# ---------------------------------------------------------------------------------- inputs
def test_find_inputs_folders_lists_and_keys(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "data", 4)
    (folder / "notes.md").write_text("not an input")
    listing = tmp_path / "list.txt"
    listing.write_text("# one file twice, relative to the list\ndata/a/clip001.wav\n\n")
    items = corpus.find_inputs([folder, listing, folder / "a" / "clip002.wav"])
    assert [i.key for i in items] == [
        "a/clip001.wav",
        "a/clip002.wav",
        "b/clip000.wav",
        "b/clip003.wav",
    ]
    assert all(Path(i.path).is_absolute() and Path(i.path).is_file() for i in items)
    with pytest.raises(FileNotFoundError):
        corpus.find_inputs([tmp_path / "missing.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        corpus.find_inputs([tmp_path / "empty"])


def test_resolve_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert corpus.resolve_shard() == (0, 1)
    assert corpus.resolve_shard("2/5") == (2, 5)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert corpus.resolve_shard() == (1, 2)
    for bad in ("5/5", "x", "1/0"):
        with pytest.raises(ValueError):
            corpus.resolve_shard(bad)


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 32])
def test_workers_and_threads_never_oversubscribe(monkeypatch, cores: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(cores)))

    def check(share: int) -> None:
        workers, threads = corpus.plan_cpu()
        if share >= 4:  # every core used, none twice
            assert workers == share // 4 and workers + threads == share
        else:  # the model gets every core; one worker decodes at the lowest priority
            assert (workers, threads) == (1, share)

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    check(cores)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks on this node share the cores
    check(max(1, cores // 2))
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert corpus.plan_cpu(threads=1) == (max(0, cores - 1) if cores >= 4 else 1, 1)
    assert corpus.plan_cpu(device="cuda:0") == (max(0, cores - 1), 1)
    assert corpus.plan_cpu(workers=0) == (0, cores)


# ---------------------------------------------------------------------------------- outputs
def test_per_file_npz_equals_the_python_api(model, clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = corpus.embed_corpus(model, [clips], out, frames=True, batch_size=3, workers=0)
    assert summary.done == 7 and summary.total == 8 and summary.skipped == 0
    assert list(summary.failures) == ["broken.wav"]
    assert (
        "Error opening" in summary.failures["broken.wav"]
        or "recognised" in summary.failures["broken.wav"]
    )
    assert summary.audio_seconds > 0 and summary.files_per_s > 0
    assert "1 failed" in summary.text() and "broken.wav" in summary.text()
    for item in corpus.find_inputs([clips]):
        if item.key == "broken.wav":
            assert not (out / "broken.npz").exists()
            continue
        with np.load(out / Path(item.key).with_suffix(".npz")) as z:
            clip, seq = alone(model, Path(item.path))
            np.testing.assert_allclose(z["embedding"], clip.numpy(), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(z["frames"], seq.numpy(), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(z["timestamps"], np.arange(len(seq)) * model.frame_hop)
    saved = json.loads((out / "summary-00000-of-00001.json").read_text())
    assert saved["failures"] == summary.failures
    report = corpus.merge_shards(out)
    assert report.ok and not report.complete and list(report.failed) == ["broken.wav"]


def test_npy_and_layers(model, clips: Path, tmp_path: Path) -> None:
    corpus.embed_corpus(model, [clips], tmp_path / "npy", format="npy", workers=0)
    emb = np.load(tmp_path / "npy" / "a" / "clip001.npy")
    assert emb.shape == (model.num_features,)
    with pytest.raises(ValueError, match="one layer"):
        corpus.embed_corpus(model, [clips], tmp_path / "x", format="npy", layers="all")
    with pytest.raises(ValueError, match="unknown layer"):
        corpus.embed_corpus(model, [clips], tmp_path / "x", layers=["nope"])
    corpus.embed_corpus(model, [clips], tmp_path / "npz", layers=[0, -1], frames=True, workers=0)
    with np.load(tmp_path / "npz" / "a" / "clip001.npz") as z:
        first, last = model.layer_names[0], model.layer_names[-1]
        assert set(z.files) == {
            f"{k}@{n}" for k in ("embedding", "frames", "timestamps") for n in (first, last)
        }
        hop = model.layer_frame_hops[first]
        np.testing.assert_allclose(z[f"timestamps@{first}"][1], hop)


@pytest.mark.parametrize("fmt", ["shard", "parquet"])
def test_two_shards_merge_to_every_file_once(model, clips: Path, tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    for i in range(2):  # two processes, one after the other
        corpus.embed_corpus(
            model, [clips], out, format=fmt, shard=f"{i}/2", frames=True, part_size=2
        )
    ext = ".parquet" if fmt == "parquet" else ".npz"
    assert sorted(p.name for p in out.glob("shard-*")) == [
        f"shard-00000-of-00002{ext}",
        f"shard-00001-of-00002{ext}",
    ]  # the parts were joined
    report = corpus.merge_shards(out)
    assert report.ok, report.text()
    assert report.found == 7 and report.merged == out / f"embeddings{ext}"
    records = corpus.read_embeddings(report.merged)
    keys = [r["file"] for r in records]
    assert keys == [k for k in (out / "manifest.txt").read_text().split() if k != "broken.wav"]
    by_key = {i.key: i for i in corpus.find_inputs([clips])}
    clip, seq = alone(model, Path(by_key[keys[0]].path))
    np.testing.assert_allclose(records[0]["embedding"], clip.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(records[0]["frames"], seq.numpy(), rtol=1e-4, atol=1e-6)
    # a copied shard: every file of it twice; a removed shard: its files missing
    shutil.copy(out / f"shard-00000-of-00002{ext}", out / f"shard-00000-of-00003{ext}")
    dup = corpus.merge_shards(out, write=False)
    assert not dup.ok and dup.duplicates and set(dup.duplicates.values()) == {2}
    (out / f"shard-00000-of-00003{ext}").unlink()
    (out / f"shard-00001-of-00002{ext}").unlink()
    gone = corpus.merge_shards(out, write=False)
    assert not gone.ok and gone.missing and "NOT COMPLETE" in gone.text()


# ---------------------------------------------------------------------------------- CLI
def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR"):
        env.pop(key, None)
    return env


def test_cli_embed_prints_a_summary(clips: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["embed", str(clips), "-o", str(out), "--model", "mn01", "--pretrained", "false"]
    status = main([*argv, "--workers", "0", "--no-progress"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "7 files embedded" in text and "1 failed" in text and "files/s" in text
    assert "decoding" in text and "broken.wav" in text
    assert main([*argv, "--workers", "0", "--no-progress"]) == 0  # resumed: nothing to do
    assert "0 files embedded, 7 already done" in capsys.readouterr().out
    assert main(["embed", "--merge", "-o", str(out)]) == 0
    assert "7 of 8 inputs present, 1 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_files(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "in", 48, seconds=(1.0, 3.0), seed=4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audiozoo", "embed", str(folder), "-o", str(out), "--model",
           "mn01", "--pretrained", "false", "--batch-size", "2", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(list(out.rglob("*.npz"))) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    assert 6 <= len(first) < 48, len(first)
    for p in first:  # every output that exists is complete
        with np.load(p) as z:
            assert z["embedding"].shape == (audiozoo.create("mn01", pretrained=False).num_features,)
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{48 - len(first)} files embedded, {len(first)} already done" in done.stdout
    assert "48 of 48 inputs present" in done.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())  # not redone
    assert len(list(out.rglob("*.npz"))) == 48


@pytest.mark.slow
def test_torchrun_two_processes_merge_every_file_once(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "in", 11, seed=5)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(29500 + os.getpid() % 2000), "-m", "audiozoo", "embed",
           str(folder), "-o", str(out), "--model", "mn01", "--pretrained", "false",
           "--format", "shard", "--frames", "--no-progress"]  # fmt: skip
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "shard 0/2" in proc.stdout and "shard 1/2" in proc.stdout
    assert "11 of 11 inputs present; merged into" in proc.stdout
    records = corpus.read_embeddings(out / "embeddings.npz")
    keys = [r["file"] for r in records]
    assert sorted(keys) == keys and len(set(keys)) == 11
    assert keys == [i.key for i in corpus.find_inputs([folder])]


def _tag_model(tmp_path: Path) -> str:
    torch.manual_seed(0)
    model = audiozoo.create("mn01.as", pretrained=False)
    model.save_pretrained(tmp_path / "mn01")
    return f"local-dir:{tmp_path / 'mn01'}"


def test_tag_threshold_top_k_csv_and_output(tmp_path: Path, capsys) -> None:
    folder = write_corpus(tmp_path / "in", 2)
    name = _tag_model(tmp_path)
    files = [i.path for i in corpus.find_inputs([folder])]
    assert main(["tag", *files, "--model", name, "--json", "--top-k", "527"]) == 0
    full = json.loads(capsys.readouterr().out)
    probs = {f: [r["probability"] for r in rows] for f, rows in full.items()}
    assert all(len(p) == 527 and p == sorted(p, reverse=True) for p in probs.values())
    threshold = float(np.median(probs[files[0]]))
    assert main(["tag", str(folder), "--model", name, "--threshold", str(threshold),
                 "--format", "json"]) == 0  # fmt: skip
    above = json.loads(capsys.readouterr().out)
    assert list(above) == files  # a folder is expanded to its files
    for f, rows in above.items():
        assert [r["probability"] for r in rows] == [p for p in probs[f] if p >= threshold]
    assert main(["tag", *files, "--model", name, "--threshold", str(threshold), "--top", "3",
                 "--format", "csv", "--output", str(tmp_path / "tags.csv")]) == 0  # fmt: skip
    assert capsys.readouterr().out == ""
    lines = (tmp_path / "tags.csv").read_text().splitlines()
    assert lines[0] == "file,rank,index,label,probability"
    assert len(lines) == 1 + 3 * len(files)
    first = lines[1].split(",")
    assert (
        first[0] == files[0]
        and first[1] == "1"
        and float(first[-1]) == full[files[0]][0]["probability"]
    )
    with pytest.raises(SystemExit) as usage:  # an invalid option is argparse's usage error
        main(["tag", *files, "--model", name, "--threshold", "1.5"])
    assert usage.value.code == 2

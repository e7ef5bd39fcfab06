"""The corpus case: ``audiozoo embed`` on a folder vs the plain Python loop, in fresh processes.

A folder of generated 10 s WAV files (16-bit PCM; the rates cycle through 16, 22.05, 32, 44.1 and
48 kHz, every other group of five is stereo) is embedded with mn10 (random weights) twice per
round: by ``python -m audiozoo embed DIR -o OUT --model mn10 --pretrained false`` and by the loop
of ``benchmarks._worker loop`` (read -> mono -> resample -> ``model.embed`` -> ``np.save``, one file
at a time, torch's default threads). The two alternate in each round (which goes first too);
the table has the medians of the rounds' wall times, process start-up and model creation
included on both sides. The share of decoding is decoding / (decoding + model) time: for ours from
the run's ``summary-*.json``, for the loop from its own timers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from ._timing import Row

__all__ = ["corpus_rows", "write_wav_folder"]

RATES = (16000, 22050, 32000, 44100, 48000)
REPO = Path(__file__).resolve().parent.parent


def write_wav_folder(folder: Path, n: int, seconds: float = 10.0, seed: int = 0) -> None:
    """``n`` WAV files of ``seconds``: noise plus a tone, mixed rates, mono and stereo."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rate, channels = RATES[i % len(RATES)], 1 + (i // len(RATES)) % 2
        samples = round(seconds * rate)
        t = np.arange(samples) / rate
        tone = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 3000) * t)
        data = 0.1 * rng.standard_normal((samples, channels)) + tone[:, None]
        soundfile.write(folder / f"clip{i:04d}.wav", data.astype(np.float32), rate, "PCM_16")


def _run(cmd: list[str]) -> tuple[float, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")) if p
    )
    for key in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "OMP_NUM_THREADS"):
        env.pop(key, None)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def corpus_rows(files: int, repeats: int, model: str = "mn10") -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "wav"
        write_wav_folder(folder, files)
        ours_t, loop_t, ours_share, loop_share = [], [], [], []
        for i in range(repeats):
            out_ours, out_loop = Path(tmp) / "ours", Path(tmp) / "loop"
            ours_cmd = [sys.executable, "-m", "audiozoo", "embed", str(folder), "-o",
                        str(out_ours), "--model", model, "--pretrained", "false", "--no-progress"]  # fmt: skip
            loop_cmd = [sys.executable, "-m", "benchmarks._worker", "loop", "--model", model,
                        "--folder", str(folder), "--output", str(out_loop)]  # fmt: skip
            order = [("ours", ours_cmd), ("loop", loop_cmd)]
            for side, cmd in order if i % 2 == 0 else order[::-1]:
                elapsed, stdout = _run(cmd)
                if side == "ours":
                    ours_t.append(elapsed)
                    summary = json.loads((out_ours / "summary-00000-of-00001.json").read_text())
                    assert summary["done"] == files, summary
                    ours_share.append(float(summary["decode_share"]))
                    shutil.rmtree(out_ours)
                else:
                    loop_t.append(elapsed)
                    res = json.loads(stdout.strip().splitlines()[-1])
                    loop_share.append(res["decode_s"] / (res["decode_s"] + res["model_s"]))
                    shutil.rmtree(out_loop)
    t_ours, t_loop = statistics.median(ours_t), statistics.median(loop_t)
    ratio = t_loop / t_ours
    return [
        Row(
            f"embed {files} x 10 s WAV (mixed rates, mono/stereo), {model}: audiozoo embed vs "
            "read -> resample -> model loop",
            batch="16 / 1",
            threads="auto / default",
            ours=f"{files / t_ours:.1f} files/s ({t_ours:.1f} s)",
            theirs=f"{files / t_loop:.1f} files/s ({t_loop:.1f} s)",
            ratio=ratio,
            ratio_text=f"{ratio:.2f}x faster",
            target=1.5,
            check=f"decoding {100 * statistics.median(ours_share):.0f} % of ours, "
            f"{100 * statistics.median(loop_share):.0f} % of the loop; median of {repeats}",
        )
    ]

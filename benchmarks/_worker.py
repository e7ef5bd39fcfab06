"""Measurements that need a fresh process; run as ``python -m benchmarks._worker KIND ...``.

Each prints one JSON object on its last line of stdout.

- ``train``: time and peak memory of a training step (forward + backward + AdamW step).
  Peak memory is the process's resident-set high-water mark during the steps minus its resident
  set just before them: Linux's ``VmHWM`` is reset to the current ``VmRSS`` by writing ``5`` to
  ``/proc/self/clear_refs`` (falling back to ``ru_maxrss`` where that is not allowed). Model,
  input and targets exist before the reset, so the number is what the step itself adds:
  activations kept for backward, gradients, optimizer state. The runner starts the worker with
  ``MALLOC_MMAP_THRESHOLD_`` fixed, so freed tensors are returned to the OS instead of being kept
  in the heap, and RSS follows live memory. One process per configuration, so configurations
  cannot inherit each other's peak.
- ``import``: seconds for ``import torch``, then for ``import audiozoo`` on top of it.
- ``create``: seconds for ``audiozoo.create(name)`` in a process that already imported
  audiozoo (the cache folder comes from ``AUDIOZOO_CACHE``).
- ``loop``: the plain Python loop a user would write to embed a folder: for each file
  ``soundfile.read`` -> mono -> ``audiozoo.resample.resample`` -> ``model.embed`` under
  ``torch.no_grad()`` -> ``np.save``; seconds in total, in decoding (read + resample) and in the
  model. The baseline of the corpus benchmark (``audiozoo embed`` is the other side).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> tuple[int, str]:
    """Reset the RSS high-water mark; returns (current RSS in KiB, method)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError):  # return freed heap pages before taking the baseline
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        rss = _rss_kib("VmRSS")
        if rss is not None:
            return rss, "VmHWM"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"


def _peak_kib(method: str) -> int:
    if method == "VmHWM":
        peak = _rss_kib("VmHWM")
        if peak is not None:
            return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def train(args: argparse.Namespace) -> dict[str, object]:
    import torch

    import audiozoo

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = audiozoo.create(args.model, pretrained=False, freeze=args.mode == "frozen").train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    x = 0.1 * torch.randn(args.batch, int(args.seconds * model.sample_rate))
    y = (torch.rand(args.batch, model.pretrained_cfg.num_classes or 527) < 0.05).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    base, method = _reset_peak()
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        step()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = _peak_kib(method)
    return {
        "step_s": statistics.median(times),
        "peak_mib": (peak - base) / 1024,
        "method": method,
        "trainable": sum(p.numel() for p in params),
    }


def import_time(args: argparse.Namespace) -> dict[str, object]:
    start = time.perf_counter()
    import torch  # noqa: F401

    mid = time.perf_counter()
    import audiozoo  # noqa: F401

    end = time.perf_counter()
    heavy = [m for m in ("torchaudio", "timm", "torchvision", "transformers") if m in sys.modules]
    return {"torch_s": mid - start, "audiozoo_s": end - mid, "heavy_imports": heavy}


def create_time(args: argparse.Namespace) -> dict[str, object]:
    import audiozoo

    start = time.perf_counter()
    model = audiozoo.create(args.name)
    elapsed = time.perf_counter() - start
    return {"create_s": elapsed, "params": sum(p.numel() for p in model.parameters())}


def loop(args: argparse.Namespace) -> dict[str, object]:
    from pathlib import Path

    import numpy as np
    import soundfile
    import torch

    import audiozoo
    from audiozoo.resample import resample

    start = time.perf_counter()
    model = audiozoo.create(args.model, pretrained=False).eval()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    decode = infer = 0.0
    files = sorted(Path(args.folder).rglob("*.wav"))
    for path in files:
        t0 = time.perf_counter()
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        wave = resample(torch.from_numpy(data.mean(axis=1)), rate, model.sample_rate)
        t1 = time.perf_counter()
        with torch.no_grad():
            emb = model.embed(wave)
        t2 = time.perf_counter()
        np.save(out / f"{path.stem}.npy", emb.numpy())
        decode += t1 - t0
        infer += t2 - t1
    return {
        "files": len(files),
        "total_s": time.perf_counter() - start,
        "decode_s": decode,
        "model_s": infer,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._worker")
    sub = parser.add_subparsers(dest="kind", required=True)
    t = sub.add_parser("train")
    t.add_argument("--model", required=True)
    t.add_argument("--mode", choices=("frozen", "full"), required=True)
    t.add_argument("--batch", type=int, required=True)
    t.add_argument("--seconds", type=float, required=True)
    t.add_argument("--threads", type=int, required=True)
    t.add_argument("--warmup", type=int, default=1)
    t.add_argument("--steps", type=int, default=2)
    sub.add_parser("import")
    c = sub.add_parser("create")
    c.add_argument("--name", required=True)
    lp = sub.add_parser("loop")
    lp.add_argument("--model", required=True)
    lp.add_argument("--folder", required=True)
    lp.add_argument("--output", required=True)
    args = parser.parse_args()
    run = {"train": train, "import": import_time, "create": create_time, "loop": loop}[args.kind]
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()

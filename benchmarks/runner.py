"""The benchmark runner: ``python -m benchmarks [--quick] [--only GROUP ...] [--output FILE]``.

Prints the machine, the torch version and a Markdown table of ratios (ours vs theirs), each
measured in one process: frontends and model forwards in this process (interleaved, median of
repeats after warm-up, at torch's default thread count and pinned to 2 threads), training steps,
import and ``create()`` times in fresh subprocesses. Rows whose outputs disagree are FAILED
(exit status 1), rows below their target are MISSED (exit status 1 only with ``--strict``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ._timing import Row, cpu_burners, fmt_time, machine_description, render
from .cases import Settings, frontend_cases, missing, model_cases
from .corpus import corpus_rows
from .sed import sed_rows

__all__ = ["main"]

GROUPS = (
    "frontends",
    "contended",
    "passt",
    "ast",
    "ced",
    "dasheng",
    "beats",
    "sed",
    "mn10",
    "train",
    "startup",
    "corpus",
)
REPO = Path(__file__).resolve().parent.parent


def _worker(
    args: list[str], *, threads: int | None = None, env: dict[str, str] | None = None
) -> dict[str, object]:
    full_env = {**os.environ, **(env or {})}
    # Fixed mmap threshold: large freed tensors go back to the OS, so RSS tracks live memory.
    full_env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    if threads is not None:
        full_env["OMP_NUM_THREADS"] = str(threads)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), full_env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._worker", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {args} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------- training
@dataclasses.dataclass
class TrainCase:
    model: str
    batch: int
    memory_target: float | None  # frozen peak / full peak must be <= this


def training_rows(s: Settings, cases: list[TrainCase], steps: int) -> list[Row]:
    rows = []
    for case in cases:
        for threads in s.threads:
            res = {
                mode: _worker(
                    [
                        "train",
                        "--model",
                        case.model,
                        "--mode",
                        mode,
                        "--batch",
                        str(case.batch),
                        "--seconds",
                        str(s.seconds),
                        "--threads",
                        str(threads),
                        "--steps",
                        str(steps),
                        "--warmup",
                        str(min(s.warmup, 1)),
                    ],
                    threads=threads,
                )
                for mode in ("frozen", "full")
            }
            frozen, full = res["frozen"], res["full"]
            t_frozen, t_full = float(frozen["step_s"]), float(full["step_s"])  # type: ignore[arg-type]
            m_frozen, m_full = float(frozen["peak_mib"]), float(full["peak_mib"])  # type: ignore[arg-type]
            label = f"{case.model} train step: frozen backbone vs full fine-tuning"
            rows.append(
                Row(
                    f"{label} (time)",
                    batch=str(case.batch),
                    threads=str(threads),
                    ours=fmt_time(t_frozen),
                    theirs=fmt_time(t_full),
                    ratio=t_full / t_frozen,
                    ratio_text=f"{t_full / t_frozen:.2f}x faster",
                )
            )
            ratio = m_frozen / m_full if m_full > 0 else float("nan")
            rows.append(
                Row(
                    f"{label} (peak memory, {frozen['method']})",
                    batch=str(case.batch),
                    threads=str(threads),
                    ours=f"{m_frozen:.0f} MiB",
                    theirs=f"{m_full:.0f} MiB",
                    ratio=ratio,
                    ratio_text=f"{ratio:.2f} of full",
                    target=case.memory_target,
                    higher=False,
                )
            )
    return rows


# ---------------------------------------------------------------------------------- startup
def _prepare_cache(cache: Path, fixtures: Path | None) -> str:
    """Fill ``cache`` with converted ``mn10.as`` weights through audiozoo's own download and
    conversion code: the tag's release URL is redirected (``AUDIOZOO_URL_REWRITE``) to a local
    folder holding the EfficientAT fixture (or, without fixtures, a random checkpoint in native
    keys). Returns the name of the file that was converted."""
    import audiozoo

    cfg = audiozoo.get_pretrained_cfg("mn10.as")
    assert cfg.url is not None
    folder, filename = cfg.url.rsplit("/", 1)
    mirror = cache / "mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    source = fixtures / "efficientat" / "mn10_as.pt" if fixtures else None
    if source is not None and source.is_file():
        shutil.copyfile(source, mirror / filename)
    else:
        source = cache / "mn10_random.pt"
        torch.save(audiozoo.create("mn10.as", pretrained=False).state_dict(), source)
        shutil.copyfile(source, mirror / filename)
    rewrite = {
        "AUDIOZOO_URL_REWRITE": f"{folder}/={mirror.resolve().as_uri()}/",
        "HF_HUB_OFFLINE": "0",
    }  # a file:// mirror: no network involved
    saved = {k: os.environ.get(k) for k in rewrite}
    os.environ.update(rewrite)
    try:
        audiozoo.create("mn10.as", cache_dir=cache)  # downloads, converts and caches once
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return source.name


def startup_rows(s: Settings, n: int) -> list[Row]:
    imports = [_worker(["import"]) for _ in range(n)]
    best = min(imports, key=lambda r: float(r["audiozoo_s"]))  # type: ignore[arg-type]
    heavy = best["heavy_imports"]
    rows = [
        Row(
            "import audiozoo (after import torch)",
            ours=fmt_time(float(best["audiozoo_s"])),  # type: ignore[arg-type]
            theirs=f"torch {fmt_time(float(best['torch_s']))}",  # type: ignore[arg-type]
            ratio=float(best["audiozoo_s"]),
            ratio_text=f"{float(best['audiozoo_s']):.3f} s",  # type: ignore[arg-type]
            target=0.3,
            higher=False,
            check=f"best of {n}; "
            + (f"imports {heavy}" if heavy else "no torchaudio/timm/transformers"),
            agree=not heavy,
        )
    ]
    with tempfile.TemporaryDirectory() as tmp:
        source = _prepare_cache(Path(tmp), s.fixtures)
        env = {"AUDIOZOO_CACHE": tmp, "HF_HUB_OFFLINE": "1"}
        created = [_worker(["create", "--name", "mn10.as"], env=env) for _ in range(n)]
    t = min(float(r["create_s"]) for r in created)  # type: ignore[arg-type]
    rows.append(
        Row(
            'create("mn10.as") from a warm cache',
            ours=fmt_time(t),
            ratio=t,
            ratio_text=f"{t:.3f} s",
            target=0.5,
            higher=False,
            check=f"best of {n} fresh processes; cache from {source}",
        )
    )
    return rows


# ---------------------------------------------------------------------------------- contended
def contended_rows(s: Settings) -> list[Row]:
    """The frontend comparisons again with one CPU-burning process beside the run (a busy
    machine): both sides lose a core's share; ours must lose no more than upstream."""
    busy = dataclasses.replace(s, only=("frontends",))
    with cpu_burners(1):
        rows = frontend_cases(busy)
    for row in rows:
        row.case += " [1 CPU burner beside]"
        row.target = 1.0 if row.target is not None else None  # no worse than upstream
    return rows


# ---------------------------------------------------------------------------------- main
def _fixtures() -> Path | None:
    env = os.environ.get("AUDIOZOO_FIXTURES")
    path = Path(env) if env else REPO.parent / "shared" / "fixtures"
    return path if path.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 s clips, batch 1, 1 repeat, small training batches",
    )
    parser.add_argument(
        "--only", nargs="+", choices=GROUPS, default=[], help="run only these groups"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per frontend case")
    parser.add_argument("--model-repeats", type=int, default=3, help="timed runs per model case")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--corpus-files", type=int, default=500, help="files of the corpus case")
    parser.add_argument("--corpus-repeats", type=int, default=3, help="rounds of the corpus case")
    parser.add_argument("--output", type=Path, help="also write the report (Markdown) here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    # Nothing here needs the network: never wait for Hub retries (labels are not needed).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("audiozoo").setLevel(logging.ERROR)

    default_threads = torch.get_num_threads()
    threads = tuple(dict.fromkeys((default_threads, 2)))  # deduplicated when the default is 2
    if args.quick:
        s = Settings(
            seconds=1.0,
            batches=(1,),
            threads=(default_threads,),
            warmup=0,
            repeats=1,
            model_repeats=1,
            fixtures=_fixtures(),
            only=tuple(args.only),
        )
        train_cases = [TrainCase("mn10", 2, None)]
        steps, n_startup = 1, 1
        args.corpus_files, args.corpus_repeats = 10, 1
    else:
        s = Settings(
            threads=threads,
            repeats=args.repeats,
            model_repeats=args.model_repeats,
            fixtures=_fixtures(),
            only=tuple(args.only),
        )
        # PaSST trains at batch 4: a batch-16 fine-tuning step takes minutes on a small CPU
        train_cases = [TrainCase("mn10", 16, 0.5), TrainCase("passt_s", 4, None)]
        steps, n_startup = args.train_steps, 5

    peers = [
        p
        for p in ("hear21passt", "torchaudio", "timm", "transformers", "speechbrain")
        if not missing(p)
    ]
    header = [
        "# audiozoo benchmarks",
        "",
        f"- machine: {machine_description()}",
        f"- threads: {', '.join(str(t) for t in s.threads)} (torch default: {default_threads})",
        f"- clips: {s.seconds:g} s; warm-up {s.warmup} + median of {s.repeats} (frontends) / "
        f"{s.model_repeats} (models) interleaved runs; eval mode, torch.no_grad()",
        f"- upstream peers importable: {', '.join(peers) if peers else 'none'}",
        '- ratio: theirs / ours time ("x faster"); memory: frozen / full peak; '
        "check: max difference of the outputs (abs for frontends, relative for models)",
        "",
    ]
    print("\n".join(header), flush=True)

    rows: list[Row] = []
    groups = [lambda: frontend_cases(s), lambda: model_cases(s)]
    if s.wants("sed"):
        groups.append(lambda: sed_rows(s))
    if "contended" in s.only:  # not in the default run: it takes a core away on purpose
        groups.append(lambda: contended_rows(s))
    if s.wants("corpus") and (s.only or not args.quick):
        groups.append(lambda: corpus_rows(args.corpus_files, args.corpus_repeats))
    if s.wants("train"):
        groups.append(lambda: training_rows(s, train_cases, steps))
    if s.wants("startup"):
        groups.append(lambda: startup_rows(s, n_startup))
    for group in groups:
        for row in group():
            rows.append(row)  # progress on stderr: the table comes at the end
            print(
                f"  {row.case} [batch {row.batch or '-'}, threads {row.threads or '-'}]: "
                f"{row.ours} vs {row.theirs} {row.ratio_text} {row.status}",
                file=sys.stderr,
                flush=True,
            )
    torch.set_num_threads(default_threads)

    table = render(rows)
    print(table)
    if args.output:
        args.output.write_text("\n".join(header) + "\n" + table + "\n")
    failed = any(r.agree is False for r in rows)
    missed = any(r.status == "MISSED" for r in rows)
    return 1 if failed or (args.strict and missed) else 0

"""The ``audiozoo`` command line (also ``python -m audiozoo``).

::

    audiozoo list [PATTERN] [--pretrained]      registered models, or tags with weights
    audiozoo info NAME [--json]                 architecture, size, MACs, rates, source
    audiozoo download NAME... [--verify]        fetch + convert into the cache (for offline use)
    audiozoo tag FILE|DIR... [--model mn10] [--top-k 5] [--threshold P] [--format json|csv]
                 [--output FILE] [--pretrained PATH]
    audiozoo tag FILE|DIR... --events [--model frame_mn10.as_strong] [--threshold 0.5]
                 [--median 0.36]
    audiozoo embed FILE|DIR|LIST... -o OUT [--model mn10] [--frames] [--layers all] [--format ...]
    audiozoo embed --merge -o OUT              check a (multi-process) run, join its shards
    audiozoo convert CHECKPOINT --name mn10.as --out DIR

One module per group of commands: :mod:`~audiozoo.cli.models` (list, info, download,
convert), :mod:`~audiozoo.cli.tag` (tag, tag --events), :mod:`~audiozoo.cli.embed` (embed; the
corpus logic is in :mod:`audiozoo.corpus`); this module holds the parser and :func:`main`.

Exit status: 0 on success; 1 when a command fails (one line on stderr) or when some files of a
``tag`` run failed (one line per file, the others are still tagged); 2 for invalid options.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

from .embed import cmd_embed
from .models import cmd_convert, cmd_download, cmd_info, cmd_list, model_info
from .tag import cmd_tag

__all__ = ["build_parser", "main", "model_info"]


# ---------------------------------------------------------------------------------- option types
def _number(
    kind: Callable[[str], float], low: float | None, high: float | None, what: str
) -> Callable[[str], float]:
    """An argparse ``type=``: ``kind(text)`` within ``[low, high]``, else a usage error."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (
            not math.isfinite(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


_POSITIVE_INT = _number(int, 1, None, "an integer >= 1")
_PROBABILITY = _number(float, 0.0, 1.0, "a probability in [0, 1]")
_SECONDS = _number(float, 0.0, None, "a number of seconds >= 0")


# ---------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="audiozoo", description="Pretrained audio models: list, inspect, fetch, tag."
    )
    parser.add_argument("--version", action="version", version=f"audiozoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list architectures, or tags with weights")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'mn*'")
    p.add_argument("--pretrained", action="store_true", help="list arch.tag names with weights")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("info", help="size, MACs, rates, receptive field, source of a model")
    p.add_argument("name", help="arch or arch.tag")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("download", help="fetch and convert weights into the cache")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="re-check the sha256 of every cached file; exit status 1 when one is corrupt",
    )
    p.set_defaults(run=cmd_download)

    p = sub.add_parser("tag", help="print the top labels of audio files")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files or folders")
    p.add_argument("--model", default="mn10", help="model name (default: mn10)")
    p.add_argument(
        "--top-k",
        "--top",
        dest="top_k",
        type=_POSITIVE_INT,
        help="at most K labels per file (default: 5, or all above --threshold)",
    )
    p.add_argument(
        "--threshold",
        type=_PROBABILITY,
        help="only labels with probability >= P; with --events the frame threshold (default 0.5)",
    )
    p.add_argument(
        "--format", choices=("text", "json", "csv"), default="text", help="output format"
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--pretrained", metavar="PATH", help="weights from this checkpoint file")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.add_argument(
        "--events",
        action="store_true",
        help="print timed events (onset, offset, label) instead of the top labels; needs a "
        "frame-level model such as frame_mn10.as_strong",
    )
    p.add_argument(
        "--median",
        type=_SECONDS,
        default=0.36,
        metavar="SECONDS",
        help="--events: median filter length (default 0.36 s = 9 frames of 40 ms, as "
        "PretrainedSED's inference.py)",
    )
    p.set_defaults(run=cmd_tag)

    p = sub.add_parser(
        "embed",
        help="embeddings of audio files into .npz/.npy files or shards (resumable)",
        description="Embed files, folders and list files (see docs/cli.md). Under torchrun "
        "every rank takes its share; --merge checks that every input is present once.",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files, folders, list files")
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--model", default="mn10", help="model name (default: mn10)")
    p.add_argument(
        "--pretrained",
        metavar="true|false|PATH",
        help="the tag's weights (true, default), random init (false) or a checkpoint",
    )
    p.add_argument("--frames", action="store_true", help="also frame embeddings + timestamps")
    p.add_argument("--layers", help="'all' or comma-separated layer names/indices")
    p.add_argument("--batch-size", type=_POSITIVE_INT, default=16, help="clips per model call (16)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument(
        "--workers",
        type=_number(int, 0, None, "an integer >= 0"),
        help="decoding workers (default: fitted to the cores)",
    )
    p.add_argument(
        "--threads", type=_POSITIVE_INT, help="model threads (default: fitted to the cores)"
    )
    p.add_argument(
        "--format",
        choices=("npz", "npy", "shard", "parquet"),
        default="npz",
        help="npz/npy per file (default npz), or one NPZ/Parquet shard per process",
    )
    p.add_argument("--shard", metavar="I/N", help="take share I of N (default: RANK/WORLD_SIZE)")
    p.add_argument("--merge", action="store_true", help="check and join the output of a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-optimize", action="store_true", help="skip optimize_for_inference")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.set_defaults(run=cmd_embed)

    p = sub.add_parser("convert", help="upstream checkpoint -> audiozoo format folder")
    p.add_argument("checkpoint", help="upstream checkpoint file or URL")
    p.add_argument("--name", required=True, help="arch.tag the checkpoint belongs to")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cache-dir", help="cache folder (default: $AUDIOZOO_CACHE)")
    p.set_defaults(run=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors: 1, with one message on stderr;
    invalid options: argparse's usage error, exit status 2)."""
    from .. import AudiozooError

    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (AudiozooError, OSError, ValueError, ImportError) as exc:
        sys.stderr.write(f"audiozoo {args.command}: error: {exc}\n")
        return 1
    return status

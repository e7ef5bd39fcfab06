"""What the commands share: printing, reading audio files, and per-file errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["each_file", "out", "read_audio"]

T = TypeVar("T")


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def read_audio(path: str, sample_rate: int) -> Any:
    """Any soundfile-readable file → mono float32 tensor (N,) at ``sample_rate``.

    Raises:
        OSError: the file cannot be read ("cannot read PATH: no such file or directory",
            "... permission denied", or the decoder's reason).
        InvalidAudioError: the file holds no samples, or NaN / infinite ones.
    """
    import torch

    from .. import InvalidAudioError
    from ..corpus import read_mono
    from ..resample import resample

    try:
        wave, rate = read_mono(path)
    except OSError as exc:  # the OS's reason, without errno numbers
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        raise OSError(f"cannot read {path}: {reason}") from None
    except RuntimeError as exc:  # soundfile.LibsndfileError: not audio, or a broken file
        raise OSError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:  # an empty file
        raise InvalidAudioError(f"cannot read {path}: {exc}") from None
    if not bool(torch.isfinite(wave).all()):
        raise InvalidAudioError(f"{path}: the audio holds NaN or infinite samples")
    if rate != sample_rate:
        wave = resample(wave, int(rate), sample_rate)
    return wave


def each_file(command: str, paths: Iterable[str], run: Callable[[str], T]) -> dict[str, T]:
    """``run(path)`` for every file; a file that fails is reported on stderr (with the reason)
    and skipped, and the others go on. Returns the results of the files that worked."""
    from .. import AudiozooError

    results: dict[str, T] = {}
    for path in paths:
        try:
            results[path] = run(path)
        except (AudiozooError, OSError) as exc:
            text = str(exc) if path in str(exc) else f"{path}: {exc}"
            sys.stderr.write(f"audiozoo {command}: error: {text}\n")
    return results

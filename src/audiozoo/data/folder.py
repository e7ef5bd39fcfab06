"""Audio files in a folder with a CSV of labels."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import soundfile
import torch
from torch.utils.data import Dataset

__all__ = ["FolderDataset"]


class FolderDataset(Dataset):
    """Audio files in a folder with a CSV of labels.

    The CSV has a header with at least the columns ``filename`` (a path relative to ``root``) and
    ``label``. A label cell holding several labels separated by ``;`` makes the data set
    multi-label. Files are read with soundfile, mixed to mono (mean over channels) and
    resampled to ``sample_rate`` with :func:`audiozoo.resample.resample`.

    Args:
        root: folder the file names are relative to.
        csv_file: the CSV (default ``root / "labels.csv"``); relative paths are relative to
            ``root``.
        sample_rate: sample rate of the returned waveforms (the model's).
        classes: class names in output order (default: the sorted labels found in the CSV).
        duration: if given, crop (from the start) or zero-pad every clip to this many seconds,
            so clips can be batched.
        multi_label: force multi-hot targets even when every row has one label (default:
            multi-label exactly when some row has several).
        split: keep only rows whose ``split`` column equals this (e.g. ``"train"``/``"test"``).

    Items:
        ``(waveform, target)``: (N,) float32; an int class index, or a (K,) float32 multi-hot
        vector for multi-label data.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        csv_file: str | os.PathLike[str] | None = None,
        *,
        sample_rate: int,
        classes: Sequence[str] | None = None,
        duration: float | None = None,
        multi_label: bool | None = None,
        split: str | None = None,
    ) -> None:
        self.root = Path(root)
        path = self.root / (csv_file if csv_file is not None else "labels.csv")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "filename" not in fields or "label" not in fields:
                raise ValueError(
                    f"{path} needs a header with the columns 'filename' and 'label', got {fields}"
                )
            if split is not None and "split" not in fields:
                raise ValueError(f"split={split!r} but {path} has no 'split' column")
            rows = [r for r in reader if split is None or r["split"] == split]
        self.files = [self.root / r["filename"] for r in rows]
        self.item_labels = [[s.strip() for s in r["label"].split(";") if s.strip()] for r in rows]
        found = sorted({label for labels in self.item_labels for label in labels})
        self.classes = tuple(classes) if classes is not None else tuple(found)
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise ValueError(f"labels {unknown} in {path} are not in classes={list(self.classes)}")
        self.multi_label = (
            multi_label
            if multi_label is not None
            else any(len(labels) != 1 for labels in self.item_labels)
        )
        self.sample_rate = sample_rate
        self.num_samples = None if duration is None else round(duration * sample_rate)
        self._index = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.files)

    def target(self, index: int) -> int | torch.Tensor:
        """Target of item ``index`` without reading its audio."""
        labels = self.item_labels[index]
        if not self.multi_label:
            return self._index[labels[0]]
        hot = torch.zeros(len(self.classes))
        hot[[self._index[c] for c in labels]] = 1.0
        return hot

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        data, sr = soundfile.read(self.files[index], dtype="float32", always_2d=True)  # (N, ch)
        wave = torch.from_numpy(data.mean(axis=1))
        if sr != self.sample_rate:
            from ..resample import resample

            wave = resample(wave, sr, self.sample_rate)
        if self.num_samples is not None:
            wave = wave[: self.num_samples]
            wave = torch.nn.functional.pad(wave, (0, self.num_samples - wave.shape[0]))
        return wave.contiguous(), self.target(index)

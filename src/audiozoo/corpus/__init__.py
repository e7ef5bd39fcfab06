"""Embedding a corpus: audio files in, one embedding file per input (or one shard per process) out.

This is what ``audiozoo embed`` runs; the same functions work from Python::

    import audiozoo
    from audiozoo.corpus import embed_corpus, merge_shards

    model = audiozoo.create("mn10.as")
    summary = embed_corpus(model, ["clips/"], "embeddings/", frames=True)
    print(summary.text())

How a run goes:

1. **Inputs** (:func:`find_inputs`): files, folders (searched recursively for audio files
   soundfile reads) and list files (``.txt``/``.lst``/``.list``: one path per line, relative
   paths relative to the list file, ``#`` comments). Each input gets a **key**: its path relative
   to the common folder of all inputs, with ``/`` separators. Keys are sorted; a file named twice
   is one input.
2. **Share** (:func:`resolve_shard`): ``--shard i/n``, else ``RANK``/``WORLD_SIZE`` (set by
   ``torchrun``), else the whole list. Process ``i`` of ``n`` takes keys ``i, i + n, ...``.
3. **Resume**: inputs whose output already exists (a per-file output, or a key in any shard of
   the output folder) are skipped; outputs are written atomically (temporary file + rename), so
   a run killed at any point leaves only complete files.
4. **Decoding** in DataLoader workers (:class:`AudioFiles`): soundfile, mixed to mono, resampled
   to the model's rate with a kernel-caching :class:`~audiozoo.resample.Resampler`. A file that
   fails to decode is recorded with its reason and never stops the run.
5. **The model** on batches of clips of any lengths (``model.embed(list_of_clips)``: every file
   gets exactly what it gets alone), under ``torch.inference_mode``. Within the share, files are
   ordered by size so that batches hold clips of similar length.
6. **Outputs** (:class:`PerFileWriter`, :class:`ShardWriter`) and a :class:`Summary` (files,
   seconds of audio, throughput, time in decoding vs the model, failures with reasons), also
   written to ``summary-<shard>.json``.

Cores (:func:`plan_cpu`): decoding workers and the model's intra-op threads share the process's
cores (its CPU affinity divided by ``LOCAL_WORLD_SIZE`` under torchrun) without oversubscribing
them: from 4 cores on ``workers + threads == cores``; below, the model gets every core and one
decoding worker runs at the lowest CPU priority (nice 19), taking only the cycles the model
leaves idle. DataLoader workers run torch with one thread each.

Output formats (``format=``):

- ``"npz"`` (default): ``<output>/<key without extension>.npz`` per file with ``embedding``
  (C,), and with ``frames=True`` also ``frames`` (T, C) and ``timestamps`` (T,) (seconds of each
  frame's start); with ``layers`` each array name gets ``@<layer>`` (``embedding@blocks.3``).
- ``"npy"``: ``<key>.npy`` per file holding one array: the clip embedding, or with
  ``frames=True`` the frame embeddings (one layer only).
- ``"shard"``: one ``shard-<i>-of-<n>.npz`` per process: ``file`` (M,), ``seconds`` (M,),
  ``embedding`` (M, C), with frames ``frames`` (sum of T, C), ``frame_offsets`` (M + 1,) (file
  ``m`` has frames ``frame_offsets[m]:frame_offsets[m + 1]``) and ``timestamps``; layer suffixes as
  above. Written in parts while the run goes (resumable) and joined at the end.
- ``"parquet"`` (needs pyarrow): the same per process as ``shard-<i>-of-<n>.parquet``, one row per
  file, list columns for embeddings, frames and timestamps.

:func:`merge_shards` checks that every input of ``manifest.txt`` (written by every process: the
sorted keys of the whole run) is present exactly once (or failed to decode, with the reason in a
``summary-*.json``), and joins the shards of several processes into one ``embeddings.npz`` /
``embeddings.parquet`` in manifest order (a single process's shard is already the whole run).
"""

from __future__ import annotations

from .decoding import AudioFiles, Decoded, read_mono
from .inputs import (
    AUDIO_SUFFIXES,
    LIST_SUFFIXES,
    Input,
    cpu_share,
    find_inputs,
    plan_cpu,
    resolve_shard,
)
from .merge import MergeReport, merge_shards
from .run import FORMATS, embed_corpus
from .summary import Summary
from .writers import MANIFEST, PerFileWriter, ShardWriter, read_embeddings

__all__ = [
    "AUDIO_SUFFIXES",
    "FORMATS",
    "LIST_SUFFIXES",
    "MANIFEST",
    "AudioFiles",
    "Decoded",
    "Input",
    "MergeReport",
    "PerFileWriter",
    "ShardWriter",
    "Summary",
    "cpu_share",
    "embed_corpus",
    "find_inputs",
    "merge_shards",
    "plan_cpu",
    "read_embeddings",
    "read_mono",
    "resolve_shard",
]

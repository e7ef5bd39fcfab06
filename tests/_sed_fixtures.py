"""The seeded weights and inputs behind ``tests/fixtures/pretrainedsed_full/`` (see its README).

The fixtures hold only what upstream PretrainedSED computed for full-size ``frame_mn10`` and
fPaSST; the weights and waveforms are regenerated here from fixed seeds, so the committed files
stay small. ``keys.json`` lists each upstream checkpoint's keys, shapes and dtypes and checksums of
the generated weights and inputs, so a change in torch's random number generator shows as a
checksum failure, not as a parity failure.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pretrainedsed_full"
MODELS = {"frame_mn10": "frame_mn10.as_strong", "fpasst": "fpasst.as_strong"}
CASES = {"10s": 10.0, "3.3s": 3.3, "23s": 23.0}
SAMPLE_RATE = 16000


def seeded_tensor(name: str, shape: list[int], dtype: str) -> torch.Tensor:
    """The weight for upstream key ``name``: a generator seeded with ``crc32(name)``, then

    - ``num_batches_tracked``: 0; BatchNorm ``running_var`` 0.5 + U(0, 1), ``running_mean``
      0.1 N(0, 1) (so every BatchNorm differs from the identity without shrinking the signal
      block after block);
    - 1-D ``weight`` (LayerNorm and BatchNorm scales): 1 + 0.1 N; 1-D biases 0.1 N;
    - tokens and positional embeddings 0.5 N; other tensors of rank >= 2: N / sqrt(fan_in).
    """
    if dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g)
    x = torch.randn(shape, generator=g)
    if name.endswith("running_mean"):
        return 0.1 * x
    if "token" in name or "pos_embed" in name:
        return 0.5 * x
    if len(shape) >= 2:
        return x / math.sqrt(math.prod(shape[1:]))
    return (1.0 if name.endswith("weight") else 0.0) + 0.1 * x


def keys() -> dict:
    return json.loads((FIXTURES / "keys.json").read_text())


def upstream_state_dict(model: str) -> dict[str, torch.Tensor]:
    """The upstream-format (release file) state dict of ``model``: the seeded weights, with the
    BatchNorm statistics that were calibrated on synthetic audio (stored as ``state.KEY`` in the
    reference file; seeded statistics would let the signal fade block after block)."""
    sd = {name: seeded_tensor(name, shape, dtype) for name, shape, dtype in keys()[model]["keys"]}
    stored = reference(model)
    sd.update({k[len("state.") :]: v for k, v in stored.items() if k.startswith("state.")})
    return sd


def waveform(case: str) -> torch.Tensor:
    """(1, N) test input: a chirp, a tone switched on and off every 0.7 s, and noise under a slow
    envelope; never silent, so the log floor of the mel never binds."""
    n = round(CASES[case] * SAMPLE_RATE)
    g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    t = torch.arange(n, dtype=torch.float64) / SAMPLE_RATE
    env = 1.5 + torch.sin(2 * math.pi * t / 2.3)
    chirp = 0.1 * torch.sin(2 * math.pi * (150.0 * t + 40.0 * t * t))
    tone = 0.2 * torch.sin(2 * math.pi * 1000.0 * t) * ((t % 1.4) < 0.7)
    noise = 0.05 * env * torch.randn(n, generator=g, dtype=torch.float64)
    return (chirp + tone + noise).float()[None]


def checksum(tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> float:
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return float(sum(v.double().abs().sum() for v in values if v.is_floating_point()))


def reference(model: str) -> dict[str, torch.Tensor]:
    """What upstream computed for ``model``: ``{case}.strong`` (447, 250 * chunks),
    ``{case}.weak`` (chunks, 447), for 10 s ``10s.mel`` (128, 1000) and ``10s.sequence``
    (250, C), and the calibrated BatchNorm statistics ``state.*``."""
    return load_file(FIXTURES / f"{model}.safetensors")

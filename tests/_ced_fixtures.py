"""The seeded weights and inputs behind ``tests/fixtures/ced/`` (see its README).

The fixtures hold only what upstream CED computed; the weights and waveforms are regenerated
here from fixed seeds, so the committed files stay small. ``keys.json`` lists the upstream
state-dict keys and shapes of each model and a checksum of the generated weights and inputs, so a
change in torch's random number generator shows as a checksum failure, not as a parity failure.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ced"
SIZES = ("ced_tiny", "ced_mini", "ced_small", "ced_base")
CASES = {"10s": 10.0, "3.3s": 3.3, "25s": 25.0}
SAMPLE_RATE = 16000


def seeded_tensor(name: str, shape: list[int], dtype: str) -> torch.Tensor:
    """The weight for upstream key ``name``: a generator seeded with ``crc32(name)``, then

    - ``num_batches_tracked``: 0; ``running_var``: 25 + 75 U(0, 1); ``running_mean``: 10 N(0, 1)
      (spread like dB values, so the BatchNorm is far from the identity);
    - LayerNorm / BatchNorm weights (names with ``norm``/``init_bn``/``outputlayer.0``):
      1 + 0.1 N, their biases 0.1 N;
    - other tensors of rank >= 2 except positional embeddings: N / sqrt(fan_in);
    - positional embeddings 0.5 N; remaining biases 0.1 N.
    """
    if dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("running_var"):
        return 25.0 + 75.0 * torch.rand(shape, generator=g)
    x = torch.randn(shape, generator=g)
    if name.endswith("running_mean"):
        return 10.0 * x
    if any(s in name for s in ("norm", "init_bn", "outputlayer.0")):
        return (1.0 if name.endswith("weight") else 0.0) + 0.1 * x
    if len(shape) >= 2 and "pos_embed" not in name:
        return x / math.sqrt(math.prod(shape[1:]))
    return (0.5 if "pos_embed" in name else 0.1) * x


def keys() -> dict:
    return json.loads((FIXTURES / "keys.json").read_text())


def upstream_state_dict(size: str) -> dict[str, torch.Tensor]:
    """The upstream-format (Zenodo) state dict of ``size`` with the seeded weights. The
    ``front_end`` buffers (window, mel bank) are zeros: the converter drops them."""
    out = {}
    for name, shape, dtype in keys()[size]["keys"]:
        if name.startswith("front_end."):
            out[name] = torch.zeros(shape)
        else:
            out[name] = seeded_tensor(name, shape, dtype)
    return out


def waveforms(case: str) -> torch.Tensor:
    """(2, N) test input: noise under a slow envelope plus a rising chirp, two loudnesses."""
    n = round(CASES[case] * SAMPLE_RATE)
    g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
    t = torch.arange(n, dtype=torch.float64) / SAMPLE_RATE
    env = 1.5 + torch.sin(2 * math.pi * t / 1.7)  # never silent: the 120 dB floor never binds
    chirp = torch.sin(2 * math.pi * (200.0 * t + 150.0 * t * t))
    noise = torch.randn(2, n, generator=g, dtype=torch.float64)
    amp = torch.tensor([[0.05], [0.3]], dtype=torch.float64)
    return (amp * noise * env + 0.1 * chirp).float()


def checksum(tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> float:
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return float(sum(v.double().abs().sum() for v in values if v.is_floating_point()))


def reference(size: str) -> dict[str, torch.Tensor]:
    """What upstream computed for ``size``: ``{case}.{probs,logits,embedding[,frames]}``."""
    return load_file(FIXTURES / f"{size}.safetensors")

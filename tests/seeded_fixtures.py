"""Seeded upstream-format weights and test inputs for parity fixtures made with upstream code
that is not pip-installable (PretrainedSED's full-size frame_mn10 and fPaSST, EfficientAT's DyMN).

A fixture folder holds only what upstream computed: ``keys.json`` lists each upstream checkpoint's
keys, shapes and dtypes, the checksums of the seeded weights and of the inputs, and
``MODEL.safetensors`` the upstream outputs plus ``state.KEY`` tensors that are stored rather than
seeded (buffers: calibrated BatchNorm statistics, constants). The weights are rebuilt here from
fixed seeds, so the committed files stay small, and a change of torch's random number generator
shows as a checksum failure, not as a parity failure. Each folder's README says how it was made.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def seeded_tensor(
    name: str, shape: list[int], dtype: str, linear_gain: float = 1.0
) -> torch.Tensor:
    """The weight for upstream key ``name``: a generator seeded with ``crc32(name)``, then

    - ``num_batches_tracked`` (int64): 0; BatchNorm ``running_var`` 0.5 + U(0, 1),
      ``running_mean`` 0.1 N(0, 1) (fixtures may store calibrated statistics instead);
    - tokens and positional embeddings 0.5 N; other tensors of rank >= 2: N / sqrt(fan_in),
      times ``linear_gain`` for rank-2 (Linear) weights;
    - 1-D ``weight`` (LayerNorm and BatchNorm scales): 1 + 0.1 N; other 1-D tensors 0.1 N.
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
        gain = linear_gain if len(shape) == 2 else 1.0
        return gain * x / math.sqrt(math.prod(shape[1:]))
    return (1.0 if name.endswith("weight") else 0.0) + 0.1 * x


def checksum(tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> float:
    """Sum of absolute values in float64 (floating-point tensors only)."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return float(sum(v.double().abs().sum() for v in values if v.is_floating_point()))


@dataclass(frozen=True)
class SeededFixture:
    """One fixture folder: its models (fixture name -> audiozoo tag), cases (name -> seconds),
    the sample rate of its inputs, and the gain of Linear weights outside ``linear_gain_skip``
    (a random deep network with dynamic parts can amplify float32 rounding; a lower gain keeps
    the reference well-conditioned)."""

    folder: Path
    models: dict[str, str]
    cases: dict[str, float]
    sample_rate: int
    linear_gain: float = 1.0
    linear_gain_skip: str = ""

    def seeded(self, name: str, shape: list[int], dtype: str) -> torch.Tensor:
        skip = bool(self.linear_gain_skip) and name.startswith(self.linear_gain_skip)
        return seeded_tensor(name, shape, dtype, 1.0 if skip else self.linear_gain)

    def keys(self) -> dict:
        return json.loads((self.folder / "keys.json").read_text())

    def reference(self, model: str) -> dict[str, torch.Tensor]:
        """What upstream computed for ``model``, and the stored ``state.*`` tensors."""
        return load_file(self.folder / f"{model}.safetensors")

    def upstream_state_dict(self, model: str) -> dict[str, torch.Tensor]:
        """The upstream-format (release file) state dict: seeded tensors, replaced by the stored
        ``state.KEY`` tensors where the fixture has them."""
        keys = self.keys()[model]["keys"]
        sd = {name: self.seeded(name, shape, dtype) for name, shape, dtype in keys}
        stored = self.reference(model)
        sd.update({k[len("state.") :]: v for k, v in stored.items() if k.startswith("state.")})
        return sd

    def seeded_checksum(self, model: str) -> float:
        """Checksum of the seeded tensors that are not replaced by stored ones."""
        stored = {k[len("state.") :] for k in self.reference(model) if k.startswith("state.")}
        keys = self.keys()[model]["keys"]
        return checksum([self.seeded(n, s, d) for n, s, d in keys if n not in stored])

    def waveform(self, case: str) -> torch.Tensor:
        """(1, N) input: a chirp, a tone switched on and off every 0.7 s, and noise under a slow
        envelope; never silent, so no log floor binds."""
        n = round(self.cases[case] * self.sample_rate)
        g = torch.Generator().manual_seed(zlib.crc32(case.encode()))
        t = torch.arange(n, dtype=torch.float64) / self.sample_rate
        env = 1.5 + torch.sin(2 * math.pi * t / 2.3)
        chirp = 0.1 * torch.sin(2 * math.pi * (150.0 * t + 40.0 * t * t))
        tone = 0.2 * torch.sin(2 * math.pi * 1000.0 * t) * ((t % 1.4) < 0.7)
        noise = 0.05 * env * torch.randn(n, generator=g, dtype=torch.float64)
        return (chirp + tone + noise).float()[None]


PRETRAINEDSED_FULL = SeededFixture(
    FIXTURES / "pretrainedsed_full",
    models={"frame_mn10": "frame_mn10.as_strong", "fpasst": "fpasst.as_strong"},
    cases={"10s": 10.0, "3.3s": 3.3, "23s": 23.0},
    sample_rate=16000,
)
DYMN_FULL = SeededFixture(
    FIXTURES / "dymn_full",
    models={"dymn10": "dymn10.as", "dymn20": "dymn20.as"},
    cases={"10s": 10.0, "3.3s": 3.3},
    sample_rate=32000,
    linear_gain=0.5,  # the context, kernel-attention and DyReLU layers; gain 1 amplified 1e-6 to 1e-2
    linear_gain_skip="classifier",
)

"""The engines users scale on: DDP, torch.compile, torch.export / ONNX, autocast, determinism.

Slow tests (DDP, export, inductor) are marked ``slow`` but stay in the default run. The ONNX tests
need the ``export`` extra (onnx, onnxruntime, onnxscript) and skip with a reason without it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import audiozoo

SMALL = {"embed_dim": 32, "depth": 1, "num_heads": 2}
FAMILIES = {"cnn": {}, "mn01": {}, "passt_s": SMALL, "ast": SMALL}


def _model(arch: str, head: str = "linear", **kwargs) -> audiozoo.AudioModel:
    torch.manual_seed(0)
    return audiozoo.create(
        arch, pretrained=False, head=head, num_classes=3, **{**FAMILIES.get(arch, {}), **kwargs}
    ).eval()


def _noise(n: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, n, generator=torch.Generator().manual_seed(seed)) * 0.1


# --------------------------------------------------------------------------- DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    try:
        for freeze in (True, False):
            torch.manual_seed(0)  # same initial weights on every rank, as DDP requires
            model = audiozoo.create(
                "mn01", head="linear", num_classes=3, freeze=freeze, pretrained=False
            ).train()
            reference = audiozoo.create(
                "mn01", head="linear", num_classes=3, freeze=freeze, pretrained=False
            ).train()
            reference.load_state_dict(model.state_dict())
            ddp = DDP(model)  # find_unused_parameters=False: frozen parts must not trip it
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
            for step in range(2):  # the unused-parameter check fires on the 2nd iteration
                g = torch.Generator().manual_seed(100 * step + rank)  # different data per rank
                wave = torch.randn(2, 8000, generator=g) * 0.1
                target = torch.randint(0, 3, (2,), generator=g)
                opt.zero_grad()
                F.cross_entropy(ddp(wave), target).backward()
                trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
                grads = torch.cat([p.grad.flatten() for _, p in trainable])
                if step == 0:
                    # Independent expectation: the mean of each rank's local (non-DDP) gradient.
                    reference.zero_grad()
                    F.cross_entropy(reference(wave), target).backward()
                    local = torch.cat(
                        [p.grad.flatten() for p in reference.parameters() if p.requires_grad]
                    )
                    locals_ = [torch.empty_like(local) for _ in range(world)]
                    dist.all_gather(locals_, local)
                    gathered = [torch.empty_like(grads) for _ in range(world)]
                    dist.all_gather(gathered, grads)
                    results[freeze] = {
                        "gathered": gathered,
                        "expected": torch.stack(locals_).mean(0),
                        "trainable": [n for n, _ in trainable],
                        "frozen_grads": [
                            n
                            for n, p in model.named_parameters()
                            if not p.requires_grad and p.grad is not None
                        ],
                    }
                opt.step()
    finally:
        dist.destroy_process_group()
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    world = 2
    ctx = mp.start_processes(
        _ddp_worker,
        args=(world, _free_port(), str(tmp_path)),
        nprocs=world,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 300
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish within 300 s")
    for rank in range(world):
        results = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        for freeze, r in results.items():
            a, b = r["gathered"]
            assert torch.equal(a, b), f"gradients differ across ranks (freeze={freeze})"
            torch.testing.assert_close(a, r["expected"], rtol=1e-4, atol=1e-6)
            assert not r["frozen_grads"]
            if freeze:
                assert all(n.startswith("head.") for n in r["trainable"]), r["trainable"]
            else:
                assert any(n.startswith("backbone.") for n in r["trainable"])


# --------------------------------------------------------------------------- torch.compile


def test_compile_matches_eager() -> None:
    model = _model("mn01")
    wave = _noise(16000)
    with torch.no_grad():
        eager = model(wave)
        compiled = torch.compile(model, backend="aot_eager")(wave)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compile_inductor_matches_eager() -> None:
    """The default (inductor) backend, on a small PaSST including a windowed (> 10 s) clip."""
    model = _model("passt_s", "frame")
    wave = _noise(12 * 32000, batch=1)  # two windows, stitched
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(wave), model(wave), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- export


class SpectrogramModel(nn.Module):
    """backbone + head on spectrogram input (what docs/guides/export.md exports)."""

    def __init__(self, model: audiozoo.AudioModel) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(spec))


class WaveformModel(nn.Module):
    """frontend + backbone + head on one window of waveform (no validation, no windowing)."""

    def __init__(self, model: audiozoo.AudioModel) -> None:
        super().__init__()
        self.frontend, self.backbone, self.head = model.frontend, model.backbone, model.head

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.frontend(waveform)))


def _inputs(model: audiozoo.AudioModel) -> tuple[torch.Tensor, torch.Tensor]:
    wave = _noise(model.sample_rate)  # 1 s
    return wave, model.frontend(wave)


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(FAMILIES))
def test_torch_export(arch: str) -> None:
    model = _model(arch)
    wave, spec = _inputs(model)
    for module, x in ((SpectrogramModel(model), spec), (WaveformModel(model), wave)):
        program = torch.export.export(module, (x,))
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), module(x), rtol=1e-5, atol=1e-5)


def _onnx_run(module: nn.Module, x: torch.Tensor, path: Path) -> torch.Tensor:
    ort = pytest.importorskip("onnxruntime", reason="ONNX tests need the export extra")
    pytest.importorskip("onnxscript", reason="ONNX tests need the export extra")
    torch.onnx.export(module, (x,), dynamo=True, verbose=False).save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(FAMILIES))
def test_onnx_spectrogram_input(arch: str, tmp_path: Path) -> None:
    model = _model(arch)
    _, spec = _inputs(model)
    module = SpectrogramModel(model)
    with torch.no_grad():
        torch.testing.assert_close(
            _onnx_run(module, spec, tmp_path / "m.onnx"), module(spec), rtol=1e-4, atol=1e-4
        )


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mn01", "passt_s", "ast", "cnn"])
def test_onnx_waveform_input(arch: str, tmp_path: Path) -> None:
    """stft_mel (torch.stft) and kaldi_fbank (rfft) frontends export with the model."""
    model = _model(arch)
    wave, _ = _inputs(model)
    module = WaveformModel(model)
    with torch.no_grad():
        torch.testing.assert_close(
            _onnx_run(module, wave, tmp_path / "m.onnx"), module(wave), rtol=1e-4, atol=1e-4
        )


# --------------------------------------------------------------------------- autocast


@pytest.mark.parametrize("arch", list(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_frontend_float32(arch: str, dtype: torch.dtype) -> None:
    model = _model(arch)
    wave = _noise(model.sample_rate)
    seen: list[torch.dtype] = []
    model.frontend.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad():
        ref = model(wave)
        with torch.autocast("cpu", dtype=dtype):
            low = model(wave)
    assert seen == [torch.float32, torch.float32]
    assert torch.isfinite(low).all()
    # Relative to the largest logit; measured: bf16 0.2-0.9 %, fp16 0.01-0.15 %.
    err = (low.float() - ref).abs().max() / ref.abs().max()
    assert err < (0.03 if dtype == torch.bfloat16 else 0.005), float(err)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("arch", list(FAMILIES))
def test_eval_is_bit_identical(arch: str) -> None:
    wave = _noise(48000 if arch != "ast" else 24000)
    a, b = _model(arch, "frame"), _model(arch, "frame")
    with torch.no_grad():
        first = a(wave)
        assert torch.equal(first, a(wave))
        assert torch.equal(first, b(wave))  # a second model built with the same seed


def test_augmentation_follows_the_generator() -> None:
    model = _model("mn01", frontend={"freqm": 48, "timem": 20, "augment": True}).train()
    wave = _noise(32000)

    def run(seed: int) -> torch.Tensor:
        model.frontend.generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return model(wave)

    state = torch.get_rng_state()
    first = run(1)
    assert torch.equal(torch.get_rng_state(), state), "augmentation used the global generator"
    assert torch.equal(first, run(1))
    assert not torch.equal(first, run(2))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(wave), model(wave))

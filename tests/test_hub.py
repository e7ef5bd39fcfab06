"""Pretrained weights end to end against a loopback server: download, convert once, cache,
Hub files through huggingface_hub, failures, offline use, concurrent processes."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os

import pytest
import torch
from safetensors.torch import save_file

import audiozoo
from audiozoo import CheckpointError, PretrainedUnavailableError
from audiozoo.download import cache_root, rewrite_url
from tests.conftest import require_fixtures
from tests.hub_server import HubServer

GITHUB = "https://github.com/"
AUDIOSET = list(audiozoo.get_label_set("audioset").names)


def replace_tag(monkeypatch: pytest.MonkeyPatch, name: str, **changes) -> audiozoo.PretrainedCfg:
    """Change the registered configuration of ``arch.tag`` for one test."""
    arch_name, tag = audiozoo.split_model_name(name)
    arch = audiozoo.get_architecture(arch_name)
    cfg = arch.weights[tag].replace(**changes)
    monkeypatch.setattr(arch, "weights", {**arch.weights, tag: cfg})
    return cfg


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """A running loopback server, with audiozoo and huggingface_hub pointed at it."""
    with HubServer() as srv:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("AUDIOZOO_URL_REWRITE", f"{GITHUB}={srv.url}/gh/")
        monkeypatch.setenv("HF_ENDPOINT", f"{srv.url}/hf")
        monkeypatch.setenv("AUDIOZOO_DOWNLOAD_RETRIES", "1")
        monkeypatch.setenv("AUDIOZOO_DOWNLOAD_BACKOFF", "0.01")
        monkeypatch.setenv("AUDIOZOO_DOWNLOAD_TIMEOUT", "20")
        monkeypatch.setenv("AUDIOZOO_NO_PROGRESS", "1")
        yield srv


def release_path(name: str) -> str:
    """The path of a tag's GitHub release URL, as served under /gh/."""
    url = audiozoo.get_pretrained_cfg(name).url
    assert url.startswith(GITHUB)
    return url[len(GITHUB) :]


def cache_files() -> list[str]:
    """Every file in the cache except lock files."""
    root = cache_root()
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".lock")
    )


def assert_no_partial_files() -> None:
    assert not [f for f in cache_files() if f.endswith(".part") or "/." in f]


def fixture_bytes(name: str) -> bytes:
    return require_fixtures("efficientat", name).read_bytes()


# ------------------------------------------------------------------------------ happy path
def test_url_download_converts_once_and_second_create_makes_no_request(server, monkeypatch):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    model = audiozoo.create("mn01.as")
    assert server.count("GET") == 1  # the checkpoint; the labels ship with audiozoo
    # the weights are the fixture's, converted: compare with loading the same file locally
    local = audiozoo.create("mn01.as", pretrained=require_fixtures("efficientat", "mn01_as.pt"))
    for key, value in local.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert model.labels == AUDIOSET
    files = cache_files()
    assert "converted/mn01.as/model.safetensors" in files
    assert "converted/mn01.as/config.json" in files
    assert_no_partial_files()

    # second create: no request, no conversion (only the cached safetensors is read)
    requests = len(server.requests)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr("audiozoo.checkpoints.convert", no_conversion)
    again = audiozoo.create("mn01.as")
    assert len(server.requests) == requests
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)
    assert again.labels == model.labels


def _tiny_ast_cfg(monkeypatch: pytest.MonkeyPatch, **changes):
    """Shrink ast.as (same Hub repo, converter and frontend) so the test serves ~1 MB."""
    cfg = audiozoo.get_pretrained_cfg("ast.as")
    return replace_tag(
        monkeypatch,
        "ast.as",
        backbone_kwargs={
            **cfg.backbone_kwargs,
            "embed_dim": 32,
            "depth": 2,
            "num_heads": 2,
            "input_tdim": 64,
        },
        frontend={**cfg.frontend, "target_frames": 64},
        **changes,
    )


def hf_ast_state_dict(native: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Native AST keys → the key names of transformers' ASTForAudioClassification (written from
    transformers' module names, independently of audiozoo's converter rules)."""
    p = "audio_spectrogram_transformer."
    out = {
        f"{p}embeddings.cls_token": native["backbone.cls_token"],
        f"{p}embeddings.distillation_token": native["backbone.dist_token"],
        f"{p}embeddings.position_embeddings": native["backbone.pos_embed"],
        f"{p}layernorm.weight": native["backbone.norm.weight"],
        f"{p}layernorm.bias": native["backbone.norm.bias"],
        "classifier.layernorm.weight": native["head.norm.weight"],
        "classifier.layernorm.bias": native["head.norm.bias"],
        "classifier.dense.weight": native["head.fc.weight"],
        "classifier.dense.bias": native["head.fc.bias"],
    }
    for s in ("weight", "bias"):
        out[f"{p}embeddings.patch_embeddings.projection.{s}"] = native[
            f"backbone.patch_embed.proj.{s}"
        ]
    for i in range(depth):
        b, layer = f"backbone.blocks.{i}.", f"{p}encoder.layer.{i}."
        for s in ("weight", "bias"):
            q, k, v = native[f"{b}attn.qkv.{s}"].chunk(3, dim=0)
            out[f"{layer}attention.attention.query.{s}"] = q
            out[f"{layer}attention.attention.key.{s}"] = k
            out[f"{layer}attention.attention.value.{s}"] = v
            out[f"{layer}attention.output.dense.{s}"] = native[f"{b}attn.proj.{s}"]
            out[f"{layer}layernorm_before.{s}"] = native[f"{b}norm1.{s}"]
            out[f"{layer}layernorm_after.{s}"] = native[f"{b}norm2.{s}"]
            out[f"{layer}intermediate.dense.{s}"] = native[f"{b}mlp.fc1.{s}"]
            out[f"{layer}output.dense.{s}"] = native[f"{b}mlp.fc2.{s}"]
    return {k: v.contiguous().clone() for k, v in out.items()}


def test_hub_safetensors_through_hf_hub_download(server, monkeypatch, tmp_path):
    cfg = _tiny_ast_cfg(monkeypatch)
    reference = audiozoo.create("ast.as", pretrained=False)
    native = reference.state_dict()
    save_file(hf_ast_state_dict(native, depth=2), str(tmp_path / "model.safetensors"))
    server.hub[(cfg.hf_hub_id, "model.safetensors")] = (tmp_path / "model.safetensors").read_bytes()

    model = audiozoo.create("ast.as")
    for key, value in native.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    # huggingface_hub asked for the file's metadata (HEAD) and then fetched it (GET)
    path = f"/hf/{cfg.hf_hub_id}/resolve/main/model.safetensors"
    assert ("HEAD", path) in server.requests and ("GET", path) in server.requests
    assert model.labels == AUDIOSET
    wave = torch.randn(16000)
    torch.testing.assert_close(model(wave), reference(wave))
    # the Hub file lives in the audiozoo cache (one folder to copy to an offline machine)
    assert any(f.startswith("hub/") for f in cache_files())


def test_audiozoo_hub_repo_wins_over_upstream_url(server, monkeypatch, tmp_path):
    replace_tag(monkeypatch, "mn01.as", audiozoo_hub_id="audiozoo/mn01-as")
    reference = audiozoo.create("mn01.as", pretrained=False)
    reference.save_pretrained(tmp_path)
    server.hub[("audiozoo/mn01-as", "model.safetensors")] = (
        tmp_path / "model.safetensors"
    ).read_bytes()
    model = audiozoo.create("mn01.as")
    assert not [p for _, p in server.requests if p.startswith("/gh/")]
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


# ------------------------------------------------------------------------------ failures
def test_404_is_one_clear_error_and_leaves_nothing(server):
    with pytest.raises(PretrainedUnavailableError, match="HTTP 404") as info:
        audiozoo.create("mn01.as")
    assert "mn01_as_mAP_298.pt" in str(info.value)
    assert server.count("GET") == 1  # a 404 is not retried
    assert cache_files() == []


def test_dropped_connection_is_retried_then_fails_without_partial_file(server):
    path = release_path("mn01.as")
    server.files[path] = fixture_bytes("mn01_as.pt")
    server.drop.add(f"/gh/{path}")
    with pytest.raises(PretrainedUnavailableError, match="closed after") as info:
        audiozoo.create("mn01.as")
    assert "2 attempt(s)" in str(info.value)
    assert server.count("GET") == 2  # AUDIOZOO_DOWNLOAD_RETRIES=1
    assert cache_files() == []


def test_dropped_connection_then_success_on_retry(server, monkeypatch):
    path = release_path("mn01.as")
    server.files[path] = fixture_bytes("mn01_as.pt")
    server.drop.add(f"/gh/{path}")
    original = server._lookup
    calls = []

    def heal(p):  # the second request gets the whole file
        calls.append(p)
        if len(calls) > 1:
            server.drop.clear()
        return original(p)

    monkeypatch.setattr(server, "_lookup", heal)
    model = audiozoo.create("mn01.as")
    gets = [p for m, p in server.requests if m == "GET" and p == f"/gh/{path}"]
    assert len(gets) == 2
    local = audiozoo.create("mn01.as", pretrained=require_fixtures("efficientat", "mn01_as.pt"))
    torch.testing.assert_close(model.state_dict(), local.state_dict(), rtol=0, atol=0)
    assert_no_partial_files()


def test_corrupt_cached_safetensors_is_converted_again(server, caplog):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    first = audiozoo.create("mn01.as")
    weights = cache_root() / "converted" / "mn01.as" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated, as by a full disk
    requests = len(server.requests)
    with caplog.at_level(logging.WARNING, logger="audiozoo"):
        second = audiozoo.create("mn01.as")
    assert "truncated" in caplog.text and str(weights) in caplog.text
    assert len(server.requests) == requests  # the upstream download was still cached
    assert weights.read_bytes() == data
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, rtol=0, atol=0)


def test_corrupt_download_and_converted_file_are_fetched_again(server):
    path = release_path("mn01.as")
    server.files[path] = fixture_bytes("mn01_as.pt")
    audiozoo.create("mn01.as")
    root = cache_root()
    for f in [*root.glob("downloads/*.pt"), root / "converted/mn01.as/model.safetensors"]:
        f.write_bytes(f.read_bytes()[:1000])
    gets = server.count("GET")
    model = audiozoo.create("mn01.as")
    assert server.count("GET") == gets + 1  # the checkpoint, once more
    local = audiozoo.create("mn01.as", pretrained=require_fixtures("efficientat", "mn01_as.pt"))
    for key, value in local.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert_no_partial_files()


def test_wrong_checkpoint_for_the_architecture(server):
    server.files[release_path("mn01.as")] = fixture_bytes("mn10_as.pt")
    with pytest.raises(CheckpointError, match=r"does not fit 'mn01\.as'.*wrong shape"):
        audiozoo.create("mn01.as")
    assert cache_files() == []


def test_offline_with_empty_cache_names_the_fixes():
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set for every test by conftest
    for name in ("mn01.as", "ast.as"):
        with pytest.raises(PretrainedUnavailableError) as info:
            audiozoo.create(name)
        message = str(info.value)
        assert "audiozoo download" in message and "pretrained=PATH" in message
        assert "HF_HUB_OFFLINE" in message
    assert cache_files() == []


def test_offline_after_download_uses_the_cache(server, monkeypatch):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    online = audiozoo.create("mn01.as")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server.files.clear()
    offline = audiozoo.create("mn01.as")
    assert offline.labels == online.labels
    torch.testing.assert_close(offline.state_dict(), online.state_dict(), rtol=0, atol=0)


def _weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every tensor's bytes: equal weights, whatever the process's thread count (a
    float sum would depend on the reduction order)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode() + value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _create_in_subprocess(queue) -> None:
    queue.put(_weights_digest(audiozoo.create("mn01.as")))


@pytest.mark.slow
def test_two_processes_create_the_same_model_at_once(server):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    ctx = multiprocessing.get_context("spawn")  # children read the test's environment
    queue = ctx.Queue()
    procs = [ctx.Process(target=_create_in_subprocess, args=(queue,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    digests = [queue.get(timeout=5) for _ in procs]
    assert digests[0] == digests[1]
    gets = [p for m, p in server.requests if m == "GET" and p.startswith("/gh/")]
    assert len(gets) == 1  # the second process waited for the first one's file
    assert [f for f in cache_files() if f.startswith("downloads/")] != []
    assert_no_partial_files()
    assert _weights_digest(audiozoo.create("mn01.as")) == digests[0]


# ------------------------------------------------------------------------------ settings, labels
def test_url_rewrite_rules(monkeypatch):
    monkeypatch.setenv(
        "AUDIOZOO_URL_REWRITE", "https://a.org/=http://127.0.0.1:1/x/; https://b.org/=http://m/"
    )
    assert rewrite_url("https://a.org/f.pt") == "http://127.0.0.1:1/x/f.pt"
    assert rewrite_url("https://b.org/r/f.pt") == "http://m/r/f.pt"
    assert rewrite_url("https://c.org/f.pt") == "https://c.org/f.pt"
    monkeypatch.setenv("AUDIOZOO_URL_REWRITE", "no-equals-sign")
    with pytest.raises(ValueError, match="PREFIX=REPLACEMENT"):
        rewrite_url("https://a.org/f.pt")


def test_cache_dir_argument_wins_over_environment(server, tmp_path):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    audiozoo.create("mn01.as", cache_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "converted" / "mn01.as" / "model.safetensors").is_file()
    assert cache_files() == []

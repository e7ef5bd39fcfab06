"""Download, cache and checkpoint faults against the loopback server: path revisions, stalled
servers, killed downloads, flipped bytes, pinned hashes, HTML pages instead of checkpoints, bad
settings, unresolvable hosts, huggingface_hub's offline switch, and checkpoints that are not
plain state dicts. Every case ends in one clear error (or a repair), in bounded time, with
nothing half-written left in the cache."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

import audiozoo
from audiozoo import (
    CheckpointError,
    ConfigurationError,
    PretrainedUnavailableError,
    RegistryError,
)
from audiozoo.cli import main as cli_main
from audiozoo.download import cache_root, download_url, hub_download, rewrite_url, verify_cache
from tests.conftest import require_fixtures
from tests.hub_server import COMMIT, HubServer
from tests.parity_report import record_fault
from tests.test_hub import cache_files, fixture_bytes, release_path, replace_tag

REPO = "someone/tiny-mn01"
GITHUB = "https://github.com/"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """A running loopback server, with audiozoo and huggingface_hub pointed at it (small
    timeouts: no test here waits long)."""
    with HubServer() as srv:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("AUDIOZOO_URL_REWRITE", f"{GITHUB}={srv.url}/gh/")
        monkeypatch.setenv("HF_ENDPOINT", f"{srv.url}/hf")
        monkeypatch.setenv("AUDIOZOO_DOWNLOAD_RETRIES", "1")
        monkeypatch.setenv("AUDIOZOO_DOWNLOAD_BACKOFF", "0.01")
        monkeypatch.setenv("AUDIOZOO_DOWNLOAD_TIMEOUT", "5")
        monkeypatch.setenv("AUDIOZOO_NO_PROGRESS", "1")
        yield srv


def weights_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def flip_last_byte(path: Path) -> None:
    """Flip every bit of the file's last byte: for little-endian float32 weights, the sign and
    the high exponent bits of the last value (bit rot that makes a weight huge or NaN)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def serve_format_model(server: HubServer, tmp_path: Path, repo: str = REPO) -> audiozoo.AudioModel:
    """A small audiozoo-format model (random mn01) in the Hub repository ``repo``."""
    model = audiozoo.create("mn01.as", pretrained=False)
    folder = model.save_pretrained(tmp_path / "upload")
    for name in ("config.json", "model.safetensors"):
        server.hub[(repo, name)] = (folder / name).read_bytes()
    return model


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def left_on_disk() -> str:
    """What the cache holds (lock files, huggingface_hub's refs and cache tag aside), for the
    fault table."""
    files = [f for f in cache_files() if "/refs/" not in f and not f.endswith("CACHEDIR.TAG")]
    if not files:
        return "nothing"
    said = []
    complete = [f for f in files if not f.endswith((".part", ".incomplete"))]
    if complete:
        kinds = ", ".join(sorted({f.split("/", 1)[0] for f in complete}))
        said.append(f"{len(complete)} complete file(s) in {kinds}")
    if parts := sum(f.endswith(".part") for f in files):
        said.append(f"{parts} .part")
    if any(f.endswith(".incomplete") for f in files):
        said.append("huggingface_hub's .incomplete file (resumed by the next call)")
    return ", ".join(said)


# ------------------------------------------------------------------------ 1. revisions
BAD_REVISIONS = [
    "../../x",
    "../../../../../../escaped",
    "/abs/path",
    "a/../..",
    "a/..",
    "..",
    ".",
    "a/./b",
    "%2e%2e",
    "%2e%2e/%2e%2e/x",
    "a//b",
    "a/",
    "a\\..\\b",
    "C:x",
    "a\x00b",
    "a\nb",
    "main\x7f",
    "x..",
    ".hidden",
    "a" * 300,
]
GOOD_REVISIONS = ["main", "v1.0", "refs/pr/1", "feature/new-head", "release_2024.05", COMMIT]


@pytest.mark.parametrize("revision", BAD_REVISIONS)
def test_path_like_revisions_are_refused(revision):
    with pytest.raises(RegistryError, match="revision"):
        audiozoo.parse_model_name(f"hf-hub:org/repo@{revision}")
    # the download layer refuses them as well (a caller that skips the name parser)
    with pytest.raises(RegistryError, match="revision"):
        hub_download("org/repo", "config.json", revision=revision)


@pytest.mark.parametrize("revision", GOOD_REVISIONS)
def test_branch_tag_and_commit_revisions_parse(revision):
    assert audiozoo.parse_model_name(f"hf-hub:org/repo@{revision}").revision == revision


def test_create_with_path_revisions_writes_nothing_outside_the_cache(server, tmp_path):
    serve_format_model(server, tmp_path / "src")
    work = tmp_path / "work"
    cache = work / "a" / "b" / "cache"
    for revision in ("../../../../../../../escaped", "%2e%2e/%2e%2e/x", "a/../../../../x"):
        with pytest.raises(RegistryError, match="revision"):
            audiozoo.create(f"hf-hub:{REPO}@{revision}", cache_dir=cache)
    assert server.requests == []
    assert not [p for p in files_under(work) if cache not in p.parents]


def test_valid_revisions_download_inside_the_cache(server, tmp_path):
    reference = serve_format_model(server, tmp_path / "src")
    work = tmp_path / "work"
    cache = work / "cache"
    for revision in ("refs/pr/1", "v1.0", COMMIT):
        model = audiozoo.create(f"hf-hub:{REPO}@{revision}", cache_dir=cache)
        assert_same_weights(weights_of(model), weights_of(reference))
    assert [p for _, p in server.requests if "/resolve/refs%2Fpr%2F1/" in p]
    assert not [p for p in files_under(work) if cache not in p.parents]
    refs = cache / "hub" / f"models--{REPO.replace('/', '--')}" / "refs"
    assert (refs / "refs" / "pr" / "1").is_file() and (refs / "v1.0").is_file()


# ------------------------------------------------------------------------ 3. stalls and locks
def test_dripping_server_fails_within_the_window(server, monkeypatch):
    """1 byte every 0.3 s never trips a 1 s per-read timeout; the minimum speed does."""
    path = release_path("mn01.as")
    server.files[path] = b"x" * 40
    server.drip[f"/gh/{path}"] = (1, 0.3)
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_TIMEOUT", "1")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_RETRIES", "0")
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError, match="AUDIOZOO_DOWNLOAD_MIN_SPEED") as info:
        download_url(audiozoo.get_pretrained_cfg("mn01.as").url)
    seconds = time.monotonic() - start
    record_fault("drip: 1 B every 0.3 s", "TIMEOUT=1 RETRIES=0", seconds, left_on_disk())
    assert seconds < 3
    assert "B in 1 s" in str(info.value)
    assert cache_files() == []


def test_slow_but_steady_download_is_not_cut(server, monkeypatch):
    path = release_path("mn01.as")
    data = os.urandom(3000)
    server.files[path] = data
    server.drip[f"/gh/{path}"] = (500, 0.1)  # 5 kB/s for 0.6 s
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_MIN_SPEED", "1000")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_RETRIES", "0")
    assert download_url(audiozoo.get_pretrained_cfg("mn01.as").url).read_bytes() == data


def test_lock_waiter_says_what_it_waits_for_and_gives_up(server, monkeypatch, caplog):
    url = audiozoo.get_pretrained_cfg("mn01.as").url
    server.files[release_path("mn01.as")] = b"payload"
    monkeypatch.setenv("AUDIOZOO_LOCK_TIMEOUT", "0.5")
    folder = cache_root() / "downloads"
    folder.mkdir(parents=True)
    target = f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-mn01_as_mAP_298.pt"
    holder = FileLock(str(folder / f".{target}.lock"), thread_local=False)
    holder.acquire()
    # a test against a blocking waiter must end: the holder lets go after 3 s in any case
    release = threading.Timer(3, holder.release)
    release.start()
    try:
        start = time.monotonic()
        with (
            caplog.at_level(logging.WARNING, logger="audiozoo"),
            pytest.raises(PretrainedUnavailableError, match="AUDIOZOO_LOCK_TIMEOUT") as info,
        ):
            download_url(url)
        assert time.monotonic() - start < 2
    finally:
        release.cancel()
        if holder.is_locked:
            holder.release()
    assert "waiting for another process" in caplog.text and target in caplog.text
    assert f".{target}.lock" in str(info.value)
    assert server.count("GET") == 0


def test_lock_waiter_proceeds_when_the_holder_finishes(server, monkeypatch, caplog):
    url = audiozoo.get_pretrained_cfg("mn01.as").url
    server.files[release_path("mn01.as")] = b"payload"
    monkeypatch.setenv("AUDIOZOO_LOCK_TIMEOUT", "5")
    first = download_url(url)  # the lock file exists now
    lock = FileLock(str(first.parent / f".{first.name}.lock"), thread_local=False)
    lock.acquire()
    threading.Timer(0.3, lock.release).start()
    with caplog.at_level(logging.WARNING, logger="audiozoo"):
        assert download_url(url, force=True).read_bytes() == b"payload"
    assert "waiting for another process" in caplog.text


# ------------------------------------------------------------------------ 4. killed downloads
def _hub_file(server: HubServer, data: bytes, name: str = "model.safetensors") -> str:
    """Serve ``data`` as ``name`` of the Hub repository REPO; its path on the server."""
    server.hub[(REPO, name)] = data
    return f"/hf/{REPO}/resolve/main/{name}"


def test_dripping_hub_server_fails_within_its_deadline(server, monkeypatch):
    """huggingface_hub bounds each read (10 s) and reads 10 MB chunks: 1 byte every 0.3 s of a
    1 kB file would take 5 minutes. The file gets one window plus its size at the minimum
    speed: 1 s + 1000 B / 1000 B/s."""
    server.drip[_hub_file(server, os.urandom(1000))] = (1, 0.3)
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError, match="AUDIOZOO_DOWNLOAD_MIN_SPEED") as info:
        hub_download(REPO, "model.safetensors")
    seconds = time.monotonic() - start
    record_fault("Hub drip: 1 B every 0.3 s", "TIMEOUT=1", seconds, left_on_disk())
    assert 2 <= seconds < 4
    assert "model.safetensors" in str(info.value) and "its 1000 B did not arrive" in str(info.value)
    # the given-up transfer still holds huggingface_hub's lock: a new call says so at once
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError, match="earlier download of it in this process"):
        hub_download(REPO, "model.safetensors")
    assert time.monotonic() - start < 1


def test_slow_but_steady_hub_download_is_not_cut(server, monkeypatch):
    data = os.urandom(3000)
    server.drip[_hub_file(server, data)] = (500, 0.1)  # 5 kB/s for 0.6 s
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_MIN_SPEED", "1000")  # 0.3 s + 3 s allowed
    assert hub_download(REPO, "model.safetensors").read_bytes() == data


def test_hub_lock_waiter_gives_up(server, monkeypatch):
    """Another process holds huggingface_hub's lock of the file: no data arrives, and the
    wait ends after AUDIOZOO_LOCK_TIMEOUT plus one window instead of never."""
    data = os.urandom(100)
    _hub_file(server, data)
    folder = cache_root() / "hub" / ".locks" / f"models--{REPO.replace('/', '--')}"
    folder.mkdir(parents=True)
    holder = FileLock(str(folder / f"{hashlib.sha256(data).hexdigest()}.lock"), thread_local=False)
    holder.acquire()
    monkeypatch.setenv("AUDIOZOO_LOCK_TIMEOUT", "0.5")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_TIMEOUT", "0.5")
    try:
        start = time.monotonic()
        with pytest.raises(PretrainedUnavailableError, match="AUDIOZOO_LOCK_TIMEOUT"):
            hub_download(REPO, "model.safetensors")
        assert time.monotonic() - start < 3
    finally:
        holder.release()
    # the given-up waiter takes the lock once the holder is gone and fetches the file; until it
    # has, a new call in this process says so at once, then the file is there
    deadline = time.monotonic() + 20
    while True:
        try:
            path = hub_download(REPO, "model.safetensors")
            break
        except PretrainedUnavailableError as exc:
            assert "earlier download of it in this process" in str(exc)
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert path.read_bytes() == data


_CHILD = """
import sys
from audiozoo.download import download_url
download_url(sys.argv[1])
"""


def test_partial_file_of_a_killed_download_is_removed(server, monkeypatch):
    path = release_path("mn01.as")
    data = os.urandom(200_000)
    server.files[path] = data
    server.drip[f"/gh/{path}"] = (2000, 0.05)  # 40 kB/s: 5 s for the whole file
    url = audiozoo.get_pretrained_cfg("mn01.as").url
    src = str(Path(audiozoo.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url], env=env)
    try:
        deadline = time.monotonic() + 20
        parts: list[Path] = []
        while time.monotonic() < deadline and not parts:
            parts = [p for p in cache_root().rglob("*.part") if p.stat().st_size > 0]
            time.sleep(0.05)
        assert parts, "the child never started writing"
    finally:
        child.kill()
        child.wait(timeout=10)
    assert all(p.exists() for p in parts)  # what a kill leaves behind
    server.drip.clear()
    start = time.monotonic()
    assert download_url(url).read_bytes() == data
    record_fault(
        "process killed mid-file (SIGKILL), then the next download",
        "TIMEOUT=5 RETRIES=1",
        time.monotonic() - start,
        f"{left_on_disk()} (the killed .part removed)",
    )
    assert not list(cache_root().rglob("*.part"))


# ------------------------------------------------------------------------ 5. content hashes
def test_flipped_byte_in_the_converted_file_is_converted_again(server, caplog):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    first = weights_of(audiozoo.create("mn01.as"))
    weights = cache_root() / "converted" / "mn01.as" / "model.safetensors"
    flip_last_byte(weights)
    gets = server.count("GET")
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="audiozoo"):
        second = weights_of(audiozoo.create("mn01.as"))
    record_fault(
        "byte flipped in the converted file (repaired: converted again)",
        "TIMEOUT=5 RETRIES=1",
        time.monotonic() - start,
        left_on_disk(),
    )
    assert_same_weights(first, second)
    assert "sha256" in caplog.text and str(weights) in caplog.text
    assert server.count("GET") == gets  # converted again from the cached download


def test_flipped_byte_in_a_download_is_fetched_again(server, caplog):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    first = weights_of(audiozoo.create("mn01.as"))
    (download,) = [p for p in (cache_root() / "downloads").iterdir() if p.suffix == ".pt"]
    flip_last_byte(download)
    discard_converted = cache_root() / "converted" / "mn01.as" / "model.safetensors"
    discard_converted.unlink()
    gets = server.count("GET")
    with caplog.at_level(logging.WARNING, logger="audiozoo"):
        second = weights_of(audiozoo.create("mn01.as"))
    assert server.count("GET") == gets + 1
    assert_same_weights(first, second)
    assert str(download) in caplog.text


def test_flipped_byte_in_a_hub_file_is_fetched_again(server, tmp_path):
    reference = weights_of(serve_format_model(server, tmp_path))
    audiozoo.create(f"hf-hub:{REPO}")
    blobs = list(cache_root().glob("hub/*/blobs/*"))
    assert len(blobs) == 2  # config.json and model.safetensors
    flip_last_byte(max(blobs, key=lambda p: p.stat().st_size))
    gets = server.count("GET")
    assert_same_weights(weights_of(audiozoo.create(f"hf-hub:{REPO}")), reference)
    assert server.count("GET") == gets + 1


def test_pinned_sha256_is_enforced_for_url_files(server, monkeypatch):
    data = fixture_bytes("mn01_as.pt")
    server.files[release_path("mn01.as")] = data
    replace_tag(monkeypatch, "mn01.as", sha256="0" * 64)
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"0{64}") as info:
        audiozoo.create("mn01.as")
    record_fault("pinned sha256 mismatch", "RETRIES=1", time.monotonic() - start, left_on_disk())
    assert hashlib.sha256(data).hexdigest() in str(info.value)
    assert "mn01_as_mAP_298.pt" in str(info.value)
    assert cache_files() == []


def test_pinned_sha256_is_enforced_for_cached_conversions(server, monkeypatch):
    data = fixture_bytes("mn01_as.pt")
    server.files[release_path("mn01.as")] = data
    replace_tag(monkeypatch, "mn01.as", sha256=hashlib.sha256(data).hexdigest())
    audiozoo.create("mn01.as")  # pinned and matching: converted and cached
    replace_tag(monkeypatch, "mn01.as", sha256="f" * 64)  # a new audiozoo pins another file
    with pytest.raises(CheckpointError, match=r"f{64}"):
        audiozoo.create("mn01.as")
    assert not [f for f in cache_files() if f.endswith((".pt", ".safetensors"))]


def test_pinned_sha256_is_enforced_for_hub_files(server, monkeypatch, tmp_path):
    from tests.test_hub import _tiny_ast_cfg, hf_ast_state_dict

    cfg = _tiny_ast_cfg(monkeypatch, sha256="0" * 64)
    native = audiozoo.create("ast.as", pretrained=False).state_dict()
    save_file(hf_ast_state_dict(native, depth=2), str(tmp_path / "model.safetensors"))
    server.hub[(cfg.hf_hub_id, "model.safetensors")] = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match=r"0{64}") as info:
        audiozoo.create("ast.as")
    assert cfg.hf_hub_id in str(info.value)
    assert not [f for f in cache_files() if f.startswith("converted/")]
    assert not [p for p in cache_root().glob("hub/*/blobs/*") if p.stat().st_size > 10_000]


def test_verify_cache_reports_flipped_and_partial_files(server, tmp_path, capsys):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    serve_format_model(server, tmp_path)
    audiozoo.create("mn01.as")
    audiozoo.create(f"hf-hub:{REPO}")
    report = verify_cache()
    assert report.ok and not report.problems
    checked = {e.path.relative_to(cache_root()).parts[0] for e in report.entries}
    assert checked == {"downloads", "converted", "hub"}
    assert all(e.status == "ok" for e in report.entries)
    assert cli_main(["download", "--verify"]) == 0
    assert cli_main(["download"]) == 1  # neither names nor --verify: a clear error

    weights = cache_root() / "converted" / "mn01.as" / "model.safetensors"
    flip_last_byte(weights)
    (weights.parent / ".model.safetensors.abcd1234.part").write_bytes(b"half")
    report = verify_cache()
    assert not report.ok
    assert [e.path for e in report.problems] == [weights]
    assert {e.status for e in report.entries} == {"ok", "corrupt", "partial"}
    capsys.readouterr()
    assert cli_main(["download", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "corrupt" in out and str(Path("converted", "mn01.as", "model.safetensors")) in out
    assert "partial" in out


# ------------------------------------------------------------------------ 10. dtypes
def test_integer_bool_and_complex_weights_are_refused(tmp_path):
    model = audiozoo.create("mn01.as", pretrained=False)
    folder = model.save_pretrained(tmp_path / "m")
    tensors = load_file(str(folder / "model.safetensors"))
    floats = [k for k, v in tensors.items() if v.is_floating_point() and v.dim() == 4]
    bad = {floats[0]: torch.int64, floats[1]: torch.bool, floats[2]: torch.complex64}
    changed = {k: (v.to(bad[k]) if k in bad else v) for k, v in tensors.items()}
    save_file(changed, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="wrong dtype") as info:
        audiozoo.create(f"local-dir:{folder}")
    for key, dtype in bad.items():
        assert key in str(info.value) and str(dtype) in str(info.value)


def test_float16_and_float64_weights_are_cast(tmp_path):
    model = audiozoo.create("mn01.as", pretrained=False)
    folder = model.save_pretrained(tmp_path / "m")
    tensors = load_file(str(folder / "model.safetensors"))
    floats = [k for k, v in tensors.items() if v.is_floating_point()]
    casts = {floats[0]: torch.float16, floats[1]: torch.float64}
    changed = {k: (v.to(casts[k]) if k in casts else v) for k, v in tensors.items()}
    save_file(changed, str(folder / "model.safetensors"))
    loaded = audiozoo.create(f"local-dir:{folder}").state_dict()
    for key in casts:
        torch.testing.assert_close(loaded[key], changed[key].float(), rtol=0, atol=0)


# ------------------------------------------------------------------------ 16. stale conversions
def _rewrite_converted(change) -> Path:
    """Rewrite the converted mn01.as file with ``change(tensors)``, as an older audiozoo would
    have written it (a consistent sha256 record)."""
    weights = cache_root() / "converted" / "mn01.as" / "model.safetensors"
    tensors = change(load_file(str(weights)))
    save_file(tensors, str(weights))
    meta_path = weights.parent / "config.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    meta["size"] = weights.stat().st_size
    meta_path.write_text(json.dumps(meta))
    return weights


def test_stale_converted_file_is_converted_again_once(server, caplog):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    first = weights_of(audiozoo.create("mn01.as"))

    def older_layout(tensors):
        key = next(k for k in tensors if k.startswith("backbone."))
        return {("backbone.old_name" if k == key else k): v for k, v in tensors.items()}

    weights = _rewrite_converted(older_layout)
    gets = server.count("GET")
    with caplog.at_level(logging.WARNING, logger="audiozoo"):
        assert_same_weights(weights_of(audiozoo.create("mn01.as")), first)
    assert str(weights) in caplog.text and "backbone.old_name" in caplog.text
    assert server.count("GET") == gets
    assert "backbone.old_name" not in load_file(str(weights))


def test_stale_conversion_that_cannot_be_redone_names_the_file(server, caplog):
    server.files[release_path("mn01.as")] = fixture_bytes("mn01_as.pt")
    audiozoo.create("mn01.as")
    weights = _rewrite_converted(lambda t: {**t, "backbone.extra": torch.zeros(1)})
    server.files.clear()
    for f in (cache_root() / "downloads").iterdir():
        f.unlink()  # the upstream file is gone from cache and server
    with (
        caplog.at_level(logging.WARNING, logger="audiozoo"),
        pytest.raises(PretrainedUnavailableError, match="HTTP 404") as info,
    ):
        audiozoo.create("mn01.as")
    assert str(weights) in str(info.value) and "backbone.extra" in caplog.text


def test_checkpoint_that_does_not_fit_names_the_file(tmp_path):
    path = tmp_path / "wrong.safetensors"
    save_file({"backbone.nothing": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="does not fit") as info:
        audiozoo.create("mn01.as", pretrained=path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------ 18. odd pickles
def _torch_file_with_pickle(path: Path, pickle_bytes: bytes) -> Path:
    """A torch zip checkpoint whose ``data.pkl`` is ``pickle_bytes`` (built by hand: such a
    structure cannot be written by torch.save)."""
    buf = io.BytesIO()
    torch.save({"x": 1}, buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, pickle_bytes if item.filename.endswith("/data.pkl") else data)
    return path


def _deep_pickle(levels: int) -> bytes:
    """{"model": {"model": ... {}}} nested ``levels`` deep, as pickle opcodes."""
    key = b"X" + struct.pack("<I", 5) + b"model"  # BINUNICODE 'model'
    return b"\x80\x02" + (b"}" + key) * levels + b"}" + b"s" * levels + b"."


def test_self_containing_checkpoint_is_a_checkpoint_error(tmp_path):
    d: dict = {"w": torch.zeros(2)}
    d["model"] = d
    torch.save(d, tmp_path / "self.pt")
    with pytest.raises(CheckpointError, match="contains itself"):
        audiozoo.create("mn01.as", pretrained=tmp_path / "self.pt")


def test_deeply_nested_checkpoint_is_a_checkpoint_error(tmp_path):
    path = _torch_file_with_pickle(tmp_path / "deep.pt", _deep_pickle(100_000))
    with pytest.raises(CheckpointError, match="nests deeper"):
        audiozoo.create("mn01.as", pretrained=path)


def test_non_string_keys_are_a_checkpoint_error(tmp_path):
    torch.save({0: torch.zeros(2), "b": torch.zeros(1)}, tmp_path / "intkeys.pt")
    with pytest.raises(CheckpointError, match="non-string keys"):
        audiozoo.create("mn01.as", pretrained=tmp_path / "intkeys.pt")
    # non-string keys away from the tensors (an optimizer state) are fine
    upstream = torch.load(require_fixtures("efficientat", "mn01_as.pt"), weights_only=True)
    torch.save({"model": upstream, "optimizer": {"state": {0: {"step": 3}}}}, tmp_path / "ok.pt")
    audiozoo.create("mn01.as", pretrained=tmp_path / "ok.pt")


# ------------------------------------------------------------------------ 19. what came back
HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>" + b"x" * 1100


def test_html_page_instead_of_a_checkpoint(server):
    path = release_path("mn01.as")
    server.files[path] = HTML
    server.headers[f"/gh/{path}"] = {"Content-Type": "text/html; charset=utf-8"}
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError) as info:
        audiozoo.create("mn01.as")
    record_fault("HTML page with status 200", "RETRIES=1", time.monotonic() - start, left_on_disk())
    message = str(info.value)
    assert "an HTML page (text/html; charset=utf-8, 1.2 kB) starting with '<!DOCTYPE html>" in (
        message
    )
    assert f"/gh/{path}" in message and "mn01_as_mAP_298.pt" in message
    assert "weights_only" not in message
    assert server.count("GET") == 1  # an answer, not a network failure: not retried
    assert cache_files() == []


def test_short_body_names_the_url_and_what_was_received(server):
    path = release_path("mn01.as")
    server.files[path] = fixture_bytes("mn01_as.pt")[:100]
    with pytest.raises(CheckpointError) as info:
        audiozoo.create("mn01.as")
    message = str(info.value)
    assert GITHUB + path in message and "100 B" in message and "zip archive" in message
    assert str(cache_root()) not in message  # no path of a file that is gone
    assert "weights_only=False" not in message
    assert cache_files() == []


def test_gzip_encoded_body_is_decoded(server):
    path = release_path("mn01.as")
    data = fixture_bytes("mn01_as.pt")
    server.files[path] = gzip.compress(data)
    server.headers[f"/gh/{path}"] = {"Content-Encoding": "gzip"}
    model = audiozoo.create("mn01.as")
    (download,) = [p for p in (cache_root() / "downloads").iterdir() if p.suffix == ".pt"]
    assert download.read_bytes() == data
    local = audiozoo.create("mn01.as", pretrained=download)
    assert_same_weights(weights_of(model), weights_of(local))


def test_local_file_errors_never_suggest_unsafe_loading(tmp_path):
    torch.save({"w": np.float64(1.0)}, tmp_path / "numpy.pt")
    (tmp_path / "page.pt").write_bytes(HTML)
    for name, says in (("numpy.pt", "numpy"), ("page.pt", "an HTML page")):
        with pytest.raises(CheckpointError) as info:
            audiozoo.create("mn01.as", pretrained=tmp_path / name)
        message = str(info.value)
        assert says in message and str(tmp_path / name) in message
        assert "weights_only=False" not in message and "`False`" not in message
        assert "add_safe_globals" not in message


# ------------------------------------------------------------------------ 20. settings
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUDIOZOO_DOWNLOAD_RETRIES", "-1"),
        ("AUDIOZOO_DOWNLOAD_RETRIES", "1.5"),
        ("AUDIOZOO_DOWNLOAD_RETRIES", "many"),
        ("AUDIOZOO_DOWNLOAD_TIMEOUT", "0"),
        ("AUDIOZOO_DOWNLOAD_TIMEOUT", "-5"),
        ("AUDIOZOO_DOWNLOAD_TIMEOUT", "nan"),
        ("AUDIOZOO_DOWNLOAD_TIMEOUT", "inf"),
        ("AUDIOZOO_DOWNLOAD_BACKOFF", "-1"),
        ("AUDIOZOO_DOWNLOAD_BACKOFF", "nan"),
        ("AUDIOZOO_DOWNLOAD_BACKOFF", "inf"),
        ("AUDIOZOO_DOWNLOAD_MIN_SPEED", "-1"),
        ("AUDIOZOO_DOWNLOAD_MIN_SPEED", "nan"),
        ("AUDIOZOO_LOCK_TIMEOUT", "0"),
        ("AUDIOZOO_LOCK_TIMEOUT", "inf"),
    ],
)
def test_invalid_download_settings_are_named(monkeypatch, name, value):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        download_url("http://127.0.0.1:9/never-contacted.pt")
    assert f"{name}={value!r}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_cache_folder_that_is_a_file(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for where in (tmp_path / "file", tmp_path / "file" / "below"):
        monkeypatch.setenv("AUDIOZOO_CACHE", str(where))
        with pytest.raises(ConfigurationError, match="AUDIOZOO_CACHE") as info:
            audiozoo.create("mn01.as")
        assert str(tmp_path / "file") in str(info.value)
    with pytest.raises(ConfigurationError, match="cache_dir"):
        audiozoo.create("mn01.as", cache_dir=tmp_path / "file")


@pytest.mark.parametrize(
    "rules",
    ["https://github.com/=", "https://github.com/=ftp://mirror/", "=http://x/", "no-equals"],
)
def test_invalid_url_rewrite_rules_are_named(monkeypatch, rules):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("AUDIOZOO_URL_REWRITE", rules)
    with pytest.raises(ConfigurationError, match="AUDIOZOO_URL_REWRITE"):
        audiozoo.create("mn01.as")


# ------------------------------------------------------------------------ 21. unresolvable hosts
def test_unresolvable_host_fails_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_RETRIES", "3")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_BACKOFF", "1")
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError, match=r"nothing\.invalid") as info:
        download_url("https://nothing.invalid/weights.pt")
    seconds = time.monotonic() - start
    record_fault("unresolvable host", "RETRIES=3 BACKOFF=1", seconds, left_on_disk())
    assert seconds < 1
    assert "resolve" in str(info.value) and "audiozoo download" in str(info.value)
    assert cache_files() == []


def test_unresolvable_hub_endpoint_fails_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://nothing.invalid")
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError, match=r"nothing\.invalid"):
        audiozoo.create(f"hf-hub:{REPO}")
    assert time.monotonic() - start < 2


# ------------------------------------------------------------------------ 25. offline switch
def test_hub_offline_constant_set_by_the_user_is_honoured_and_kept(server, monkeypatch, tmp_path):
    from huggingface_hub import constants

    serve_format_model(server, tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedUnavailableError, match="HF_HUB_OFFLINE"):
        audiozoo.create(f"hf-hub:{REPO}")
    assert constants.HF_HUB_OFFLINE is True
    assert server.requests == []


def test_offline_environment_does_not_change_huggingface_hub(server, monkeypatch, tmp_path):
    from huggingface_hub import constants

    serve_format_model(server, tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedUnavailableError, match="HF_HUB_OFFLINE"):
        audiozoo.create(f"hf-hub:{REPO}")
    assert constants.HF_HUB_OFFLINE is False
    assert server.requests == []


def test_missing_file_of_a_local_mirror_fails_at_once(monkeypatch, tmp_path):
    """A ``file://`` rewrite to a folder without the file: not a network error, not retried."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("AUDIOZOO_URL_REWRITE", f"{GITHUB}=file://{tmp_path}/")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_RETRIES", "3")
    monkeypatch.setenv("AUDIOZOO_DOWNLOAD_BACKOFF", "1")
    start = time.monotonic()
    with pytest.raises(PretrainedUnavailableError, match="No such file") as info:
        download_url(audiozoo.get_pretrained_cfg("mn01.as").url)
    assert time.monotonic() - start < 1
    assert f"file://{tmp_path}/" in str(info.value)
    assert cache_files() == []


def test_rewrite_prefix_may_hold_an_equals_sign(monkeypatch):
    url = "https://zenodo.org/records/1/files/x.pt?download=1"
    monkeypatch.setenv("AUDIOZOO_URL_REWRITE", f"{url}=file:///mirror/x.pt")
    assert rewrite_url(url) == "file:///mirror/x.pt"
    monkeypatch.setenv("AUDIOZOO_URL_REWRITE", "https://zenodo.org/=https://mirror.org/z/")
    assert rewrite_url(url) == "https://mirror.org/z/records/1/files/x.pt?download=1"

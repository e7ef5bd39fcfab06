"""Hostile and malformed configurations (issue 16): a config.json that asks for gigabytes, holds
NaN or is nested 100000 deep; wrong types in create() and in the parts' constructors; labels that
do not fit the head; plugins imported by two threads at once; the command line's per-file errors.

Each fault must end in one clear audiozoo error that names the argument or field (or, for a batch
of files, one line per bad file), quickly and without allocating what the config asked for.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import re
import resource
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch

import audiozoo
from audiozoo import CheckpointError, RegistryError
from audiozoo.cli import main
from audiozoo.format import validate_config
from audiozoo.frontends import KaldiFbank, MelSpectrogram, StftMel
from audiozoo.heads import FrameHead, LinearHead, MLPHead, SEDHead
from tests.test_registry import PLUGIN, _make_distribution

SRC = Path(audiozoo.__file__).resolve().parents[1]
TINY_PASST = {"embed_dim": 32, "depth": 2, "num_heads": 2, "input_tdim": 100}


# ------------------------------------------------------------------------------ helpers
def save(folder: Path, name: str = "mn01", **kwargs: Any) -> Path:
    torch.manual_seed(0)
    audiozoo.create(name, pretrained=False, **kwargs).save_pretrained(folder)
    return folder


def edit(folder: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def mn01(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random mn01 in audiozoo format (linear head, 5 classes, labels)."""
    folder = tmp_path_factory.mktemp("mn01")
    torch.manual_seed(0)
    model = audiozoo.create("mn01", pretrained=False, head="linear", num_classes=5)
    model.labels = ["a", "b", "c", "d", "e"]
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def saved(mn01: Path, tmp_path: Path) -> Path:
    """A copy of ``mn01`` that a test may edit."""
    folder = tmp_path / "saved"
    folder.mkdir()
    for item in mn01.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    return folder


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


@contextlib.contextmanager
def small_memory(extra: int = 2 << 30) -> Iterator[None]:
    """Any allocation beyond ``extra`` bytes of new address space fails inside the block
    (Linux); without a refusal up front, the hostile configs below would hit that limit."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space limit is read from /proc (Linux)")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + extra
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def quickly(seconds: float = 2.0) -> Iterator[None]:
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < seconds


# ------------------------------------------------------------------------------ item 2: sizes
@pytest.mark.parametrize("pretrained", [True, False], ids=["weights", "pretrained_false"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: (c["head"].update(num_classes=10**8), c.update(labels=None)), "num_classes"),
        (lambda c: c.update(head={"name": "mlp", "num_classes": 5, "hidden": 10**8}), "mlp"),
    ],
    ids=["num_classes", "mlp_width"],
)
def test_a_huge_head_in_config_json_is_refused_before_it_is_allocated(
    saved, change, message, pretrained
):
    edit(saved, change)
    with small_memory(), quickly(), pytest.raises(CheckpointError, match=message) as err:
        audiozoo.create(f"local-dir:{saved}", pretrained=pretrained)
    assert "config.json" in str(err.value) and "weights" in str(err.value)


@pytest.mark.parametrize("pretrained", [True, False], ids=["weights", "pretrained_false"])
@pytest.mark.parametrize("change", [{"embed_dim": 10**5}, {"depth": 10**6}], ids=str)
def test_a_huge_backbone_in_config_json_is_refused_before_it_is_allocated(
    tmp_path, change, pretrained
):
    folder = edit(
        save(tmp_path / "p", "passt_s", **TINY_PASST), lambda c: c["backbone_kwargs"].update(change)
    )
    with small_memory(), quickly(10.0), pytest.raises(CheckpointError, match="larger than"):
        audiozoo.create(f"local-dir:{folder}", pretrained=pretrained)


def test_a_backbone_that_does_not_fit_its_weights_names_the_backbone_kwargs(tmp_path):
    folder = save(tmp_path / "p", "passt_s", **TINY_PASST)
    edit(folder, lambda c: c["backbone_kwargs"].update(embed_dim=48))
    with pytest.raises(CheckpointError, match=r"backbone_kwargs.*embed_dim.*does not match"):
        audiozoo.create(f"local-dir:{folder}")
    # without weights to load, a config edited on purpose (a wider model) still builds
    model = audiozoo.create(f"local-dir:{folder}", pretrained=False)
    assert model.num_features == 48


def test_pretrained_false_builds_an_edited_head_of_a_sane_size(saved):
    edit(saved, lambda c: (c["head"].update(num_classes=7), c.update(labels=None)))
    model = audiozoo.create(f"local-dir:{saved}", pretrained=False)
    assert model(torch.zeros(32000)).shape == (7,)
    with pytest.raises(CheckpointError, match="does not match its weights"):
        audiozoo.create(f"local-dir:{saved}")  # the weights hold 5 classes


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: StftMel(n_fft=2**30), "n_fft"),
        (lambda: StftMel(n_mels=10**6), "filterbank"),
        (lambda: MelSpectrogram(n_fft=2**30, win_length=400), "n_fft"),
        (lambda: MelSpectrogram(n_mels=10**5, n_fft=4096), "filterbank"),
        (lambda: KaldiFbank(frame_length_ms=1e9), "n_fft"),
        (lambda: KaldiFbank(target_frames=10**9), "target_frames"),
    ],
    ids=["stft_n_fft", "stft_n_mels", "mel_n_fft", "mel_n_mels", "kaldi_frame", "kaldi_target"],
)
def test_frontend_sizes_are_bounded_before_any_buffer_is_built(build, message):
    with small_memory(), quickly(), pytest.raises(RegistryError, match=message):
        build()


def test_a_huge_frontend_in_config_json_is_refused(saved):
    edit(saved, lambda c: c["frontend"].update(n_fft=2**30))
    with small_memory(), quickly(), pytest.raises(RegistryError, match=r"stft_mel.*n_fft") as err:
        audiozoo.create(f"local-dir:{saved}")
    assert "config.json" in str(err.value)


def test_the_allocation_budget_fits_every_family_and_changes_no_weight():
    """Building under the budget draws the same random weights, and no family's constructor
    allocates much more than its weights (the budget allows twice that, plus a slack)."""
    from audiozoo._budget import AllocationBudget

    families = {}
    for arch in audiozoo.list_models():
        families.setdefault(audiozoo.get_architecture(arch).family, arch)
    for arch in families.values():
        spec = audiozoo.get_architecture(arch)
        kwargs = {**spec.cfg(None).backbone_kwargs, **spec.test_kwargs}
        torch.manual_seed(0)
        plain = spec.builder(**kwargs).state_dict()
        size = sum(v.numel() for v in plain.values())
        torch.manual_seed(0)
        with AllocationBudget(2 * size, str) as budget:
            watched = spec.builder(**kwargs).state_dict()
        assert budget.used <= 1.5 * size + 1024, (arch, budget.used, size)
        assert all(torch.equal(plain[k], watched[k]) for k in plain), arch


# ------------------------------------------------------------------------------ items 9, 18
@pytest.mark.parametrize(
    ("old", "new", "field", "shown"),
    [
        ('"log_eps": 1e-05', '"log_eps": NaN', "frontend.log_eps", "NaN"),
        ('"norm_eps": 1e-05', '"norm_eps": Infinity', "head.norm_eps", "Infinity"),
        ('"fmin": 0.0', '"fmin": -Infinity', "frontend.fmin", "-Infinity"),
        ('"norm_eps": 1e-05', '"norm_eps": 1e999', "head.norm_eps", "1e999"),
    ],
)
def test_non_finite_numbers_in_config_json_are_refused_by_field(saved, old, new, field, shown):
    path = saved / "config.json"
    text = json.dumps(json.loads(path.read_text()))
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(RegistryError, match=rf"{field} is {shown}"):
        audiozoo.create(f"local-dir:{saved}")


def test_a_deeply_nested_config_json_is_a_registry_error(saved):
    path = saved / "config.json"
    path.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    with quickly(), pytest.raises(RegistryError, match="nested too deeply"):
        audiozoo.create(f"local-dir:{saved}")


def test_nesting_within_the_parser_limit_is_refused_with_the_field(saved):
    nested = json.loads("[" * 500 + "]" * 500)
    edit(saved, lambda c: c["backbone_kwargs"].update(x=nested))
    with pytest.raises(RegistryError, match=r"backbone_kwargs\.x\[0\].* nested more than"):
        audiozoo.create(f"local-dir:{saved}")


def test_non_string_keys_and_non_json_values_are_refused(mn01):
    config = json.loads((mn01 / "config.json").read_text())
    bad = copy.deepcopy(config)
    bad["backbone_kwargs"] = {1: 2}
    with pytest.raises(RegistryError, match="backbone_kwargs has a key 1"):
        validate_config(bad)
    bad = copy.deepcopy(config)
    bad["frontend"]["n_fft"] = np.float32(1024)
    with pytest.raises(RegistryError, match=r"frontend\.n_fft is a float32"):
        validate_config(bad)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["head"].update(num_classes="5"), "head.num_classes must be a positive"),
        (lambda c: c["head"].update(num_classes=True), "head.num_classes must be a positive"),
        (lambda c: c["head"].update(num_classes=0), "head.num_classes must be a positive"),
        (lambda c: c["head"].update(num_classes=5.0), "head.num_classes must be a positive"),
        (lambda c: c["head"].update(norm="yes"), "norm must be true or false"),
        (lambda c: c["head"].update(norm_eps="x"), "norm_eps must be a number"),
        (lambda c: c["frontend"].update(hop_length=1.5), "hop_length must be an integer"),
        (lambda c: c["frontend"].update(sample_rate=32000.5), "sample_rate must be an integer"),
        (lambda c: c["frontend"].update(n_mels="128"), "n_mels must be an integer"),
        (lambda c: c["frontend"].update(n_fft=None), "n_fft must be an integer"),
        (lambda c: c["frontend"].update(augment=1), "augment must be true or false"),
        (lambda c: c["frontend"].update(fmin=[1]), "fmin must be a number"),
        (lambda c: c.update(format_version=True), "format_version True is not supported"),
        (lambda c: c.update(pretrained_cfg=[]), "'pretrained_cfg' must be an object"),
        (lambda c: c.update(backbone_kwargs=[]), "'backbone_kwargs' must be an object"),
    ],
)
def test_wrong_types_in_config_json_name_the_field(saved, change, message):
    edit(saved, change)
    with pytest.raises(RegistryError, match=message):
        audiozoo.create(f"local-dir:{saved}")


# ------------------------------------------------------------------------------ item 23
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pretrained": None}, "pretrained= must be"),
        ({"pretrained": 0}, "pretrained= must be"),
        ({"pretrained": ""}, "pretrained= must be"),
        ({"num_classes": True}, "num_classes must be a positive integer, got True"),
        ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"head": "linear", "num_classes": -1}, "num_classes must be a positive integer"),
        ({"head": "linear", "num_classes": 2.0}, "num_classes must be a positive integer"),
        ({"head": 5}, "head= must be"),
        ({"freeze": 1.5}, "freeze=.*: pass True"),
        ({"freeze": "3"}, "freeze=.*: pass True"),
        ({"freeze": None}, "freeze=.*: pass True"),
        ({"freeze": -1}, "freeze=.*: pass True"),
        ({"frontend": 5}, "frontend= must be"),
        ({"frontend": {"hop_length": 1.5}}, r"stft_mel.*hop_length must be an integer"),
        ({"frontend": {"sample_rate": 32000.5}}, r"sample_rate must be an integer"),
        ({"frontend": {"n_mels": "128"}}, r"n_mels must be an integer"),
        ({"frontend": {"n_fft": True}}, r"n_fft must be an integer, got True"),
        ({"cache_dir": 5}, "cache_dir= must be"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_create_checks_its_arguments_at_the_boundary(kwargs, message):
    kwargs = {"pretrained": False, **kwargs}
    with pytest.raises(RegistryError, match=message):
        audiozoo.create("mn01", **kwargs)


def test_create_of_a_non_string_name_is_a_registry_error():
    with pytest.raises(RegistryError, match="non-empty string"):
        audiozoo.create(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LinearHead(8, True), "num_classes must be an integer, got True"),
        (lambda: LinearHead(8, 0), "num_classes must be an integer >= 1"),
        (lambda: FrameHead(8, None), "num_classes is required"),
        (lambda: MLPHead(8, 2, hidden=2.5), "hidden must be an integer"),
        (lambda: SEDHead(8, 2, seq_len=1.5), "seq_len must be an integer"),
        (lambda: LinearHead(8.0, 2), "num_features must be an integer"),
        (lambda: StftMel(hop_length=True), "hop_length must be an integer, got True"),
        (lambda: MelSpectrogram(center="no"), "center must be true or false"),
        (lambda: KaldiFbank(std=float("nan")), "std must be a finite number"),
    ],
    ids=lambda v: "" if callable(v) else v[:30],
)
def test_constructors_check_their_own_arguments(build, message):
    with pytest.raises(RegistryError, match=message):
        build()


# ------------------------------------------------------------------------------ item 11
def test_nothing_a_model_hands_out_changes_later_models():
    first = audiozoo.create("mn10.as_fc_s2221", pretrained=False)  # nested strides in its kwargs
    reference = first.pretrained_cfg.to_dict()
    cfg = first.pretrained_cfg
    for mapping in (cfg.frontend, cfg.head, cfg.backbone_kwargs, cfg.metrics):
        with pytest.raises(TypeError, match="read-only"):
            mapping["x"] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match="read-only"):
        cfg.frontend.update(n_mels=64)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        cfg.tag = "other"  # type: ignore[misc]
    # every copy handed out is the caller's own
    first.backbone_kwargs["strides"] = "changed"
    first.backbone_kwargs["new"] = 1
    first.labels.append("extra")
    cfg.head_config()["num_classes"] = 3
    cfg.to_dict()["frontend"]["n_mels"] = 3
    copy.deepcopy(cfg).to_dict()["head"]["name"] = "x"
    pickle.loads(pickle.dumps(cfg)).to_dict()["frontend"]["n_mels"] = 3
    first.frontend.config()["n_mels"] = 3
    first.config()["frontend"]["n_mels"] = 3
    strides = cfg.backbone_kwargs["strides"]
    assert isinstance(strides, tuple)  # frozen: a list in a shared config would be mutable
    second = audiozoo.create("mn10.as_fc_s2221", pretrained=False)
    assert second.pretrained_cfg.to_dict() == reference
    assert second.backbone_kwargs == dict(reference["backbone_kwargs"])
    assert second.labels == list(audiozoo.get_label_set("audioset").names)
    assert second.frontend.n_mels == 128 and second.head.num_classes == 527


# ------------------------------------------------------------------------------ item 14
# The plugin module signals that its import started, then takes a second to finish it.
SLOW_PLUGIN = "import time\nfrom azsignal import started\nstarted.set()\ntime.sleep(1.0)\n" + PLUGIN


def test_plugins_load_once_for_all_threads(tmp_path):
    """One thread triggers the (slow) plugin import; another creates the plugin's model while it
    runs. The second must wait for the import, not see a half-filled registry."""
    _make_distribution(tmp_path, "azslow", "[audiozoo.plugins]\nslow = azslow\n", SLOW_PLUGIN)
    (tmp_path / "azsignal.py").write_text("import threading\nstarted = threading.Event()\n")
    script = textwrap.dedent(
        """
        import threading
        import audiozoo
        from azsignal import started
        errors = []
        first = threading.Thread(target=lambda: audiozoo.list_models())
        def second():
            try:
                audiozoo.create("plugin_cnn", pretrained=False)
            except Exception as exc:
                errors.append(repr(exc))
        first.start()
        assert started.wait(30)
        other = threading.Thread(target=second)
        other.start()
        first.join(); other.join()
        assert not errors, errors
        print("ok")
        """
    )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(SRC)]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------------ item 15
def test_labels_must_fit_the_head(saved, tmp_path):
    edit(saved, lambda c: c.update(labels=["a", "b"]))
    with pytest.raises(RegistryError, match=r"'labels' has 2 names but head\.num_classes is 5"):
        audiozoo.create(f"local-dir:{saved}")
    edit(saved, lambda c: c.update(head={"name": "identity"}))
    with pytest.raises(RegistryError, match="'labels' must be null"):
        audiozoo.create(f"local-dir:{saved}", pretrained=False)
    model = audiozoo.create("mn01", pretrained=False, head="linear", num_classes=3)
    model.labels = ["a", "b"]
    with pytest.raises(RegistryError, match=r"model\.labels has 2 names but the head has 3"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tag_refuses_labels_that_do_not_fit_instead_of_an_index_error(
    mn01, tmp_path, capsys, monkeypatch
):
    model = audiozoo.create(f"local-dir:{mn01}")
    model.labels = ["only one"]
    monkeypatch.setattr(audiozoo, "create", lambda *a, **k: model)
    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(8000, np.float32), 32000)
    assert main(["tag", str(wav), "--model", f"local-dir:{mn01}"]) == 1
    assert "1 labels for 5 outputs" in capsys.readouterr().err


# ------------------------------------------------------------------------------ item 22
@pytest.fixture
def batch(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    files = {}
    for name in ("a", "b"):
        files[name] = str(tmp_path / f"{name}.wav")
        soundfile.write(files[name], 0.1 * rng.standard_normal(16000).astype(np.float32), 32000)
    files["empty"] = str(tmp_path / "empty.wav")
    soundfile.write(files["empty"], np.zeros(0, np.float32), 32000)
    files["nan"] = str(tmp_path / "nan.wav")
    noisy = 0.1 * rng.standard_normal(16000).astype(np.float32)
    noisy[100] = np.nan
    soundfile.write(files["nan"], noisy, 32000, subtype="FLOAT")
    files["missing"] = str(tmp_path / "missing.wav")
    return files


def _errors(text: str) -> dict[str, str]:
    """The lines of ``text`` that name one of the files, by file."""
    found = {}
    for line in text.splitlines():
        for name in ("a", "b", "empty", "nan", "missing", "denied"):
            if re.search(rf"(^|[/\s]){name}\.wav", line):
                found[name] = line
    return found


def test_tag_reports_each_bad_file_and_tags_the_others(mn01, batch, capsys):
    order = ["a", "empty", "nan", "missing", "b"]
    status = main(["tag", *(batch[k] for k in order), "--model", f"local-dir:{mn01}", "--json"])
    out, err = capsys.readouterr()
    assert status == 1
    assert list(json.loads(out)) == [batch["a"], batch["b"]]
    lines = _errors(err)
    assert set(lines) == {"empty", "nan", "missing"}
    assert all(line.startswith("audiozoo tag: error: ") for line in lines.values())
    assert "no samples" in lines["empty"]
    assert "NaN" in lines["nan"]
    assert "no such file" in lines["missing"] and "System error" not in err
    assert "3 of 5 files failed" in err


def test_tag_says_permission_denied(mn01, batch, capsys, monkeypatch):
    """(Run as root the OS would grant the read, so both readers are made to refuse it.)"""
    denied = str(Path(batch["a"]).with_name("denied.wav"))
    Path(denied).write_bytes(Path(batch["a"]).read_bytes())
    real_open, real_sound = open, soundfile.SoundFile

    def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def fake_sound(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == denied:
            raise soundfile.LibsndfileError(2, f"Error opening {path!r}: ")
        return real_sound(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(soundfile, "SoundFile", fake_sound)
    assert main(["tag", denied, batch["b"], "--model", f"local-dir:{mn01}"]) == 1
    out, err = capsys.readouterr()
    assert batch["b"] in out
    assert "permission denied" in _errors(err)["denied"]


def test_tag_events_reports_each_bad_file(tmp_path, batch, capsys):
    folder = save(tmp_path / "frame", "mn01", head="frame", num_classes=3)
    files = [batch[k] for k in ("a", "empty", "missing", "b")]
    status = main(["tag", *files, "--model", f"local-dir:{folder}", "--events", "--json"])
    out, err = capsys.readouterr()
    assert status == 1 and list(json.loads(out)) == [batch["a"], batch["b"]]
    lines = _errors(err)
    assert "no samples" in lines["empty"] and "no such file" in lines["missing"]


def test_embed_records_each_bad_file_with_its_reason(mn01, batch, tmp_path, capsys):
    files = [batch[k] for k in ("a", "empty", "nan", "missing", "b")]
    argv = ["embed", *files, "-o", str(tmp_path / "emb"), "--model", f"local-dir:{mn01}"]
    assert main([*argv, "--workers", "0", "--no-progress", "--no-optimize"]) == 0
    lines = _errors(capsys.readouterr().out)
    assert "no samples" in lines["empty"] and "NaN" in lines["nan"]
    assert "No such file" in lines["missing"] and "System error" not in lines["missing"]


@pytest.mark.parametrize(
    "option",
    [["--top", "-1"], ["--top-k", "0"], ["--threshold", "2"], ["--median", "nan"]],
    ids=" ".join,
)
def test_invalid_tag_options_are_usage_errors(mn01, batch, capsys, option):
    with pytest.raises(SystemExit) as exit_:
        main(["tag", batch["a"], "--model", f"local-dir:{mn01}", *option])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and option[0].lstrip("-").split("-")[0] in err
    assert "Traceback" not in err

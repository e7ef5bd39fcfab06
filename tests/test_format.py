"""The audiozoo format: save_pretrained -> create("local-dir:"/"hf-hub:") rebuilds the identical
model; config.json is validated and can only name registered parts; push_to_hub's upload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi

import audiozoo
from audiozoo import RegistryError
from audiozoo.format import model_card, read_config
from tests.hub_server import HubServer

SMALL_TRANSFORMER = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def build(name: str, **kwargs) -> audiozoo.AudioModel:
    torch.manual_seed(0)
    model = audiozoo.create(name, pretrained=False, **kwargs)
    # random BatchNorm statistics, so that a load that skipped buffers would show
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def assert_same_model(a: audiozoo.AudioModel, b: audiozoo.AudioModel, seconds: float) -> None:
    assert type(a.frontend) is type(b.frontend) and type(a.backbone) is type(b.backbone)
    assert type(a.head) is type(b.head)
    assert a.frontend.config() == b.frontend.config()
    assert a.config() == b.config()
    assert a.state_dict().keys() == b.state_dict().keys()
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value, rtol=0, atol=0)
    wave = torch.randn(
        2, round(seconds * a.sample_rate), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        torch.testing.assert_close(b(wave), a(wave), rtol=0, atol=0)


FAMILIES = [
    ("mn01", {}, 1.0),
    ("cnn", {}, 1.0),
    ("passt_s", {**SMALL_TRANSFORMER, "input_tdim": 100}, 1.0),
    ("ast", {**SMALL_TRANSFORMER, "input_tdim": 64}, 0.5),
    ("mn10.as_fc_s2221", {}, 1.0),  # conv head, non-default strides stored as a JSON list
]


@pytest.mark.parametrize(("name", "kwargs", "seconds"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_local_dir_round_trip_per_family(tmp_path, name, kwargs, seconds):
    if name == "ast":
        kwargs = {**kwargs, "frontend": {"target_frames": 64}}
    model = build(name, **kwargs)
    model.labels = [f"class {i}" for i in range(model.pretrained_cfg.num_classes)]
    model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = audiozoo.create(f"local-dir:{tmp_path / 'saved'}")
    assert_same_model(model, loaded, seconds)
    assert loaded.labels == model.labels
    assert not loaded.training


@pytest.mark.parametrize("head", ["linear", "mlp", "conv", "attention", "frame", "rnn", "identity"])
def test_local_dir_round_trip_per_head(tmp_path, head):
    kwargs = {} if head == "identity" else {"num_classes": 5}
    model = build("mn01", head=head, **kwargs)
    model.save_pretrained(tmp_path)
    loaded = audiozoo.create(f"local-dir:{tmp_path}")
    assert_same_model(model, loaded, 1.0)
    assert json.loads((tmp_path / "config.json").read_text())["head"]["name"] == head


def test_loading_options(tmp_path):
    model = build("mn01", head="linear", num_classes=3)
    model.labels = ["a", "b", "c"]
    model.save_pretrained(tmp_path)
    # pretrained=False: same architecture, random weights
    fresh = audiozoo.create(f"local-dir:{tmp_path}", pretrained=False)
    assert fresh.config()["head"] == model.config()["head"]
    # a new head keeps the backbone weights and drops the labels
    new = audiozoo.create(f"local-dir:{tmp_path}", head="frame", num_classes=7)
    assert new.labels is None
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(new.backbone.state_dict()[key], value, rtol=0, atol=0)
    frozen = audiozoo.create(f"local-dir:{tmp_path}", freeze=True)
    assert frozen.frozen
    # weights from another file
    other = build("mn01", head="linear", num_classes=3)
    other.save_pretrained(tmp_path / "other")
    mixed = audiozoo.create(
        f"local-dir:{tmp_path}", pretrained=tmp_path / "other" / "model.safetensors"
    )
    torch.testing.assert_close(mixed.state_dict(), other.state_dict(), rtol=0, atol=0)


# ------------------------------------------------------------------------------ validation
@pytest.fixture
def saved(tmp_path) -> Path:
    build("mn01").save_pretrained(tmp_path)
    return tmp_path


def _edit(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c.update(architecture="os.system"),
            "architecture 'os.system' is not registered",
        ),
        (lambda c: c["head"].update(name="__import__"), "head '__import__' is not registered"),
        (lambda c: c["frontend"].update(name="nope"), "frontend 'nope' is not registered"),
        (lambda c: c.update(extra_code="print(1)"), r"unknown fields \['extra_code'\]"),
        (lambda c: c.pop("frontend"), r"missing fields \['frontend'\]"),
        (lambda c: c.update(format="transformers"), "'format' must be 'audiozoo'"),
        (lambda c: c.update(format_version=99), "format_version 99 is not supported"),
        (lambda c: c.update(labels=[1, 2]), "'labels' must be a list of strings"),
        (lambda c: c["head"].update(hidden={"a": 1}), "arguments must be JSON scalars"),
        (lambda c: c["pretrained_cfg"].update(metrics={"map": "high"}), "metrics must map"),
        (lambda c: c["backbone_kwargs"].update(bogus=1), "invalid arguments for architecture"),
        (lambda c: c["head"].update(bogus=1), "invalid arguments for head"),
        (lambda c: c["frontend"].update(bogus=1), "invalid arguments for frontend"),
    ],
)
def test_invalid_configs_raise_clear_errors(saved, change, message):
    _edit(saved, change)
    with pytest.raises(RegistryError, match=message):
        audiozoo.create(f"local-dir:{saved}")


def test_missing_files_and_bad_names(tmp_path, saved):
    with pytest.raises(audiozoo.PretrainedUnavailableError, match=r"config\.json"):
        audiozoo.create(f"local-dir:{tmp_path / 'nothing'}")
    (saved / "model.safetensors").unlink()
    with pytest.raises(audiozoo.PretrainedUnavailableError, match=r"model\.safetensors"):
        audiozoo.create(f"local-dir:{saved}")
    with pytest.raises(RegistryError, match="hf-hub:org/repo"):
        audiozoo.create("hf-hub:not a repo")
    (saved / "config.json").write_text("{not json")
    with pytest.raises(RegistryError, match="as JSON"):
        read_config(saved / "config.json")


def test_unregistered_head_module_cannot_be_saved(tmp_path):
    model = build("mn01", head=torch.nn.Identity())
    with pytest.raises(RegistryError, match="registered head"):
        model.save_pretrained(tmp_path)


# ------------------------------------------------------------------------------ Hub
def test_hf_hub_name_with_revision_loads_through_the_hub(tmp_path, monkeypatch):
    model = build("mn01", head="linear", num_classes=4)
    model.save_pretrained(tmp_path)
    with HubServer() as server:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", f"{server.url}/hf")
        for name in ("config.json", "model.safetensors"):
            server.hub[("someone/mn01-test", name)] = (tmp_path / name).read_bytes()
        loaded = audiozoo.create("hf-hub:someone/mn01-test@v1")
        paths = {p for _, p in server.requests}
    assert "/hf/someone/mn01-test/resolve/v1/model.safetensors" in paths
    assert loaded.pretrained_cfg.audiozoo_hub_id == "someone/mn01-test"
    assert_same_model(model, loaded, 1.0)


def test_push_to_hub_uploads_folder_with_model_card(monkeypatch):
    model = build("mn01")
    model.labels = [f"label {i}" for i in range(527)]
    seen: dict = {}

    def fake_create_repo(self, repo_id, **kwargs):
        seen["create"] = (repo_id, kwargs)

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        seen["repo_id"] = repo_id
        seen["files"] = sorted(p.name for p in folder.iterdir())
        seen["card"] = (folder / "README.md").read_text()
        seen["config"] = json.loads((folder / "config.json").read_text())
        seen["weights"] = (folder / "model.safetensors").stat().st_size
        return "commit-info"

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    assert model.push_to_hub("someone/my-mn01", private=True) == "commit-info"
    assert seen["create"] == ("someone/my-mn01", {"private": True, "exist_ok": True})
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert seen["weights"] > 0
    assert seen["config"]["architecture"] == "mn01"
    assert seen["config"]["labels"] == model.labels
    card = seen["card"]
    assert card.startswith("---\nlibrary_name: audiozoo")
    assert "license: mit" in card and "pipeline_tag: audio-classification" in card
    assert 'audiozoo.create("hf-hub:someone/my-mn01")' in card
    assert "527 classes" in card and "label 526" in card
    assert "@inproceedings" in card or "@article" in card or "@misc" in card
    assert card == model_card(model, "someone/my-mn01")


def test_model_card_reports_metrics_and_task_of_frame_heads():
    model = build("mn10.as", head="frame", num_classes=3)
    card = model_card(model)
    assert "frame-level" in card and "audioset_mAP | 0.471" in card
    assert "pipeline_tag" not in card
    assert "No label names" in card

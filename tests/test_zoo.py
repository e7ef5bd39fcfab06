"""The zoo as data: every tag's metadata is complete and consistent, read through the public
view (``get_pretrained_cfg``, ``get_architecture``, ``get_label_set``), offline."""

from __future__ import annotations

import inspect

import pytest

import audiozoo

TAGS = audiozoo.list_models(pretrained=True)
ARCHS = audiozoo.list_models()


@pytest.mark.parametrize("name", TAGS)
def test_every_tag_is_complete(name: str):
    cfg = audiozoo.get_pretrained_cfg(name)
    assert cfg.name == name
    assert cfg.source, "a weight source"
    assert cfg.license and cfg.citation, "license and citation"
    assert cfg.converter in audiozoo.get_converter(cfg.converter).name
    frontend = audiozoo.build_frontend(cfg.frontend)  # registered, and its arguments are valid
    assert frontend.config()["sample_rate"] == frontend.sample_rate
    head = cfg.head_config()
    assert audiozoo.get_head_class(head["name"]) is not None
    if cfg.label_set is not None:
        labels = audiozoo.get_label_set(cfg.label_set)
        assert cfg.num_classes == len(labels) == len(cfg.labels)
        assert "num_classes" not in cfg.head, "the class count follows from the label set"
    else:
        # an untrained classifier gives its class count; an embedding head (identity) has none
        assert cfg.labels is None and cfg.num_classes == head.get("num_classes")
        assert cfg.notes, "a tag without a label set says why"
        if audiozoo.get_head_class(head["name"]).needs_num_classes:
            assert cfg.num_classes, "a classifier without a label set gives num_classes"


@pytest.mark.parametrize("name", TAGS)
def test_tables_hold_only_differences_from_defaults(name: str):
    """A tag does not restate a frontend default: the frontend class is the one definition of
    those values (e.g. the 32 kHz STFT-mel settings every EfficientAT and PaSST tag shares)."""
    cfg = audiozoo.get_pretrained_cfg(name)
    frontend_cls = audiozoo.get_frontend_class(cfg.frontend["name"])
    defaults = {
        p.name: p.default for p in inspect.signature(frontend_cls.__init__).parameters.values()
    }
    for key, value in cfg.frontend.items():
        if key != "name":
            assert key in defaults and value != defaults[key], f"frontend {key}={value!r}"


def test_labels_are_shipped_and_need_no_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = audiozoo.get_pretrained_cfg("passt_s.fsd50k")
    assert len(cfg.labels) == cfg.num_classes == 200
    model = audiozoo.create("mn01.as", pretrained=False)
    assert model.labels == list(audiozoo.get_label_set("audioset").names)
    assert model.labels[0] == "Speech"


def test_untrained_classifiers_have_no_labels():
    cfg = audiozoo.get_pretrained_cfg("mn10.im")
    assert cfg.label_set is None and cfg.labels is None and cfg.num_classes == 527
    assert audiozoo.create("mn10.im", pretrained=False).labels is None


def test_pretrained_cfg_is_read_only():
    model = audiozoo.create("mn01.as", pretrained=False)
    with pytest.raises(TypeError):
        model.pretrained_cfg.frontend["n_mels"] = 64  # type: ignore[index]
    with pytest.raises(TypeError):
        model.pretrained_cfg.head["name"] = "linear"  # type: ignore[index]
    assert audiozoo.get_pretrained_cfg("mn01.as").frontend == {"name": "stft_mel"}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_declares_family_and_builds_small(arch: str):
    entry = audiozoo.get_architecture(arch)
    assert entry.family, f"{arch} declares no family"
    model = audiozoo.create(arch, pretrained=False, **dict(entry.test_kwargs))
    assert model.num_features > 0


def test_get_pretrained_cfg_errors():
    with pytest.raises(audiozoo.UnknownNameError, match="mn10"):
        audiozoo.get_pretrained_cfg("mn1O")
    with pytest.raises(audiozoo.UnknownNameError, match=r"mn10\.as"):
        audiozoo.get_pretrained_cfg("mn10.az")
    with pytest.raises(audiozoo.UnknownNameError, match=r"config\.json"):
        audiozoo.get_pretrained_cfg("local-dir:runs/best")

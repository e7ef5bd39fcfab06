"""Registry: decorators, duplicates, listing, close-match errors, entry-point plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import audiozoo
from audiozoo import RegistryError, UnknownNameError
from audiozoo._registry import Registry


def test_duplicate_registration_raises():
    reg: Registry[int] = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", 2)
    assert reg.get("a") == 1


def test_duplicate_builtin_head_raises():
    with pytest.raises(RegistryError, match="already registered"):
        audiozoo.register_head("linear")(type("Other", (audiozoo.Head,), {"forward": None}))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError, match=r"Did you mean: .*mn10"):
        audiozoo.create("mn11", pretrained=False)
    with pytest.raises(UnknownNameError, match=r"mn10\.as_hop_5"):
        audiozoo.create("mn10.as_hop5", pretrained=False)
    with pytest.raises(UnknownNameError, match="frame"):
        audiozoo.create("mn10", head="frames", num_classes=2, pretrained=False)
    # also a KeyError, so generic code that catches lookups keeps working
    with pytest.raises(KeyError):
        audiozoo.get_head_class("nope")


def test_list_models_patterns():
    archs = audiozoo.list_models("mn*")
    assert "mn10" in archs and "mn01" in archs and all(a.startswith("mn") for a in archs)
    assert "." not in "".join(archs)
    tagged = audiozoo.list_models("mn10*", pretrained=True)
    assert "mn10.as" in tagged and "mn10.as_hop_5" in tagged and "mn10.as_fc_s2221" in tagged
    assert all(t.startswith("mn10.") for t in tagged)
    assert audiozoo.list_models("mn10.as_hop*", pretrained=True) == [
        t for t in tagged if t.startswith("mn10.as_hop")
    ]
    assert audiozoo.list_models("nothing*") == []
    # every listed tag resolves to a config that names its architecture
    for name in audiozoo.list_models(pretrained=True):
        arch, tag = audiozoo.split_model_name(name)
        assert audiozoo.get_architecture(arch).cfg(tag).name == name


def test_list_parts():
    assert {"stft_mel", "kaldi_fbank", "mel"} <= set(audiozoo.list_frontends())
    assert {
        "linear",
        "mlp",
        "conv",
        "attention",
        "frame",
        "rnn",
        "identity",
        "sed",
        "weighted",
    } == set(audiozoo.list_heads())
    assert set(audiozoo.list_backbones()) == set(audiozoo.list_models())


PLUGIN = textwrap.dedent(
    """
    import audiozoo
    from audiozoo.backbones.cnn import CNN

    @audiozoo.register_backbone(
        "plugin_cnn",
        default_cfg=audiozoo.PretrainedCfg(
            arch="plugin_cnn", frontend={"name": "mel"}, head={"name": "linear", "num_classes": 3}
        ),
    )
    def plugin_cnn(**kwargs):
        return CNN(base=4, **kwargs)
    """
)


def _make_distribution(root, dist: str, entry_points: str, module: str | None = None):
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module is not None:
        (root / f"{dist}.py").write_text(module)


def test_entry_point_plugins_load_lazily_and_broken_ones_warn(tmp_path):
    _make_distribution(tmp_path, "azplugin", "[audiozoo.plugins]\ncnnplugin = azplugin\n", PLUGIN)
    _make_distribution(
        tmp_path,
        "azbroken",
        "[audiozoo.plugins]\nbroken = azbroken\n",
        "raise ImportError('this plugin is broken on purpose')\n",
    )
    script = textwrap.dedent(
        """
        import sys, warnings
        import audiozoo
        assert "azplugin" not in sys.modules, "plugins must load lazily, not at import"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = audiozoo.list_models("plugin*")
        assert names == ["plugin_cnn"], names
        msgs = [str(w.message) for w in caught]
        assert any("broken" in m and "failed to import" in m for m in msgs), msgs
        model = audiozoo.create("plugin_cnn", pretrained=False)
        import torch
        assert model(torch.randn(1, 16000)).shape == (1, 3)
        assert "mn10" in audiozoo.list_models()  # the rest of the registry still works
        print("ok")
        """
    )
    src = Path(audiozoo.__file__).resolve().parents[1]  # the audiozoo under test, not an install
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(src)]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")

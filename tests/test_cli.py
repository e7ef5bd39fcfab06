"""The ``audiozoo`` command line and the statistics behind ``audiozoo info``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
from torch import nn

import audiozoo
from audiozoo.cli import main
from audiozoo.stats import count_macs, receptive_field
from tests.conftest import require_fixtures
from tests.hub_server import HubServer

AUDIOSET = audiozoo.get_label_set("audioset").names


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_list(capsys):
    status, out, _ = run(capsys, "list", "mn0*")
    assert status == 0 and out.split() == audiozoo.list_models("mn0*")
    status, out, _ = run(capsys, "list", "mn10*", "--pretrained")
    assert out.split() == audiozoo.list_models("mn10*", pretrained=True)
    assert "mn10.as_hop_5" in out.split()


def test_python_dash_m_audiozoo_list():
    proc = subprocess.run(
        [sys.executable, "-m", "audiozoo", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mn10" in proc.stdout.split()


def test_info_mn10(capsys):
    status, out, _ = run(capsys, "info", "mn10")
    assert status == 0
    rows = dict(
        line.split(None, 1) if "  " not in line else [part.strip() for part in line.split("  ", 1)]
        for line in out.splitlines()
    )
    model = audiozoo.create("mn10", pretrained=False)
    assert rows["parameters"] == f"{sum(p.numel() for p in model.parameters()):,}"
    assert rows["architecture"] == "mn10" and rows["tag"] == "as"
    assert rows["sample rate"] == "32000 Hz"
    assert rows["embedding size"] == "960"
    assert rows["input frames (10 s)"].startswith("1000 x 128")
    assert "mn10_as_mAP_471.pt" in rows["source"] and rows["license"] == "MIT"
    assert rows["reported metric"] == "audioset_mAP 0.471"
    assert "frames" in rows["receptive field"]
    status, out, _ = run(capsys, "info", "mn10", "--json")
    info = json.loads(out)
    # upstream's README reports 0.54 GMACs for mn10 on a 10 s clip
    assert info["macs_10s"] == pytest.approx(0.54e9, rel=0.02)


@pytest.mark.slow
def test_info_of_a_transformer_has_no_local_receptive_field(capsys):
    status, out, _ = run(capsys, "info", "ast", "--json")
    info = json.loads(out)
    assert status == 0 and info["receptive_field_frames"] is None
    assert info["source"] == "hf-hub:MIT/ast-finetuned-audioset-10-10-0.4593/model.safetensors"


def test_receptive_field_matches_gradient_support():
    backbone = nn.Sequential(
        nn.Conv2d(1, 2, kernel_size=(3, 5), padding=(1, 2)),
        nn.ReLU(),
        nn.AvgPool2d((2, 3)),  # max pooling has the same field, but a gradient at one input
        nn.Conv2d(2, 2, kernel_size=3, stride=(1, 2), dilation=(1, 2), padding=2),
        nn.AvgPool2d(2),
        nn.Conv2d(2, 1, kernel_size=(1, 3)),
    )
    for p in backbone.parameters():
        nn.init.constant_(p, 0.1)
    x = torch.rand(1, 1, 8, 200, requires_grad=True)
    out = backbone(x)
    out[0, 0, 0, out.shape[-1] // 2].backward()
    support = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
    assert receptive_field(backbone) == int(support.max() - support.min() + 1)


def test_count_macs_matches_a_hand_count():
    class Tiny(nn.Module):
        sample_rate = 100

        def __init__(self):
            super().__init__()
            self.frontend = nn.Unflatten(1, (1, 4, 25))  # (1, 100) -> (1, 1, 4, 25)
            self.backbone = nn.Conv2d(1, 6, kernel_size=(2, 5))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 3 * 21, 7))
            self.device = torch.device("cpu")

    conv = 6 * 1 * 2 * 5 * 3 * 21
    linear = 6 * 3 * 21 * 7
    assert count_macs(Tiny(), seconds=1.0) == conv + linear


@pytest.fixture
def clips(tmp_path):
    """A 44.1 kHz stereo WAV (3 s) and FLAC (12 s: longer than the model's 10 s)."""
    rate = 44100
    paths = []
    for name, seconds in (("clip.wav", 3.0), ("long.flac", 12.0)):
        t = np.arange(round(seconds * rate)) / rate
        left = 0.3 * np.sin(2 * math.pi * 440 * t)
        right = 0.2 * np.sign(np.sin(2 * math.pi * 3 * t)) * np.sin(2 * math.pi * 1000 * t)
        soundfile.write(tmp_path / name, np.stack([left, right], axis=1).astype(np.float32), rate)
        paths.append(str(tmp_path / name))
    return paths


@pytest.mark.slow
def test_tag_prints_labels_and_json(capsys, clips):
    ckpt = str(require_fixtures("efficientat", "mn01_as.pt"))
    status, out, err = run(
        capsys, "tag", *clips, "--model", "mn01.as", "--pretrained", ckpt, "--top", "3"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == clips[0] and lines[4] == clips[1]
    for line in lines[1:4] + lines[5:8]:
        prob, label = line.split(None, 1)
        assert 0.0 <= float(prob) <= 1.0 and label in AUDIOSET  # names ship with audiozoo
    status, out, _ = run(
        capsys, "tag", *clips, "--model", "mn01.as", "--pretrained", ckpt, "--json"
    )
    result = json.loads(out)
    assert list(result) == clips
    for rows in result.values():
        probs = [r["probability"] for r in rows]
        assert len(rows) == 5 and probs == sorted(probs, reverse=True)
        assert all(r["label"] == AUDIOSET[r["index"]] for r in rows)
    # the same numbers as the Python API on the mono mix resampled to 32 kHz
    model = audiozoo.create("mn01.as", pretrained=ckpt)
    data, rate = soundfile.read(clips[0], dtype="float32")
    with torch.no_grad():
        probs = torch.sigmoid(model(torch.from_numpy(data.T).mean(0), sample_rate=rate))
    assert result[clips[0]][0]["index"] == int(probs.argmax())
    assert result[clips[0]][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_tag_unreadable_file_is_one_error(capsys, tmp_path):
    bad = tmp_path / "not-audio.wav"
    bad.write_text("hello")
    ckpt = str(require_fixtures("efficientat", "mn01_as.pt"))
    status, out, err = run(capsys, "tag", str(bad), "--model", "mn01.as", "--pretrained", ckpt)
    assert status == 1 and out == ""
    assert err.startswith("audiozoo tag: error: cannot read") and err.count("\n") == 1


def test_convert_writes_the_audiozoo_format(capsys, tmp_path):
    ckpt = require_fixtures("efficientat", "mn01_as.pt")
    status, out, _ = run(
        capsys, "convert", str(ckpt), "--name", "mn01.as", "--out", str(tmp_path / "mn01")
    )
    assert status == 0 and "local-dir:" in out
    loaded = audiozoo.create(f"local-dir:{tmp_path / 'mn01'}")
    direct = audiozoo.create("mn01.as", pretrained=ckpt)
    torch.testing.assert_close(loaded.state_dict(), direct.state_dict(), rtol=0, atol=0)


def test_download_offline_fails_with_the_fix(capsys):
    status, _, err = run(capsys, "download", "mn01.as")
    assert status == 1
    assert "audiozoo download" in err and "pretrained=PATH" in err


def test_download_then_offline_create(capsys, monkeypatch, tmp_path):
    cfg = audiozoo.create("mn01.as", pretrained=False).pretrained_cfg
    with HubServer() as server:
        server.files[cfg.url.removeprefix("https://github.com/")] = require_fixtures(
            "efficientat", "mn01_as.pt"
        ).read_bytes()
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("AUDIOZOO_URL_REWRITE", f"https://github.com/={server.url}/gh/")
        status, out, err = run(capsys, "download", "mn01.as", "--cache-dir", str(tmp_path))
    assert status == 0, err
    assert "mn01.as: cached" in out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = audiozoo.create("mn01.as", cache_dir=tmp_path)
    direct = audiozoo.create("mn01.as", pretrained=require_fixtures("efficientat", "mn01_as.pt"))
    torch.testing.assert_close(model.state_dict(), direct.state_dict(), rtol=0, atol=0)

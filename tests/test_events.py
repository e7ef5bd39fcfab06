"""SED post-processing (``audiozoo.events``) and ``audiozoo tag --events``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from audiozoo import cli
from audiozoo.events import Event, binarize, detect_events, frames_to_events, median_filter
from tests.conftest import require_fixtures


def reference_median(x: np.ndarray, window: int) -> np.ndarray:
    """Per-column median over ``window`` frames with scipy.ndimage's "reflect" edges
    (``c b a | a b c | c b a``), written as a plain loop."""
    t = x.shape[0]
    out = np.empty_like(x)
    for i in range(t):
        rows = []
        for j in range(i - window // 2, i + window // 2 + 1):
            while not 0 <= j < t:  # reflect about the edges until inside
                j = -j - 1 if j < 0 else 2 * t - 1 - j
            rows.append(x[j])
        out[i] = np.median(np.stack(rows), axis=0)
    return out


@pytest.mark.parametrize(("frames", "window"), [(60, 9), (5, 9), (3, 11), (1, 3), (20, 1)])
def test_median_filter_matches_reference(frames: int, window: int):
    x = torch.rand(frames, 4, generator=torch.Generator().manual_seed(frames))
    expected = reference_median(x.numpy(), window)
    assert np.array_equal(median_filter(x, window).numpy(), expected)
    batch = torch.stack([x, x.flip(0)])
    assert torch.equal(median_filter(batch, window)[0], median_filter(x, window))


def test_median_filter_removes_blips_and_gaps():
    x = torch.tensor([0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1], dtype=torch.float32)[:, None]
    assert median_filter(x, 3)[:, 0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="odd"):
        median_filter(x, 4)


def test_binarize_thresholds():
    p = torch.tensor([[0.2, 0.5, 0.9]])
    assert binarize(p, 0.5).tolist() == [[False, False, True]]  # strictly greater, as upstream
    assert binarize(p, [0.1, 0.4, 0.95]).tolist() == [[True, True, False]]
    assert binarize(p, {"b": 0.3}, labels=["a", "b", "c"]).tolist() == [[False, True, True]]
    with pytest.raises(ValueError, match="unknown classes"):
        binarize(p, {"z": 0.3}, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="3 values"):
        binarize(p, [0.1, 0.2])


def test_frames_to_events_times_and_order():
    active = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0], [1, 1]], dtype=torch.bool)
    scores = torch.tensor([[0.0, 0.6], [0.8, 0.8], [0.6, 0.0], [0.0, 0.0], [0.9, 0.7]])
    events = frames_to_events(active, 0.04, labels=["a", "b"], scores=scores, duration=0.19)
    expected = [
        ("b", 0.0, 0.08, 0.7),
        ("a", 0.04, 0.12, 0.7),
        ("a", 0.16, 0.19, 0.9),  # the last frame's offset is clipped to the duration
        ("b", 0.16, 0.19, 0.7),
    ]
    assert [(e.label, e.onset, e.offset) for e in events] == [x[:3] for x in expected]
    assert [e.score for e in events] == pytest.approx([x[3] for x in expected])
    assert frames_to_events(torch.zeros(4, 2, dtype=torch.bool), 0.04) == []
    assert frames_to_events(torch.ones(3, 1, dtype=torch.bool), 0.5)[0] == Event(0.0, 1.5, 0, 1.0)


def test_detect_events_pipeline_and_batches():
    probs = torch.zeros(2, 50, 3)
    probs[0, 10:20, 1] = 0.9
    probs[0, 15, 1] = 0.1  # a one-frame gap the median filter closes
    probs[1, 30, 2] = 0.9  # a one-frame blip it removes
    events = detect_events(probs, 0.04, threshold=0.5, median_window=3, labels=["x", "y", "z"])
    assert len(events) == 2 and events[1] == []
    (e,) = events[0]
    assert (e.label, e.onset, e.offset) == ("y", pytest.approx(0.4), pytest.approx(0.8))
    raw = detect_events(probs[0], 0.04, threshold=0.5)
    assert [ev.label for ev in raw] == [1, 1]  # without the filter: split in two


# --------------------------------------------------------------------------- CLI


def test_tag_events_prints_timed_events(tmp_path, capsys):
    ckpt = str(require_fixtures("pretrainedsed", "frame_mn06_strong.pt"))
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * 16000) / 16000).astype(np.float32)
    path = tmp_path / "tone.wav"
    soundfile.write(path, wave, 16000)
    args = ["tag", str(path), "--model", "frame_mn06.as_strong", "--pretrained", ckpt, "--events"]
    assert cli.main([*args, "--json", "--threshold", "0.3"]) == 0
    rows = json.loads(capsys.readouterr().out)[str(path)]
    assert rows, "random weights still cross 0.3 somewhere"
    assert all(0 <= r["onset"] < r["offset"] <= 3.0 for r in rows)
    # the same events as the Python API
    import audiozoo

    model = audiozoo.create("frame_mn06.as_strong", pretrained=ckpt)
    with torch.no_grad():
        probs = torch.sigmoid(model(torch.from_numpy(wave)))
    expected = detect_events(
        probs, 0.04, threshold=0.3, median_window=9, labels=model.labels, duration=3.0
    )
    assert [(r["label"], r["onset"]) for r in rows] == [
        (e.label, round(e.onset, 3)) for e in expected
    ]
    assert cli.main([*args, "--threshold", "0.3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: {len(rows)} events") and "9 frames of 0.04 s" in out[0]
    assert len(out) == 1 + len(rows)
    assert cli.main([*args, "--threshold", "0.3", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "file,onset,offset,label,score" and len(lines) == 1 + len(rows)
    first = lines[1].split(",")
    assert first[0] == str(path) and float(first[1]) == rows[0]["onset"]


def test_tag_events_needs_a_frame_model(tmp_path, capsys):
    path = tmp_path / "x.wav"
    soundfile.write(path, np.zeros(16000, dtype=np.float32), 16000)
    ckpt = str(require_fixtures("efficientat", "mn01_as.pt"))
    status = cli.main(["tag", str(path), "--model", "mn01.as", "--pretrained", ckpt, "--events"])
    assert status == 1
    assert "frame_mn10.as_strong" in capsys.readouterr().err

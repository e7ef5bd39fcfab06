"""audiozoo.data: synthetic clips and events, the folder data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from audiozoo.data import SYNTHETIC_CLASSES, FolderDataset, SyntheticAudio, SyntheticEvents

SR = 16000


def _peak_hz(x: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


# ---------------------------------------------------------------------------------------------
# SyntheticAudio


def test_synthetic_audio_is_deterministic_and_balanced() -> None:
    a = SyntheticAudio(25, sample_rate=SR, duration=0.5, seed=3)
    b = SyntheticAudio(25, sample_rate=SR, duration=0.5, seed=3)
    c = SyntheticAudio(25, sample_rate=SR, duration=0.5, seed=4)
    assert len(a) == 25
    for i in (0, 7, 24, -1):
        wa, la = a[i]
        wb, lb = b[i]
        assert torch.equal(wa, wb) and la == lb
        assert not torch.equal(wa, c[i][0])
        assert wa.shape == (8000,) and wa.dtype == torch.float32
        assert torch.isfinite(wa).all() and 0 < wa.abs().max() <= 1.0
    assert [a[i][1] for i in range(25)] == a.labels
    assert np.bincount(a.labels).tolist() == [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    with pytest.raises(IndexError):
        a[25]


def test_synthetic_classes_subset_and_errors() -> None:
    ds = SyntheticAudio(4, sample_rate=SR, classes=["chirp_down", "tone"])
    assert ds.classes == ("chirp_down", "tone") and ds.labels == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="unknown synthetic classes"):
        SyntheticAudio(4, classes=["violin"])
    with pytest.raises(ValueError, match="no samples"):
        SyntheticAudio(4, duration=0.0)
    assert len(SYNTHETIC_CLASSES) == 10


def test_synthetic_sounds_have_their_acoustic_signature() -> None:
    """Independent checks of what each class is, from the raw signal."""
    n = 6

    def clips(name: str) -> list[np.ndarray]:
        ds = SyntheticAudio(
            n, sample_rate=SR, duration=1.0, seed=0, classes=[name], snr_db=(40.0, 40.0)
        )
        return [ds[i][0].numpy().astype(np.float64) for i in range(n)]

    for x in clips("chirp_up"):
        assert _peak_hz(x[: SR // 4]) < _peak_hz(x[-SR // 4 :])
    for x in clips("chirp_down"):
        assert _peak_hz(x[: SR // 4]) > _peak_hz(x[-SR // 4 :])
    for x in clips("tone"):  # one steady frequency
        assert abs(_peak_hz(x[: SR // 2]) - _peak_hz(x[SR // 2 :])) < 10
    for x in clips("rumble"):  # energy below 1 kHz
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / SR)
        assert power[freqs < 1000].sum() > 0.9 * power.sum()
    for x in clips("click_train"):  # impulsive: high crest factor
        assert np.abs(x).max() / np.sqrt(np.mean(x**2)) > 4
    for x in clips("am_slow"):  # envelope (50 ms RMS) varies strongly
        env = np.sqrt(np.mean(x[: SR // 20 * 20].reshape(20, -1) ** 2, axis=1))
        assert env.max() > 3 * env.min()


# ---------------------------------------------------------------------------------------------
# SyntheticEvents


def test_synthetic_events_targets_match_the_events() -> None:
    ds = SyntheticEvents(12, sample_rate=SR, duration=3.0, frame_hop=0.25, seed=1)
    assert ds.num_frames == 12
    for i in range(12):
        wave, targets = ds[i]
        events = ds.events(i)
        assert wave.shape == (3 * SR,) and targets.shape == (12, 5)
        assert 1 <= len(events) <= 3
        # naive reference: frame t is active when its centre lies inside an event
        expected = np.zeros((12, 5), dtype=np.float32)
        for t in range(12):
            centre = (t + 0.5) * 0.25
            for onset, offset, k in events:
                if onset <= centre < offset:
                    expected[t, k] = 1.0
        np.testing.assert_array_equal(targets.numpy(), expected)
        for onset, offset, k in events:
            assert 0 <= onset < offset <= 3.0 and 0.5 - 1e-3 <= offset - onset <= 2.0 + 1e-3
            inside = wave[int(onset * SR) : int(offset * SR)]
            assert inside.pow(2).mean().sqrt() > 10 * 10 ** (-50 / 20)  # above the background
            same = [e for e in events if e[2] == k and e != (onset, offset, k)]
            assert all(off <= onset or on >= offset for on, off, _ in same)
    again = SyntheticEvents(12, sample_rate=SR, duration=3.0, frame_hop=0.25, seed=1)
    assert torch.equal(again[5][0], ds[5][0]) and again.events(5) == ds.events(5)


def test_synthetic_events_num_frames_and_errors() -> None:
    ds = SyntheticEvents(2, sample_rate=SR, duration=2.0, frame_hop=0.32, num_frames=7)
    assert ds[0][1].shape == (7, 5)
    with pytest.raises(ValueError, match="min_event"):
        SyntheticEvents(2, duration=1.0, min_event=0.5, max_event=2.0)


# ---------------------------------------------------------------------------------------------
# FolderDataset


def _write(path: Path, data: np.ndarray, sr: int) -> None:
    soundfile.write(path, data, sr, subtype="FLOAT")


def test_folder_dataset_single_label_mono_resampled(tmp_path: Path) -> None:
    from audiozoo.resample import resample

    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((8000, 2)).astype(np.float32) * 0.1
    mono = rng.standard_normal(3200).astype(np.float32) * 0.1
    _write(tmp_path / "a.wav", stereo, 16000)
    _write(tmp_path / "b.wav", mono, 32000)
    (tmp_path / "labels.csv").write_text("filename,label\na.wav,dog\nb.wav,cat\n")

    ds = FolderDataset(tmp_path, sample_rate=32000)
    assert ds.classes == ("cat", "dog") and not ds.multi_label and len(ds) == 2
    wave, label = ds[0]
    assert label == 1 and wave.dtype == torch.float32
    expected = resample(torch.from_numpy(stereo.mean(axis=1)), 16000, 32000)
    torch.testing.assert_close(wave, expected)
    assert wave.shape == (16000,)
    wave, label = ds[1]
    assert label == 0
    torch.testing.assert_close(wave, torch.from_numpy(mono))

    fixed = FolderDataset(tmp_path, sample_rate=32000, duration=0.25)
    assert fixed[0][0].shape == (8000,)  # cropped
    padded = fixed[1][0]
    assert padded.shape == (8000,) and torch.equal(padded[3200:], torch.zeros(4800))


def test_folder_dataset_multi_label_split_and_errors(tmp_path: Path) -> None:
    for name in ("x.wav", "y.wav", "z.wav"):
        _write(tmp_path / name, np.zeros(100, dtype=np.float32), 8000)
    (tmp_path / "meta.csv").write_text(
        "filename,label,split\nx.wav,dog;cat,train\ny.wav,bird,train\nz.wav,cat,test\n"
    )
    ds = FolderDataset(tmp_path, "meta.csv", sample_rate=8000)
    assert ds.multi_label and ds.classes == ("bird", "cat", "dog")
    assert ds[0][1].tolist() == [0.0, 1.0, 1.0]
    assert ds.target(1).tolist() == [1.0, 0.0, 0.0]
    train = FolderDataset(tmp_path, "meta.csv", sample_rate=8000, split="train")
    test = FolderDataset(
        tmp_path,
        "meta.csv",
        sample_rate=8000,
        split="test",
        classes=train.classes,
        multi_label=True,
    )
    assert len(train) == 2 and len(test) == 1 and test[0][1].tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="not in classes"):
        FolderDataset(tmp_path, "meta.csv", sample_rate=8000, classes=["cat"])
    (tmp_path / "bad.csv").write_text("file,label\nx.wav,dog\n")
    with pytest.raises(ValueError, match="filename"):
        FolderDataset(tmp_path, "bad.csv", sample_rate=8000)
    (tmp_path / "nosplit.csv").write_text("filename,label\nx.wav,dog\n")
    with pytest.raises(ValueError, match="split"):
        FolderDataset(tmp_path, "nosplit.csv", sample_rate=8000, split="train")

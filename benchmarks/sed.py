"""PretrainedSED's frame-level models, ours vs upstream: frame_mn10 and fPaSST forwards.

Upstream (fschmid56/PretrainedSED, MIT) is not on PyPI: the rows run against a checkout named
by ``$AUDIOZOO_PRETRAINEDSED_REPO`` (it needs torchaudio and torchvision, the parity session's
peers) and are SKIPPED without one. Both sides get the same random weights through audiozoo's
converters, exactly as a downloaded release file would, and run a 10 s clip the way upstream's
``inference.py`` does (``mel_forward`` then the model, strong and weak logits).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import audiozoo

from ._timing import Row, max_rel_diff
from .cases import MODEL_TOL, Settings, _quiet, _randomize, _speed_rows, _tmp_checkpoint, _waves

__all__ = ["sed_rows"]

REPO_ENV = "AUDIOZOO_PRETRAINEDSED_REPO"
WINDOW_SECONDS = 10.0


def _upstream(which: str) -> tuple[torch.nn.Module | None, str]:
    """PretrainedSED's ``PredictionsWrapper`` around frame_mn10 or fPaSST, or (None, why not)."""
    repo = os.environ.get(REPO_ENV)
    if not repo or not (Path(repo) / "models" / "prediction_wrapper.py").is_file():
        return None, f"set {REPO_ENV} to a fschmid56/PretrainedSED checkout"
    # other checkouts (RicherMans/CED) have a top-level ``models`` package too: forget it
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[name]
    sys.path.insert(0, repo)
    try:
        with _quiet():
            from models.prediction_wrapper import PredictionsWrapper

            if which == "frame_mn10":
                from models.frame_mn.Frame_MN_wrapper import FrameMNWrapper

                return PredictionsWrapper(FrameMNWrapper(1.0), embed_dim=960).eval(), ""
            import models.frame_passt.fpasst_wrapper as fpasst

            build = fpasst.get_model  # DeiT weights would be downloaded, then overwritten
            fpasst.get_model = lambda **kw: build(pretrained=False, **kw)  # type: ignore[assignment]
            try:
                return PredictionsWrapper(fpasst.FPaSSTWrapper()).eval(), ""
            finally:
                fpasst.get_model = build  # type: ignore[assignment]
    except Exception as e:  # an incompatible checkout: skip the rows, say why
        return None, f"PretrainedSED checkout does not import ({type(e).__name__}: {e})"
    finally:
        sys.path.remove(repo)


def _release_state_dict(which: str, model: torch.nn.Module) -> dict[str, Any]:
    """Upstream's in-memory state dict in its release file's layout (fPaSST: ``model.*``)."""
    sd = model.state_dict()
    if which == "fpasst":
        return {k.replace("model.fpasst.", "model.", 1): v for k, v in sd.items()}
    return dict(sd)


def _rows(s: Settings, tmp: str, which: str, tag: str, title: str) -> list[Row]:
    upstream, skip = _upstream(which)
    if upstream is None:
        ours = audiozoo.create(tag, pretrained=False)
    else:
        _randomize(upstream, 5)
        path = _tmp_checkpoint(_release_state_dict(which, upstream), tmp, f"{which}.pt")
        ours = audiozoo.create(tag, pretrained=path)

    # always one 10 s window, the unit upstream's inference.py runs (a shorter clip would be
    # padded to 10 s by us and not by a direct upstream call)
    def run_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, WINDOW_SECONDS, 16000)
        return lambda: ours.frame_and_clip_logits(x).frames  # (B, 250, 447) and the weak logits

    def run_theirs(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, WINDOW_SECONDS, 16000)
        assert upstream is not None

        def call() -> torch.Tensor:
            with _quiet():  # upstream's fPaSST prints shapes in every forward
                return upstream(upstream.mel_forward(x))[0].transpose(1, 2)  # strong, weak

        return call

    return _speed_rows(
        title,
        run_ours,
        run_theirs,
        check=max_rel_diff,
        tol=MODEL_TOL,
        targets={1: 1.0, 8: 1.0},
        settings=s,
        repeats=s.model_repeats,
        skipped=skip,
        compare_name="rel",
    )


def sed_rows(s: Settings) -> list[Row]:
    """frame_mn10 and fPaSST (strong + weak heads, 10 s clips) vs PretrainedSED."""
    with tempfile.TemporaryDirectory() as tmp:
        return [
            *_rows(s, tmp, "frame_mn10", "frame_mn10.as_strong", "frame_mn10 SED vs PretrainedSED"),
            *_rows(s, tmp, "fpasst", "fpasst.as_strong", "fPaSST SED vs PretrainedSED"),
        ]

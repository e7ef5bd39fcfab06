"""In-process comparisons: frontends and full-model forwards, ours vs upstream.

Each case builds both sides once, checks that their outputs agree, then times them interleaved
(see :func:`benchmarks._timing.time_pair`) at every thread setting and batch size. Upstream
packages are imported lazily; when one is missing, our side still runs (so the code path is
exercised) and the row says which package it needs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import audiozoo
from audiozoo.frontends.kaldi_fbank import KaldiFbank
from audiozoo.frontends.mel_spectrogram import MelSpectrogram
from audiozoo.frontends.stft_mel import StftMel
from audiozoo.optimize import optimize_for_inference

from ._timing import Row, fmt_time, max_abs_diff, max_rel_diff, time_pair

__all__ = ["Settings", "frontend_cases", "model_cases"]

FRONTEND_TOL = 1e-4  # absolute, on log-mel values of order 1
MODEL_TOL = 1e-3  # relative to the largest output magnitude
AST_MEAN, AST_STD = -4.2677393, 4.5689974  # AST AudioSet normalisation (ASTFeatureExtractor's)


@dataclass
class Settings:
    """What to run: clip length, batch sizes, thread settings, warm-up and repeats."""

    seconds: float = 10.0
    batches: tuple[int, ...] = (1, 8)
    threads: tuple[int, ...] = (2,)
    warmup: int = 1
    repeats: int = 5
    model_repeats: int = 3
    fixtures: Path | None = None
    only: tuple[str, ...] = field(default_factory=tuple)

    def wants(self, group: str) -> bool:
        return not self.only or group in self.only


def missing(*modules: str) -> str:
    """The first of ``modules`` that is not importable ("" when all are)."""
    for name in modules:
        if importlib.util.find_spec(name) is None:
            return f"needs {name}"
    return ""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # upstream constructors print ("Warning: FMAX is None ...") and warn about deprecations
    import warnings

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _speed_rows(
    case: str,
    ours: Callable[[int], Callable[[], torch.Tensor]],
    theirs: Callable[[int], Callable[[], torch.Tensor]] | None,
    *,
    check: Callable[[torch.Tensor, torch.Tensor], float],
    tol: float,
    targets: dict[int, float],
    settings: Settings,
    repeats: int,
    skipped: str = "",
    compare_name: str = "abs",
) -> list[Row]:
    """Rows of one comparison for every batch size and thread setting.

    ``ours(batch)`` / ``theirs(batch)`` return a zero-argument function computing the output for
    a fixed input of that batch size (inputs are made outside the timed call).
    """
    rows = []
    for batch in settings.batches:
        fn_ours = ours(batch)
        fn_theirs = theirs(batch) if theirs is not None and not skipped else None
        with torch.no_grad():
            diff = None
            if fn_theirs is not None:  # the first calls double as the first warm-up
                diff = check(fn_ours(), fn_theirs())
            for threads in settings.threads:
                torch.set_num_threads(threads)
                row = Row(
                    case,
                    batch=str(batch),
                    threads=str(threads),
                    target=targets.get(batch),
                    skipped=skipped,
                )
                if fn_theirs is None:
                    t_ours, _ = time_pair(
                        fn_ours, lambda: None, warmup=settings.warmup, repeats=repeats
                    )
                    row.ours, row.theirs = fmt_time(t_ours), "-"
                else:
                    assert diff is not None
                    t_ours, t_theirs = time_pair(
                        fn_ours, fn_theirs, warmup=settings.warmup, repeats=repeats
                    )
                    row.ours, row.theirs = fmt_time(t_ours), fmt_time(t_theirs)
                    row.ratio = t_theirs / t_ours
                    row.ratio_text = f"{row.ratio:.2f}x faster"
                    row.agree = diff <= tol
                    row.check = f"{compare_name} {diff:.1e} (<= {tol:g})"
                rows.append(row)
    return rows


def _waves(batch: int, seconds: float, sample_rate: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(batch)
    return 0.1 * torch.randn(batch, int(seconds * sample_rate), generator=g)


# ---------------------------------------------------------------------------------- frontends
def frontend_cases(s: Settings) -> list[Row]:
    rows: list[Row] = []
    if not s.wants("frontends"):
        return rows

    # STFT mel (EfficientAT / PaSST) vs hear21passt's AugmentMelSTFT, eval mode
    ours_stft = StftMel().eval()
    skip = missing("hear21passt", "torchaudio")
    upstream_stft = None
    if not skip:
        from hear21passt.models.preprocess import AugmentMelSTFT

        with _quiet():
            upstream_stft = AugmentMelSTFT(
                n_mels=128,
                sr=32000,
                win_length=800,
                hopsize=320,
                n_fft=1024,
                freqm=48,
                timem=192,
                htk=False,
                fmin=0.0,
                fmax=None,
                norm=1,
                fmin_aug_range=10,
                fmax_aug_range=2000,
            ).eval()

    def stft_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 32000)
        return lambda: ours_stft(x)[:, 0]

    def stft_theirs(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 32000)
        assert upstream_stft is not None

        def run() -> torch.Tensor:
            with _quiet():
                return upstream_stft(x)

        return run

    rows += _speed_rows(
        "StftMel vs hear21passt AugmentMelSTFT",
        stft_ours,
        stft_theirs,
        check=max_abs_diff,
        tol=FRONTEND_TOL,
        targets={1: 2.0, 8: 2.5},
        settings=s,
        repeats=s.repeats,
        skipped=skip,
    )

    # Kaldi fbank (AST) vs torchaudio.compliance.kaldi.fbank called per clip, as AST does
    ours_fbank = KaldiFbank().eval()

    def fbank_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        return lambda: ours_fbank(x)[:, 0].transpose(1, 2)  # (B, T, F) like AST

    def fbank_torchaudio(b: int) -> Callable[[], torch.Tensor]:
        import torchaudio

        x = _waves(b, s.seconds, 16000)

        def run() -> torch.Tensor:
            out = []
            # AST's dataloader: one clip at a time. It also subtracts the clip's mean first,
            # which fbank's per-frame DC removal makes a no-op up to float rounding (up to 2e-4
            # in the lowest mel bins); like transformers' ASTFeatureExtractor we leave it out.
            for clip in x:
                fb = torchaudio.compliance.kaldi.fbank(
                    clip[None],
                    htk_compat=True,
                    sample_frequency=16000,
                    use_energy=False,
                    window_type="hanning",
                    num_mel_bins=128,
                    dither=0.0,
                    frame_shift=10,
                )
                pad = 1024 - fb.shape[0]
                fb = torch.nn.functional.pad(fb, (0, 0, 0, pad)) if pad > 0 else fb[:1024]
                out.append((fb - AST_MEAN) / (AST_STD * 2))
            return torch.stack(out)

        return run

    rows += _speed_rows(
        "KaldiFbank vs torchaudio kaldi.fbank per clip",
        fbank_ours,
        fbank_torchaudio,
        check=max_abs_diff,
        tol=FRONTEND_TOL,
        targets={8: 3.0},
        settings=s,
        repeats=s.repeats,
        skipped=missing("torchaudio"),
    )

    def fbank_hf(b: int) -> Callable[[], torch.Tensor]:
        from transformers import ASTFeatureExtractor

        extractor = ASTFeatureExtractor()
        clips = [c.numpy() for c in _waves(b, s.seconds, 16000)]  # its input type: numpy
        return lambda: extractor(clips, sampling_rate=16000, return_tensors="pt")["input_values"]

    # generic mel (course CNN) vs torchaudio.transforms.MelSpectrogram + log, the same settings
    ours_mel = MelSpectrogram().eval()

    def mel_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 32000)
        return lambda: ours_mel(x)[:, 0]

    def mel_torchaudio(b: int) -> Callable[[], torch.Tensor]:
        import torchaudio

        transform = torchaudio.transforms.MelSpectrogram(
            32000, n_fft=1024, win_length=800, hop_length=320, n_mels=128
        )
        x = _waves(b, s.seconds, 32000)
        return lambda: (transform(x) + 1e-5).log()

    rows += _speed_rows(
        "MelSpectrogram vs torchaudio MelSpectrogram + log",
        mel_ours,
        mel_torchaudio,
        check=max_abs_diff,
        tol=FRONTEND_TOL,
        targets={8: 1.0},
        settings=s,
        repeats=s.repeats,
        skipped=missing("torchaudio"),
    )

    rows += _speed_rows(
        "KaldiFbank vs transformers ASTFeatureExtractor",
        fbank_ours,
        fbank_hf,
        check=max_abs_diff,
        tol=FRONTEND_TOL,
        targets={},
        settings=s,
        repeats=s.repeats,
        skipped=missing("transformers", "torchaudio"),
    )
    return rows


# ---------------------------------------------------------------------------------- models
def _randomize(module: torch.nn.Module, seed: int) -> None:
    """Random but well-scaled weights (norm scales near 1, the rest N(0, 0.02)), so no output
    is trivially constant (some upstream heads are zero-initialised)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))


def _tmp_checkpoint(state_dict: dict[str, Any], folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    torch.save(state_dict, path)
    return path


def model_cases(s: Settings) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        if s.wants("passt"):
            rows += _passt_rows(s, tmp)
        if s.wants("ast"):
            rows += _ast_rows(s, tmp)
        if s.wants("ced"):
            rows += _ced_rows(s, tmp)
        if s.wants("dasheng"):
            rows += _dasheng_rows(s, tmp)
        if s.wants("beats"):
            rows += _beats_rows(s, tmp)
    if s.wants("mn10"):
        rows += _mn10_rows(s)
    return rows


def _passt_rows(s: Settings, tmp: str) -> list[Row]:
    skip = missing("hear21passt", "torchaudio", "timm")
    if skip:
        ours = audiozoo.create("passt_s.as", pretrained=False)
    else:
        from hear21passt.models.passt import get_model
        from hear21passt.models.preprocess import AugmentMelSTFT
        from hear21passt.wrapper import PasstBasicWrapper

        with _quiet():  # hear21passt.base.get_basic_model, without fetching pretrained weights
            mel = AugmentMelSTFT(
                n_mels=128,
                sr=32000,
                win_length=800,
                hopsize=320,
                n_fft=1024,
                freqm=48,
                timem=192,
                htk=False,
                fmin=0.0,
                fmax=None,
                norm=1,
                fmin_aug_range=10,
                fmax_aug_range=2000,
            )
            net = get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False)
            upstream = PasstBasicWrapper(mel=mel, net=net, mode="logits").eval()
        _randomize(upstream, 0)
        path = _tmp_checkpoint(upstream.state_dict(), tmp, "passt_upstream.pt")
        ours = audiozoo.create("passt_s.as", pretrained=path)  # through the "passt" converter

    def run_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 32000)
        return lambda: ours(x)

    def run_theirs(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 32000)

        def run() -> torch.Tensor:
            with _quiet():
                return upstream(x)

        return run

    return _speed_rows(
        "PaSST-S forward vs hear21passt",
        run_ours,
        run_theirs,
        check=max_rel_diff,
        tol=MODEL_TOL,
        targets={8: 1.3},
        settings=s,
        repeats=s.model_repeats,
        skipped=skip,
        compare_name="rel",
    )


def _ast_rows(s: Settings, tmp: str) -> list[Row]:
    skip = missing("transformers", "torchaudio")
    if skip:
        ours = audiozoo.create("ast.as", pretrained=False)
    else:
        from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

        with _quiet():
            upstream = ASTForAudioClassification(ASTConfig(num_labels=527)).eval()
            extractor = ASTFeatureExtractor()
        _randomize(upstream, 1)
        path = _tmp_checkpoint(upstream.state_dict(), tmp, "ast_hf.pt")
        ours = audiozoo.create("ast.as", pretrained=path)  # through the "ast_hf" converter

    def run_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        return lambda: ours(x)

    def run_theirs(b: int) -> Callable[[], torch.Tensor]:
        clips = [c.numpy() for c in _waves(b, s.seconds, 16000)]

        def run() -> torch.Tensor:
            feats = extractor(clips, sampling_rate=16000, return_tensors="pt")["input_values"]
            return upstream(input_values=feats).logits

        return run

    return _speed_rows(
        "AST forward vs transformers (+ASTFeatureExtractor)",
        run_ours,
        run_theirs,
        check=max_rel_diff,
        tol=MODEL_TOL,
        targets={8: 1.0},
        settings=s,
        repeats=s.model_repeats,
        skipped=skip,
        compare_name="rel",
    )


CED_REPO_ENV = "AUDIOZOO_CED_REPO"  # a checkout of RicherMans/CED (GPL-3.0, not on PyPI)


def _upstream_ced_base() -> tuple[torch.nn.Module | None, str]:
    """CED-base from the checkout named by ``$AUDIOZOO_CED_REPO``, or (None, why not)."""
    import sys

    repo = os.environ.get(CED_REPO_ENV)
    if not repo or not (Path(repo) / "models" / "audiotransformer.py").is_file():
        return None, f"set {CED_REPO_ENV} to a RicherMans/CED checkout"
    skip = missing("torchaudio", "einops", "loguru")
    if skip:
        return None, skip
    sys.path.insert(0, repo)
    try:
        with _quiet():
            from models.audiotransformer import ced_base

            return ced_base(pretrained=False).eval(), ""
    except Exception as e:  # an incompatible checkout: skip the row, say why
        return None, f"CED checkout does not import ({type(e).__name__}: {e})"
    finally:
        sys.path.remove(repo)


def _ced_rows(s: Settings, tmp: str) -> list[Row]:
    upstream, skip = _upstream_ced_base()
    if upstream is None:
        ours = audiozoo.create("ced_base.as", pretrained=False)
    else:
        _randomize(upstream, 3)
        path = _tmp_checkpoint(upstream.state_dict(), tmp, "ced_base_upstream.pt")
        ours = audiozoo.create("ced_base.as", pretrained=path)  # the audio_transformer converter

    def run_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        return lambda: torch.sigmoid(ours(x))  # upstream returns probabilities

    def run_theirs(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        assert upstream is not None
        return lambda: upstream(x)

    return _speed_rows(
        "CED-base forward vs RicherMans/CED",
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


# BEATs_iter3's configuration as the unilm checkpoints store it (what speechbrain reads from "cfg")
_BEATS_CFG: dict[str, Any] = {
    "input_patch_size": 16,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "deep_norm": True,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": True,
    "num_buckets": 320,
    "max_distance": 800,
    "gru_rel_pos": True,
    "finetuned_model": False,
}


def _beats_rows(s: Settings, tmp: str) -> list[Row]:
    """BEATs encoder (frontend + 12 layers, the token sequence) vs speechbrain's port, one file."""
    skip = missing("speechbrain", "torchaudio")
    if skip:
        ours = audiozoo.create("beats.iter3", pretrained=False)
    else:
        with _quiet():
            upstream = _speechbrain_beats(_BEATS_CFG)
        _randomize(upstream, 3)
        path = _tmp_checkpoint({"cfg": _BEATS_CFG, "model": upstream.state_dict()}, tmp, "beats.pt")
        ours = audiozoo.create("beats.iter3", pretrained=path)  # through the "beats" converter

    def run_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        return lambda: ours.features(x).grid.permute(0, 3, 2, 1).flatten(1, 2)

    def run_theirs(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        lengths = torch.ones(b)
        return lambda: upstream.extract_features(x, lengths)[0]

    return _speed_rows(
        "BEATs forward vs speechbrain",
        run_ours,
        run_theirs,
        check=max_rel_diff,
        tol=MODEL_TOL,
        targets={8: 1.0},
        settings=s,
        repeats=s.model_repeats,
        skipped=skip,
        compare_name="rel",
    )


def _dasheng_rows(s: Settings, tmp: str) -> list[Row]:
    skip = missing("dasheng", "torchaudio")
    upstream = None
    if skip:
        ours = audiozoo.create("dasheng_base", pretrained=False)
    else:
        from dasheng.pretrained.pretrained import Dasheng

        with _quiet():
            upstream = Dasheng(embed_dim=768, depth=12, num_heads=12).eval()
        _randomize(upstream, 4)
        path = _tmp_checkpoint({"model": upstream.state_dict()}, tmp, "dasheng_base.pt")
        ours = audiozoo.create("dasheng_base", pretrained=path)

    def run_ours(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        return lambda: ours.embed(x, frames=True)

    def run_theirs(b: int) -> Callable[[], torch.Tensor]:
        x = _waves(b, s.seconds, 16000)
        assert upstream is not None
        return lambda: upstream(x)

    return _speed_rows(
        "Dasheng-base frame embeddings vs dasheng",
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


def _speechbrain_beats(cfg: dict[str, Any]) -> torch.nn.Module:
    """speechbrain's BEATs built with ``cfg`` (its constructor otherwise reads it from a file)."""
    from speechbrain.lobes.models import beats

    original = beats.BEATsConfig
    beats.BEATsConfig = lambda _=None: original(cfg)  # type: ignore[assignment,misc]
    try:
        return beats.BEATs(freeze=True).eval()
    finally:
        beats.BEATsConfig = original  # type: ignore[misc]


def _mn10_rows(s: Settings) -> list[Row]:
    fixture = s.fixtures / "efficientat" / "mn10_as.pt" if s.fixtures else None
    if fixture is not None and fixture.is_file():
        eager = audiozoo.create("mn10.as", pretrained=str(fixture))
    else:  # random weights with non-trivial BatchNorm statistics, so folding is tested
        eager = audiozoo.create("mn10.as", pretrained=False)
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for m in eager.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    fast = optimize_for_inference(eager)
    fast_nchw = optimize_for_inference(eager, channels_last=False)

    def run(model: torch.nn.Module) -> Callable[[int], Callable[[], torch.Tensor]]:
        def make(b: int) -> Callable[[], torch.Tensor]:
            x = _waves(b, s.seconds, 32000)
            return lambda: model(x)

        return make

    rows = _speed_rows(
        "mn10 optimize_for_inference vs eager",
        run(fast),
        run(eager),
        check=max_rel_diff,
        tol=MODEL_TOL,
        targets={8: 1.2},
        settings=s,
        repeats=s.model_repeats,
        compare_name="rel",
    )
    # the default channels-last layout against the same folding in NCHW: is it worth it here?
    rows += _speed_rows(
        "mn10 optimized: channels-last vs NCHW",
        run(fast),
        run(fast_nchw),
        check=max_rel_diff,
        tol=MODEL_TOL,
        targets={},
        settings=s,
        repeats=s.model_repeats,
        compare_name="rel",
    )
    return rows

"""PaSST vs hear21passt: identical random weights, saved in the upstream format, read through
audiozoo's ``passt`` converter; logits and embeddings must agree to 1e-3 (relative to the
largest value)."""

from __future__ import annotations

import contextlib
import io
import math
import warnings

import pytest
import torch

import audiozoo
from tests.parity_report import record_parity

pytest.importorskip("hear21passt", reason="hear21passt (parity extra) is not installed")

from hear21passt.models.passt import get_model
from hear21passt.models.preprocess import AugmentMelSTFT
from hear21passt.wrapper import PasstBasicWrapper

from audiozoo.heads.clip import LinearHead

RTOL = 1e-3

# (arch in hear21passt.get_model, get_model kwargs, audiozoo arch, frames per 10 s, frames per 3 s)
CASES = {
    "s10": ("passt_s_swa_p16_128_ap476", {}, "passt_s", 1000, 300),
    "s16": ("passt_s_p16_s16_128_ap468", {"fstride": 16, "tstride": 16}, "passt_s_s16", 1000, 300),
    "hop160": ("stfthop160", {"input_tdim": 2000}, "passt_s_hop160", 2000, 600),
}


def quiet(fn, *args, **kwargs):
    """hear21passt prints and warns on every build and first forward."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def realistic(module: torch.nn.Module, seed: int) -> None:
    """Random weights with trained-model-like spread (the default init makes every token nearly
    the same, which would hide errors in positions and token order)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name or name.startswith("head.0"):
                p.copy_(
                    (1.0 if name.endswith("weight") else 0.0)
                    + 0.1 * torch.randn(p.shape, generator=g)
                )
            elif p.ndim >= 2 and "pos_embed" not in name and "token" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def load_ours(arch: str, path, num_classes: int = 527):
    cfg = audiozoo.get_architecture(arch).cfg(None)
    backbone = audiozoo.get_architecture(arch).builder(**cfg.backbone_kwargs).eval()
    head = LinearHead(backbone.num_features, num_classes, norm=True, norm_eps=1e-5).eval()
    sd = audiozoo.get_converter("passt")(torch.load(path, weights_only=True))
    backbone.load_state_dict({k[9:]: v for k, v in sd.items() if k.startswith("backbone.")})
    head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")})
    return backbone, head


@pytest.mark.parametrize("case", list(CASES))
def test_passt_matches_hear21passt(case, tmp_path):
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    up_arch, kwargs, arch, long_t, short_t = CASES[case]
    upstream = quiet(get_model, arch=up_arch, pretrained=False, **kwargs).eval()
    realistic(upstream, seed=1)
    path = tmp_path / "passt.pt"
    torch.save(upstream.state_dict(), path)  # the release format: plain state dict
    backbone, head = load_ours(arch, path)

    g = torch.Generator().manual_seed(2)
    for frames in (long_t, short_t):
        spec = torch.randn(2, 1, 128, frames, generator=g)
        with torch.no_grad():
            logits_up, emb_up = quiet(upstream, spec)
            feats = backbone(spec)
            logits = head(feats)
        report = (case, frames, rel(logits, logits_up), rel(feats.token, emb_up))
        record_parity(
            "PaSST vs hear21passt",
            f"{case}, {frames} frames",
            {"logits rel": report[2], "embedding rel": report[3]},
        )
        assert rel(logits, logits_up) < RTOL, report
        assert rel(feats.token, emb_up) < RTOL, report
        # the random weights are informative: two inputs differ far beyond the tolerance
        assert rel(logits_up[0], logits_up[1]) > 10 * RTOL


def test_passt_end_to_end_with_hear21passt_wrapper(tmp_path):
    """Waveform -> hear21passt (mel + net) vs audiozoo StftMel + PaSST + linear head, with the
    wrapper's state dict (``net.*`` + ``device_proxy``) as the checkpoint."""
    stft_mel = pytest.importorskip("audiozoo.frontends.stft_mel")
    mel = AugmentMelSTFT(
        n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
        htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000,
    )  # fmt: skip
    net = quiet(get_model, arch="passt_s_swa_p16_128_ap476", pretrained=False)
    realistic(net, seed=3)
    wrapper = PasstBasicWrapper(mel=mel, net=net, mode="all").eval()
    path = tmp_path / "wrapper.pt"
    torch.save(wrapper.state_dict(), path)
    backbone, head = load_ours("passt_s", path)
    cfg = audiozoo.get_architecture("passt_s").cfg("as")
    frontend = stft_mel.StftMel(**{k: v for k, v in cfg.frontend.items() if k != "name"}).eval()

    g = torch.Generator().manual_seed(4)
    wave = 0.3 * torch.randn(1, 32000 * 10, generator=g)
    with torch.no_grad():
        out_up = quiet(wrapper, wave)  # [logits (527) | embedding (768)]
        feats = backbone(frontend(wave))
        logits = head(feats)
    report = (rel(logits, out_up[:, :527]), rel(feats.token, out_up[:, 527:]))
    record_parity(
        "PaSST end to end vs hear21passt wrapper (mel + net)",
        "10 s",
        {"logits rel": report[0], "embedding rel": report[1]},
    )
    assert report[0] < RTOL and report[1] < RTOL, report

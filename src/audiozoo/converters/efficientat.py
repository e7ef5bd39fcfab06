"""EfficientAT MobileNetV3 checkpoints (``mnXX_*.pt`` from the fschmid56/EfficientAT releases).

Upstream files are plain state dicts with ``features.*`` (the network) and ``classifier.*`` (the
head) keys. :class:`~audiozoo.backbones.mobilenet.MobileNetV3` keeps upstream's ``features``
nesting, including the shifted ``block.N`` indices of blocks without an expansion conv, so the
backbone needs only a prefix; the classifier's ``nn.Sequential`` indices become the named layers
of audiozoo's heads:

==================================  ======================  =================================
upstream head (``head_type``)        upstream keys           audiozoo head keys
==================================  ======================  =================================
``mlp`` (all ``*_as`` except fc)     ``classifier.2/5.*``    ``head.fc1.*`` / ``head.fc2.*``
``fully_convolutional`` (``_fc``)    ``classifier.0/1.*``    ``head.conv.*`` / ``head.bn.*``
``multihead_attention_pooling``      ``classifier.*``        ``head.*`` (same names)
==================================  ======================  =================================

BatchNorm ``num_batches_tracked`` counters are kept (audiozoo's BatchNorm layers have them too).
"""

from __future__ import annotations

from .base import BN_PARAMS, Converter, Rule, register_converter

__all__ = ["EFFICIENTAT", "HEAD_RULES"]

#: EfficientAT's two classifier layouts (also DyMN's, :mod:`audiozoo.converters.dymn`)
HEAD_RULES = (
    # mlp head: classifier.2.weight -> head.fc1.weight (Linear lastconv -> last_channel)
    Rule(r"classifier\.2\.(weight|bias)", r"head.fc1.\1"),
    # mlp head: classifier.5.bias -> head.fc2.bias (Linear last_channel -> classes)
    Rule(r"classifier\.5\.(weight|bias)", r"head.fc2.\1"),
    # fully convolutional head: classifier.0.weight -> head.conv.weight (1x1 conv, no bias)
    Rule(r"classifier\.0\.weight", r"head.conv.weight"),
    # fully convolutional head: classifier.1.running_var -> head.bn.running_var
    Rule(rf"classifier\.1\.{BN_PARAMS}", r"head.bn.\1"),
)

EFFICIENTAT = register_converter(
    Converter(
        "efficientat",
        (
            # features.4.block.2.conc_se_layers.0.fc1.weight -> backbone.features.4.block.2.conc_se_layers.0.fc1.weight
            Rule(r"features\.(.+)", r"backbone.features.\1"),
            *HEAD_RULES,
            # attention head: classifier.subspace_proj.weight -> head.subspace_proj.weight,
            # classifier.head_weight -> head.head_weight
            Rule(r"classifier\.(subspace_proj\.(?:weight|bias)|head_weight)", r"head.\1"),
        ),
    )
)

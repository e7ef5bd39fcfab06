"""Building blocks shared by several backbone families.

- :mod:`.transformer`: timm's ViT blocks (patch embedding, attention, MLP, block, stochastic
  depth) and token helpers, used by every transformer family; re-exported here.
- :mod:`.deit`: the distilled-ViT body of PaSST, fPaSST and AST.
- :mod:`.mobilenet`: EfficientAT's MobileNetV3 blocks and block table.
- :mod:`.efficientat`: the network around those blocks, shared by mn, DyMN and frame_mn.
"""

from .transformer import *  # noqa: F403
from .transformer import __all__ as __all__

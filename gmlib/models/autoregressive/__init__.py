"""Autoregressive models: one categorical per pixel given the pixels before it (chapter "Autoregressive models").

The package's modules, one job each: ``base`` (``AutoregressiveModel``, the
shared part: the chain rule's exact ``log_prob`` (eq-ar-chain-rule), ``loss``,
``conditionals``, the pixel-by-pixel ``sample``, input checks and the
generation ``order``), ``made`` (``MADE`` and its ``MaskedLinear``: a masked
perceptron, any order), ``pixelcnn`` (``PixelCNN``: masked convolutions in
raster order, plain or gated), ``transformer`` (``CausalTransformer``: a small
GPT with a KV-cached sampler) and ``receptive`` (``receptive_field``: which
input pixels a conditional reads, measured by gradients); every name is
re-exported here.
"""

from gmlib.models.autoregressive.base import AutoregressiveModel, checked_order, draw_levels
from gmlib.models.autoregressive.made import MADE, MADE_INPUTS, MaskedLinear, made_masks
from gmlib.models.autoregressive.pixelcnn import GatedBlock, MaskedConv2d, PixelCNN
from gmlib.models.autoregressive.receptive import RECEPTIVE_TOLERANCE, receptive_field
from gmlib.models.autoregressive.transformer import CausalTransformer

__all__ = [
    "MADE",
    "MADE_INPUTS",
    "RECEPTIVE_TOLERANCE",
    "AutoregressiveModel",
    "CausalTransformer",
    "GatedBlock",
    "MaskedConv2d",
    "MaskedLinear",
    "PixelCNN",
    "checked_order",
    "draw_levels",
    "made_masks",
    "receptive_field",
]

"""PixelCNN and the gated PixelCNN: masked convolutions in raster order (chapter "Autoregressive models").

``PixelCNN(gated=False)`` is the stack of masked convolutions of van den Oord
et al. 2016a ("Pixel Recurrent Neural Networks", section on PixelCNN), whose
field of view has a blind spot above and to the right of each pixel;
``PixelCNN(gated=True)`` is the gated PixelCNN of van den Oord et al. 2016b
("Conditional Image Generation with PixelCNN Decoders"), a vertical and a
horizontal stack that together see every past pixel within their reach.
"""

from typing import Literal

import torch
from torch import nn
from torch.nn.functional import conv2d, pad

from gmlib.models.autoregressive.base import AutoregressiveModel
from gmlib.validation import require_fraction, require_int


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution masked to the raster past: (batch, in, H, W) -> (batch, out, H, W), 'same' padding.

    The mask keeps the rows above the centre and, in the centre row, the
    columns left of the centre; mask "A" (first layer, reading the image)
    excludes the centre, mask "B" (later layers, whose centre already
    summarises only the past) includes it (van den Oord et al. 2016a).
    """

    def __init__(self, inputs: int, outputs: int, kernel: int, mask: str) -> None:
        super().__init__(inputs, outputs, kernel, padding=kernel // 2)
        centre = kernel // 2
        keep = torch.zeros(kernel, kernel)
        keep[:centre] = 1
        keep[centre, : centre + (mask == "B")] = 1
        self.register_buffer("mask", keep.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GatedBlock(nn.Module):
    """One layer of the gated PixelCNN (van den Oord et al. 2016b, Figure 2): (v, h) -> (v', h'), each (B, C, H, W).

    The vertical stack convolves rows r - k//2 .. r (a (k//2 + 1) x k kernel),
    so its output at row r sees rows <= r of its input, never a later row. The
    horizontal stack convolves columns c - k//2 .. c of row r (a 1 x (k//2 + 1)
    kernel), without column c in the first block ("A", which reads the image
    itself). Before the vertical features join the horizontal stack they are
    shifted down one row, so the horizontal stack at row r receives rows < r
    only; that link removes the blind spot of the plain stack. Activations are
    gated, tanh(f) * sigmoid(g) (eq. 2 of the paper); the horizontal stack has
    a residual connection except in the first block.
    """

    def __init__(self, inputs: int, channels: int, kernel: int, first: bool) -> None:
        super().__init__()
        half = kernel // 2
        self.first, self.channels = first, channels
        self.vertical = nn.Conv2d(inputs, 2 * channels, (half + 1, kernel), padding=(half, half))
        self.horizontal = nn.Conv2d(inputs, 2 * channels, (1, half + 1), padding=(0, half))
        keep = torch.ones(1, half + 1)
        if first:
            keep[0, -1] = 0  # mask A: the current pixel is not an input of its own conditional
        self.register_buffer("mask", keep.to(self.horizontal.weight.dtype))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = v.shape[-2:]
        v_features = self.vertical(v)[:, :, :height]  # (B, 2C, H, W): row r sees rows r - k//2 .. r
        shifted = pad(v_features, (0, 0, 1, 0))[:, :, :height]  # row r now holds row r - 1: rows < r only
        weight = self.horizontal.weight * self.mask
        h_features = conv2d(h, weight, self.horizontal.bias, padding=self.horizontal.padding)[..., :width]
        h_features = h_features + self.vertical_to_horizontal(shifted)  # (B, 2C, H, W)
        h_out = self.out(gate(h_features))
        return gate(v_features), h_out if self.first else h + h_out


def gate(features: torch.Tensor) -> torch.Tensor:
    """The gated activation tanh(f) * sigmoid(g) of features (B, 2C, H, W) split as [f, g] -> (B, C, H, W)."""
    f, g = features.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class PixelCNN(AutoregressiveModel):
    """A PixelCNN on side x side images in raster order: x (batch, side * side) -> logits (batch, side * side, L).

    The input is the one-hot code of the levels, L channels per pixel
    (``inputs="onehot"``), or the level scaled to [0, 1], one channel
    (``inputs="scaled"``: neighbouring levels look alike, which helps on 1000
    training images). ``layers`` masked k x k convolutions with ``channels``
    channels (mask A, then mask B), each followed by a ReLU and, when
    ``dropout > 0``, dropout, and a 1 x 1 convolution ``head`` to L logits per
    pixel (van den Oord et al. 2016a). With ``gated=True``, ``layers`` gated
    blocks (``GatedBlock``) replace them and the head reads the horizontal
    stack, after dropout (van den Oord et al. 2016b).

    Field of view of pixel (r, c) after n layers, h = kernel // 2: plain, row r
    - j (1 <= j <= n h) sees columns c - n h .. c + h min(n, j) (right-hand reach grows
    by h per row climbed: the columns beyond are the blind spot) and row r
    columns c - n h .. c - 1; gated, rows r - 1 - n h .. r - 1, columns
    c - n h .. c + n h, and row r columns c - n h .. c - 1.
    Raster order only.
    """

    def __init__(
        self,
        *,
        side: int = 8,
        levels: int,
        channels: int = 64,
        layers: int = 5,
        kernel: int = 3,
        gated: bool = False,
        inputs: Literal["onehot", "scaled"] = "onehot",
        dropout: float = 0.0,
    ) -> None:
        require_int("side", side, low=1)
        super().__init__(dim=side * side, levels=levels)
        require_int("channels", channels, low=1)
        require_int("layers", layers, low=1)
        require_int("kernel", kernel, low=1)
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (a centre pixel to mask), got {kernel}")
        if not isinstance(gated, bool):
            raise ValueError(f"gated must be a bool, got {gated!r}")
        if inputs not in ("onehot", "scaled"):
            raise ValueError(f"inputs must be 'onehot' or 'scaled', got {inputs!r}")
        require_fraction("dropout", dropout)
        self.inputs = inputs
        first = levels if inputs == "onehot" else 1
        self.side, self.channels, self.layers, self.kernel, self.gated = side, channels, layers, kernel, gated
        if gated:
            self.blocks = nn.ModuleList(
                GatedBlock(first if k == 0 else channels, channels, kernel, first=k == 0) for k in range(layers)
            )
            self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        else:
            convolutions: list[nn.Module] = []
            for k in range(layers):
                convolutions += [MaskedConv2d(first if k == 0 else channels, channels, kernel, "A" if k == 0 else "B")]
                convolutions.append(nn.ReLU())
                if dropout:
                    convolutions.append(nn.Dropout(dropout))
            self.blocks = nn.Sequential(*convolutions)
        self.head = nn.Conv2d(channels, levels, 1)

    def logits_from_onehot(self, onehot: torch.Tensor) -> torch.Tensor:
        """One-hot code (batch, D, L) -> logits (batch, D, L), D = side * side in raster order."""
        if self.inputs == "scaled":  # the level / (L - 1), differentiable in the one-hot code
            values = torch.linspace(0, 1, self.levels, dtype=onehot.dtype, device=onehot.device)
            image = (onehot @ values).reshape(-1, 1, self.side, self.side)  # (B, 1, H, W)
        else:
            image = onehot.transpose(1, 2).reshape(-1, self.levels, self.side, self.side)  # (B, L, H, W)
        if self.gated:
            v = h = image
            for block in self.blocks:
                v, h = block(v, h)
            features = self.dropout(torch.relu(h))
        else:
            features = self.blocks(image)  # (B, C, H, W)
        logits = self.head(features)  # (B, L, H, W)
        return logits.flatten(2).transpose(1, 2)  # (B, D, L)

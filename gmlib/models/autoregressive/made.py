"""MADE: a perceptron made autoregressive by masks (Germain et al. 2015; chapter "Autoregressive models")."""

from typing import Literal

import torch
from torch import nn
from torch.nn.functional import linear

from gmlib.models.autoregressive.base import AutoregressiveModel
from gmlib.validation import require_fraction, require_int

MadeInputs = Literal["onehot", "scaled"]
MADE_INPUTS: tuple[str, ...] = ("onehot", "scaled")


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask: (batch, in) -> (batch, out).

    ``mask`` (out, in): entry (o, i) = 1 keeps the connection from input i to
    output o (Germain et al. 2015: W * M). A masked weight receives a
    zero gradient and contributes an exact zero to the output.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight * self.mask, self.bias)


def made_masks(input_degrees: torch.Tensor, hidden_degrees: list[torch.Tensor], output_degrees: torch.Tensor):
    """The masks of a MADE from the degrees of its units (Germain et al. 2015).

    A hidden unit of degree m may see inputs of degree <= m and hidden units of
    degree <= m; an output of degree d may see hidden units of degree < d.
    Returns one (out, in) mask per layer, hidden layers first.
    """
    masks, previous = [], input_degrees
    for degrees in hidden_degrees:
        masks.append((degrees[:, None] >= previous[None, :]).float())
        previous = degrees
    masks.append((output_degrees[:, None] > previous[None, :]).float())
    return masks


class MADE(AutoregressiveModel):
    """Masked autoencoder for distribution estimation (Germain et al. 2015): x (batch, D) -> logits (batch, D, L).

    Degrees follow the paper: the input of the pixel at position k of ``order``
    has degree k + 1 (1..D), every hidden unit a degree m in 1..D-1, and the L
    outputs of the pixel at position k have degree k + 1; ``made_masks`` keeps
    a weight only along non-decreasing degrees, strictly increasing into the
    outputs. Every path from the input at position j to the output at position
    k then has j + 1 <= m <= k, so j < k: the autoregressive property. Hidden
    degrees cycle through 1..D-1 (the paper draws them at random): with
    ``hidden >= D - 1`` every conditional then sees its whole past.

    Args:
        dim, levels: D pixels with L levels each.
        hidden: units per hidden layer; layers: hidden layers (ReLU, then
            dropout when ``dropout > 0``).
        order: the generation order, a permutation of range(D), fixed at
            construction (None: raster order).
        inputs: "onehot", the one-hot code of each level (D * L inputs, pixel
            after pixel), or "scaled", each level as one number level / (L - 1)
            in [0, 1] (D inputs).
        direct: add masked direct connections from the inputs to the outputs
            (input position j to output position k > j), as Germain et al. do:
            the model then contains the linear autoregressive model, and the
            hidden layers only add what is non-linear.

    The output layer is ``head``, (D * L) units, pixel after pixel.
    """

    def __init__(
        self,
        *,
        dim: int,
        levels: int,
        hidden: int = 512,
        layers: int = 2,
        dropout: float = 0.0,
        order: object = None,
        inputs: MadeInputs = "onehot",
        direct: bool = False,
    ) -> None:
        super().__init__(dim=dim, levels=levels, order=order)
        require_int("hidden", hidden, low=1)
        require_int("layers", layers, low=1)
        require_fraction("dropout", dropout)
        if inputs not in MADE_INPUTS:
            raise ValueError(f"inputs must be one of {MADE_INPUTS}, got {inputs!r}")
        self.inputs, self.hidden, self.layers = inputs, hidden, layers
        pixel_degrees = self.rank + 1  # (D,): degree of pixel i's input and outputs
        repeat = levels if inputs == "onehot" else 1
        hidden_degrees = [torch.arange(hidden) % max(dim - 1, 1) + 1 for _ in range(layers)]
        masks = made_masks(
            pixel_degrees.repeat_interleave(repeat), hidden_degrees, pixel_degrees.repeat_interleave(levels)
        )
        blocks: list[nn.Module] = []
        for mask in masks[:-1]:
            blocks += [MaskedLinear(mask), nn.ReLU()]
            if dropout:
                blocks.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*blocks)
        self.head = MaskedLinear(masks[-1])
        if not isinstance(direct, bool):
            raise ValueError(f"direct must be a bool, got {direct!r}")
        input_degrees = pixel_degrees.repeat_interleave(repeat)
        output_degrees = pixel_degrees.repeat_interleave(levels)
        self.direct = MaskedLinear((output_degrees[:, None] > input_degrees[None, :]).float()) if direct else None
        self.register_buffer("scale", torch.arange(levels, dtype=torch.get_default_dtype()) / (levels - 1))

    def logits_from_onehot(self, onehot: torch.Tensor) -> torch.Tensor:
        """One-hot code (batch, D, L) -> logits (batch, D, L)."""
        if self.inputs == "scaled":
            h = onehot @ self.scale.to(onehot.dtype)  # (B, D): level / (L - 1)
        else:
            h = onehot.flatten(1)  # (B, D * L), pixel after pixel
        out = self.head(self.body(h))
        if self.direct is not None:
            out = out + self.direct(h)
        return out.view(-1, self.dim, self.levels)  # (B, D, L)

"""The one building block the model families share: a multilayer perceptron, alone or as independent replicas."""

import math

import torch
from torch import nn

from gmlib.validation import require_fraction, require_int


class ReplicaLinear(nn.Module):
    """``replicas`` independent affine maps: (replicas, batch, inputs) -> (replicas, batch, outputs).

    Replica r computes ``x[r] @ weight[r] + bias[r]``, one batched matrix
    product for all of them, so R small networks train in about the time of one
    (their parameters never mix, and Adam's update is per parameter, so each
    replica follows exactly its own training run). Each replica is initialised
    as ``nn.Linear`` initialises itself: uniform on +-1/sqrt(inputs).
    """

    def __init__(self, inputs: int, outputs: int, *, replicas: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(inputs)
        self.weight = nn.Parameter(torch.empty(replicas, inputs, outputs).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(replicas, 1, outputs).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.weight.shape[0] or x.shape[2] != self.weight.shape[1]:
            raise ValueError(
                f"x must have shape ({self.weight.shape[0]}, batch, {self.weight.shape[1]}), got {tuple(x.shape)}"
            )
        return torch.baddbmm(self.bias, x, self.weight)


def mlp(
    *,
    inputs: int,
    outputs: int,
    hidden: int = 64,
    layers: int = 1,
    negative_slope: float = 0.0,
    smooth: bool = False,
    dropout: float = 0.0,
    replicas: int | None = None,
) -> nn.Sequential:
    """A perceptron (batch, inputs) -> (batch, outputs) with ``layers`` hidden layers of width ``hidden``.

    Hidden units are ReLU (``negative_slope=0``, generators and VAEs), LeakyReLU
    (critics, as DCGAN recommends) or, with ``smooth=True``, SiLU: energies and
    scores need smooth units, since Langevin dynamics follows their input
    gradient, which a ReLU network makes piecewise constant. ``dropout > 0`` adds
    dropout after each of them.
    With ``replicas=R`` it is R independent perceptrons in one module,
    (R, batch, inputs) -> (R, batch, outputs), built from ``ReplicaLinear``.
    """
    for name, value in (("inputs", inputs), ("outputs", outputs), ("hidden", hidden), ("layers", layers)):
        require_int(name, value, low=1)
    if replicas is not None:
        require_int("replicas", replicas, low=1)
    require_fraction("dropout", dropout)
    if smooth and negative_slope:
        raise ValueError(f"smooth units take no negative_slope, got negative_slope={negative_slope!r}")

    def linear(a: int, b: int) -> nn.Module:
        return nn.Linear(a, b) if replicas is None else ReplicaLinear(a, b, replicas=replicas)

    sizes = [inputs] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        modules += [linear(a, b), _activation(negative_slope, smooth)]
        if dropout:
            modules.append(nn.Dropout(dropout))
    modules.append(linear(sizes[-1], outputs))
    return nn.Sequential(*modules)


def _activation(negative_slope: float, smooth: bool) -> nn.Module:
    if smooth:
        return nn.SiLU()
    return nn.LeakyReLU(negative_slope) if negative_slope else nn.ReLU()


def _dcgan_stages(side: int) -> int:
    """How many stride-2 stages take a 2 x 2 feature map to ``side`` x ``side`` (side = 2^(stages + 1) >= 8)."""
    if not isinstance(side, int) or side < 8 or side & (side - 1):
        raise ValueError(f"side must be a power of 2 >= 8, got {side!r}")
    return side.bit_length() - 2


def dcgan_generator(*, latent: int, side: int = 8, channels: int = 32) -> nn.Sequential:
    """A DCGAN generator (Radford et al. 2016): z (batch, latent) -> images flattened to (batch, side * side).

    No pooling and no fully connected hidden layer: a transposed convolution
    takes z (as a 1 x 1 map) to a 2 x 2 map, then each stride-2 transposed
    convolution doubles the side and halves the channels, with batch norm and
    ReLU after every layer but the last, whose output is tanh, in [-1, 1].
    For side 8: (latent, 1, 1) -> (2c, 2, 2) -> (c, 4, 4) -> (1, 8, 8).
    """
    require_int("latent", latent, low=1)
    require_int("channels", channels, low=1)
    stages = _dcgan_stages(side)
    widths = [channels * 2 ** (stages - 1 - k) for k in range(stages)] + [1]  # (2c, c, 1) for side 8
    modules: list[nn.Module] = [
        nn.Unflatten(1, (latent, 1, 1)),  # (B, latent) -> (B, latent, 1, 1)
        nn.ConvTranspose2d(latent, widths[0], kernel_size=2, bias=False),  # -> (B, w0, 2, 2)
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(),
    ]
    for k in range(stages):
        last = k == stages - 1
        modules.append(nn.ConvTranspose2d(widths[k], widths[k + 1], kernel_size=4, stride=2, padding=1, bias=last))
        modules += [nn.Tanh()] if last else [nn.BatchNorm2d(widths[k + 1]), nn.ReLU()]
    modules.append(nn.Flatten())  # (B, 1, side, side) -> (B, side * side)
    return nn.Sequential(*modules)


def dcgan_discriminator(*, side: int = 8, channels: int = 32) -> nn.Sequential:
    """A DCGAN discriminator: images flattened to (batch, side * side) -> one logit each, (batch, 1).

    Stride-2 convolutions instead of pooling, each halving the side and
    doubling the channels, LeakyReLU(0.2), batch norm on every layer but the
    first, and no fully connected layer: a last convolution reads the 2 x 2
    map to one number. For side 8: (1, 8, 8) -> (c, 4, 4) -> (2c, 2, 2) -> 1.
    """
    require_int("channels", channels, low=1)
    stages = _dcgan_stages(side)
    widths = [1] + [channels * 2**k for k in range(stages)]  # (1, c, 2c) for side 8
    modules: list[nn.Module] = [nn.Unflatten(1, (1, side, side))]  # (B, side^2) -> (B, 1, side, side)
    for k in range(stages):
        modules.append(nn.Conv2d(widths[k], widths[k + 1], kernel_size=4, stride=2, padding=1, bias=k == 0))
        modules += ([] if k == 0 else [nn.BatchNorm2d(widths[k + 1])]) + [nn.LeakyReLU(0.2)]
    modules += [nn.Conv2d(widths[-1], 1, kernel_size=2), nn.Flatten()]  # (B, w, 2, 2) -> (B, 1)
    return nn.Sequential(*modules)

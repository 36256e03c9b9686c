"""The one building block the model families share: a multilayer perceptron, alone or as independent replicas."""

import math

import torch
from torch import nn

from gmlib.validation import require_int


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
    dropout: float = 0.0,
    replicas: int | None = None,
) -> nn.Sequential:
    """A perceptron (batch, inputs) -> (batch, outputs) with ``layers`` hidden layers of width ``hidden``.

    Hidden units are ReLU (``negative_slope=0``, generators and VAEs) or LeakyReLU
    (critics, as DCGAN recommends); ``dropout > 0`` adds dropout after each of them.
    With ``replicas=R`` it is R independent perceptrons in one module,
    (R, batch, inputs) -> (R, batch, outputs), built from ``ReplicaLinear``.
    """
    for name, value in (("inputs", inputs), ("outputs", outputs), ("hidden", hidden), ("layers", layers)):
        require_int(name, value, low=1)
    if replicas is not None:
        require_int("replicas", replicas, low=1)
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")

    def linear(a: int, b: int) -> nn.Module:
        return nn.Linear(a, b) if replicas is None else ReplicaLinear(a, b, replicas=replicas)

    sizes = [inputs] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        modules += [linear(a, b), nn.LeakyReLU(negative_slope) if negative_slope else nn.ReLU()]
        if dropout:
            modules.append(nn.Dropout(dropout))
    modules.append(linear(sizes[-1], outputs))
    return nn.Sequential(*modules)

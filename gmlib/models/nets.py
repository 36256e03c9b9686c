"""The one building block the model families share: a multilayer perceptron."""

from torch import nn

from gmlib.validation import require_int


def mlp(
    *, inputs: int, outputs: int, hidden: int = 64, layers: int = 1, negative_slope: float = 0.0, dropout: float = 0.0
) -> nn.Sequential:
    """A perceptron (batch, inputs) -> (batch, outputs) with ``layers`` hidden layers of width ``hidden``.

    Hidden units are ReLU (``negative_slope=0``, generators and VAEs) or LeakyReLU
    (critics, as DCGAN recommends); ``dropout > 0`` adds dropout after each of them.
    """
    for name, value in (("inputs", inputs), ("outputs", outputs), ("hidden", hidden), ("layers", layers)):
        require_int(name, value, low=1)
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    sizes = [inputs] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        modules += [nn.Linear(a, b), nn.LeakyReLU(negative_slope) if negative_slope else nn.ReLU()]
        if dropout:
            modules.append(nn.Dropout(dropout))
    modules.append(nn.Linear(sizes[-1], outputs))
    return nn.Sequential(*modules)

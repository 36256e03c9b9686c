"""The networks a diffusion model learns: x_t, t (and a label) -> what the reverse step needs (chapter "Diffusion").

``Denoiser`` is a perceptron on [x_t, time features, label embedding]. What its
outputs mean is the model's choice (``DDPM(prediction=...)``): the noise eps
(Ho et al.'s eq-eps-mean), or logits over the pixel levels from which x_0's
posterior mean is read (``level_posterior_logits``).
"""

import math

import torch
from torch import nn

from gmlib.validation import require_int


def time_features(t: torch.Tensor, *, steps: int, dim: int) -> torch.Tensor:
    """Sinusoidal features of the timestep (Vaswani et al. 2017, as DDPM uses): t (batch,) -> (batch, dim).

    Frequencies are geometric from 1 to ``steps`` cycles over t/T in [0, 1], so
    neighbouring steps get distinct codes at every T; ``dim`` must be even.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    frequencies = torch.exp(torch.linspace(0, math.log(steps), dim // 2, device=t.device))
    angle = (t.to(frequencies.dtype) / steps)[:, None] * frequencies * math.pi
    return torch.cat([angle.sin(), angle.cos()], dim=1)


class Denoiser(nn.Module):
    """A perceptron (x_t (batch, dim), t (batch,), y (batch,) or None) -> (batch, outputs).

    The input is x_t, ``time_dim`` sinusoidal features of t, and, when
    ``classes`` is set, a learned embedding of the label y in 0..classes, where
    the extra label ``classes`` means "no label" (classifier-free guidance, Ho &
    Salimans 2022). Hidden layers are SiLU; ``layers`` of width ``hidden``.
    """

    def __init__(
        self,
        *,
        dim: int,
        outputs: int,
        steps: int,
        hidden: int = 256,
        layers: int = 3,
        time_dim: int = 32,
        classes: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("outputs", outputs), ("steps", steps), ("hidden", hidden)):
            require_int(name, value, low=1)
        require_int("layers", layers, low=1)
        if classes is not None:
            require_int("classes", classes, low=1)
        self.steps, self.time_dim, self.classes = steps, time_dim, classes
        self.label_embedding = None if classes is None else nn.Embedding(classes + 1, time_dim)
        width = dim + time_dim * (1 if classes is None else 2)
        blocks: list[nn.Module] = []
        for k in range(layers):
            blocks += [nn.Linear(width if k == 0 else hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(hidden, outputs))

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        parts = [xt, time_features(t, steps=self.steps, dim=self.time_dim).to(xt.dtype)]
        if self.label_embedding is not None:
            if y is None:
                y = torch.full_like(t, self.classes)
            parts.append(self.label_embedding(y))
        elif y is not None:
            raise ValueError("y given to a denoiser built without classes")
        return self.net(torch.cat(parts, dim=1))


def level_posterior_logits(xt: torch.Tensor, alpha_bar: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """log N(x_t; sqrt(abar_t) c_k, 1 - abar_t) for every pixel and level: (batch, D) -> (batch, D, K).

    Up to a constant per pixel, these are the logits of the exact posterior
    over the K levels c_k of one pixel under a flat prior (eq-level-posterior):
    at low noise their softmax rounds x_t / sqrt(abar_t) to the nearest level,
    the staircase no smooth network draws. ``alpha_bar`` (batch, 1).
    """
    mean = alpha_bar.sqrt()[..., None] * centres  # (batch, 1, K)
    return -((xt[..., None] - mean) ** 2) / (2 * (1 - alpha_bar)[..., None])

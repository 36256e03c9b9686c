"""The networks a diffusion model learns: x_t, t (and a label) -> what the reverse step needs (chapter "Diffusion").

``Denoiser`` is a perceptron on [x_t, time features, label embedding]. What its
outputs mean is the model's choice (``DDPM(prediction=...)``): the noise eps
(Ho et al.'s eq-eps-mean), or logits over the pixel levels from which x_0's
posterior mean is read (``level_posterior_logits``).
"""

import math

import torch
from torch import nn

from gmlib.validation import require_fraction, require_int


def time_features(log_snr: torch.Tensor, *, dim: int) -> torch.Tensor:
    """Sinusoidal features of the noise level (batch,) -> (batch, dim), read off its log signal-to-noise ratio.

    The level is log SNR_t = log(abar_t / (1 - abar_t)), which does not depend
    on how a schedule spaces its steps (Kingma et al. 2021); it is scaled by
    1/10 (about [-1, 1] for SNRs in 1e-4..1e4) and passed through sines and
    cosines of dim/2 frequencies from 1 to 200, geometrically spaced (the
    sinusoidal embedding of Vaswani et al. 2017, as DDPM uses for t). ``dim`` even.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    frequencies = torch.exp(torch.linspace(0, math.log(200), dim // 2, device=log_snr.device, dtype=log_snr.dtype))
    angle = (log_snr / 10)[:, None] * frequencies
    return torch.cat([angle.sin(), angle.cos()], dim=1)


class Denoiser(nn.Module):
    """A perceptron (x (batch, inputs), t (batch,), y (batch,) or None) -> (batch, outputs).

    The input is x (x_t, with any features computed from it), ``time_dim``
    sinusoidal features of the noise level of step t (``time_features`` of
    ``log_snr[t - 1]``), and, when ``classes`` is set, a learned embedding of
    the label y in 0..classes, where the extra label ``classes`` means "no
    label" (classifier-free guidance, Ho & Salimans 2022). ``layers`` hidden
    SiLU layers of width ``hidden``, each followed by dropout when
    ``dropout > 0``; the output layer starts at zero, so an untrained network
    adds nothing to what the model computes without it.
    """

    def __init__(
        self,
        *,
        inputs: int,
        outputs: int,
        log_snr: torch.Tensor,
        hidden: int = 256,
        layers: int = 3,
        time_dim: int = 32,
        dropout: float = 0.0,
        classes: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("inputs", inputs), ("outputs", outputs), ("hidden", hidden), ("layers", layers)):
            require_int(name, value, low=1)
        if classes is not None:
            require_int("classes", classes, low=1)
        require_fraction("dropout", dropout)
        self.time_dim, self.classes = time_dim, classes
        self.register_buffer("log_snr", log_snr.detach().float().clone())
        self.label_embedding = None if classes is None else nn.Embedding(classes + 1, time_dim)
        width = inputs + time_dim * (1 if classes is None else 2)
        blocks: list[nn.Module] = []
        for k in range(layers):
            blocks += [nn.Linear(width if k == 0 else hidden, hidden), nn.SiLU()]
            if dropout:
                blocks.append(nn.Dropout(dropout))
        last = nn.Linear(hidden, outputs)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*blocks, last)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x, time_features(self.log_snr[t - 1], dim=self.time_dim).to(x.dtype)]
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

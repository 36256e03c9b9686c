"""Denoising score matching (chapter "Energy-based models", eq-ebm-dsm).

A network s_theta(x~) learns the score grad log q_sigma(x~) of the data
blurred by N(0, sigma^2 I), without ever meeting a partition function: the
regression target grad log q(x~ | x) = -eps / sigma is known (Vincent 2011).
"""

import torch
from torch import nn

from gmlib.mcmc import langevin
from gmlib.models.nets import mlp
from gmlib.validation import require_finite, require_int, require_positive, require_shape


class ScoreModel(nn.Module):
    """A score network s_theta: R^d -> R^d for one noise level sigma.

    ``loss(x)`` is (sigma^2 / 2) E ||s_theta(x + sigma eps) + eps / sigma||^2,
    which equals (1/2) E ||eps_theta - eps||^2 with eps_theta = -sigma s_theta:
    the diffusion chapter's noise-prediction loss at one noise level.
    """

    def __init__(self, *, dim: int = 2, hidden: int = 128, layers: int = 2, sigma: float = 0.3) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        require_positive("sigma", sigma)
        self.dim, self.sigma = dim, float(sigma)
        self.net = mlp(inputs=dim, outputs=dim, hidden=hidden, layers=layers, smooth=True)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """s_theta(x): x (batch, dim) -> (batch, dim), an estimate of grad log q_sigma(x)."""
        require_shape("x", x, (None, self.dim))
        return self.net(x)

    def eps(self, x: torch.Tensor) -> torch.Tensor:
        """The implied noise prediction -sigma s_theta(x) (batch, dim) (eq-ebm-dsm)."""
        return -self.sigma * self.score(x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Denoising score matching on clean data x (batch, dim): a scalar."""
        require_shape("x", x, (None, self.dim))
        require_finite("x", x)
        eps = torch.randn_like(x)
        residual = self.sigma * self.score(x + self.sigma * eps) + eps  # sigma (s + eps / sigma)
        return 0.5 * (residual**2).sum(1).mean()

    def sample(self, n: int, *, steps: int = 500, step_size: float | None = None, spread: float = 3.0) -> torch.Tensor:
        """n draws (n, dim) of q_sigma by ULA on the learned score from N(0, spread^2 I)."""
        require_int("n", n, low=1)
        require_positive("spread", spread)
        param = next(self.parameters())
        start = spread * torch.randn(n, self.dim, device=param.device, dtype=param.dtype)
        eta = step_size if step_size is not None else self.sigma**2 / 10
        return langevin(start, score=self.score, step_size=eta, steps=steps).x

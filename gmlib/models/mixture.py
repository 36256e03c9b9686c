"""A Gaussian mixture density trained by maximum likelihood (chapter "MLE is KL minimisation").

With ``components=1`` it is the single Gaussian whose MLE is moment matching;
with enough components it can represent a mixture toy exactly, so its test NLL
can reach the data's entropy, the floor of Theorem 1.
"""

import torch
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal
from torch.nn.functional import softplus

from gmlib.validation import require_finite, require_int, require_nonempty, require_shape


class GaussianMixture(nn.Module):
    """p_theta(x) = sum_k pi_k N(x; mu_k, L_k L_k^T), x in R^dim.

    Parameters are unconstrained: mixture logits (K,), means (K, dim) and a
    lower-triangular factor whose diagonal passes through softplus, so every
    parameter value gives a valid density.
    """

    def __init__(
        self, *, dim: int = 2, components: int = 8, means: torch.Tensor | None = None, scale: float = 1.0
    ) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        require_int("components", components, low=1)
        if means is None:
            means = scale * torch.randn(components, dim)
        require_shape("means", means, (components, dim))
        require_finite("means", means)
        self.dim = dim
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(means.clone().float())
        # softplus(raw) = scale on the diagonal at initialisation
        raw_diag = torch.log(torch.expm1(torch.tensor(float(scale))))
        self.raw_tril = nn.Parameter(torch.diag_embed(torch.full((components, dim), float(raw_diag))))

    def scale_tril(self) -> torch.Tensor:
        """Cholesky factors (K, dim, dim) with positive diagonals."""
        lower = torch.tril(self.raw_tril, diagonal=-1)
        diag = softplus(torch.diagonal(self.raw_tril, dim1=-2, dim2=-1)) + 1e-5
        return lower + torch.diag_embed(diag)

    def distribution(self) -> MixtureSameFamily:
        """The model as a ``torch.distributions`` object with event shape (dim,)."""
        return MixtureSameFamily(
            Categorical(logits=self.logits), MultivariateNormal(self.means, scale_tril=self.scale_tril())
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_theta(x) for x (batch, dim) -> (batch,)."""
        require_shape("x", x, (None, self.dim))
        require_nonempty("x", x)
        require_finite("x", x)
        return self.distribution().log_prob(x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood, the empirical cross-entropy of eq. (mle-objective)."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Draw (n, dim) samples."""
        return self.distribution().sample((n,))

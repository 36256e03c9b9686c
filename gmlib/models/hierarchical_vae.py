"""A VAE with two stochastic layers, the hierarchical row of note 000's table (chapter "VAE").

Generative model, top down: z2 ~ N(0, I), z1 | z2 ~ N(mu(z2), diag s(z2)^2),
x | z1 ~ p_theta(x|z1) (the decoders of ``VAE``). Inference, bottom up as the
note writes it: z1 ~ q(z1|x), z2 ~ q(z2|z1), both diagonal Gaussians drawn by
reparameterisation. The bound is

    ELBO(x) = E_q[log p(x|z1) + log p(z1|z2) + log p(z2) - log q(z1|x) - log q(z2|z1)]

(eq-vae-hierarchical-elbo); ``reconstruction`` is the first term and ``kl`` the
one-draw estimate of the rest, E_q[log q(z1|x) + log q(z2|z1) - log p(z1|z2) -
log p(z2)], which is KL(q(z1|x) || p(z1)) plus the gap of the top layer's own
bound on log p(z1). ``layer_rates`` splits it per layer.
"""

import math

import torch
from torch.distributions import Distribution, Independent, Normal

from gmlib.models.nets import mlp
from gmlib.models.vae import VAE, DecoderKind
from gmlib.validation import require_int


def _diagonal_gaussian(h: torch.Tensor) -> Distribution:
    mu, log_var = h.chunk(2, dim=-1)
    return Independent(Normal(mu, (0.5 * log_var).exp()), 1)


class HierarchicalVAE(VAE):
    """Two latent layers z1 (latent_dim) and z2 (top_dim); x (batch, data_dim) as for ``VAE``.

    Args:
        top_dim: size of the top latent z2.
        top_hidden: units of the one hidden layer of q(z2|z1) and p(z1|z2).
        Other arguments as ``VAE`` (the prior is the hierarchy itself, so there is no ``prior`` option).
    """

    def __init__(
        self,
        *,
        data_dim: int = 64,
        latent_dim: int = 16,
        top_dim: int = 4,
        hidden: int = 400,
        top_hidden: int = 64,
        decoder: DecoderKind = "categorical",
        beta: float = 1.0,
        levels: int = 17,
        gaussian_std: float | None = 0.1,
        level_rank: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            data_dim=data_dim,
            latent_dim=latent_dim,
            hidden=hidden,
            decoder=decoder,
            beta=beta,
            levels=levels,
            gaussian_std=gaussian_std,
            level_rank=level_rank,
            dropout=dropout,
        )
        require_int("top_dim", top_dim, low=1)
        require_int("top_hidden", top_hidden, low=1)
        self.top_dim = top_dim
        self.top_encoder = mlp(inputs=latent_dim, hidden=top_hidden, outputs=2 * top_dim)
        self.top_decoder = mlp(inputs=top_dim, hidden=top_hidden, outputs=2 * latent_dim)

    # -- the two extra distributions ------------------------------------------------------------------------------
    def encode_top(self, z1: torch.Tensor) -> Distribution:
        """q(z2|z1) for z1 (*, latent_dim): batch shape (*), event shape (top_dim,)."""
        return _diagonal_gaussian(self.top_encoder(z1))

    def top_prior(self) -> Distribution:
        """p(z2) = N(0, I), event shape (top_dim,)."""
        zeros = self._zero.expand(self.top_dim)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def conditional_prior(self, z2: torch.Tensor) -> Distribution:
        """p(z1|z2) for z2 (*, top_dim): batch shape (*), event shape (latent_dim,)."""
        return _diagonal_gaussian(self.top_decoder(z2))

    def prior(self) -> Distribution:
        """p(z1) = integral of p(z1|z2) p(z2) dz2 has no closed form; ``sample`` draws from it ancestrally."""
        raise NotImplementedError("the hierarchical VAE's p(z1) has no closed form; use layer_rates, iwae or sample")

    # -- the terms of the bound -----------------------------------------------------------------------------------
    def _log_ratios(self, q: Distribution, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw z2 ~ q(z2|z1): (log q(z1|x) - log p(z1|z2), log q(z2|z1) - log p(z2)), each (*, batch)."""
        q_top = self.encode_top(z1)
        z2 = q_top.rsample()
        lower = q.log_prob(z1) - self.conditional_prior(z2).log_prob(z1)
        upper = q_top.log_prob(z2) - self.top_prior().log_prob(z2)
        return lower, upper

    def _kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        """One-draw estimate of E[log q(z1|x) + log q(z2|z1) - log p(z1|z2) - log p(z2)] at z1 = ``z``."""
        lower, upper = self._log_ratios(q, z)
        return lower + upper

    @torch.no_grad()
    def layer_rates(self, x: torch.Tensor, *, draws: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-layer rates (batch,) each, averaged over ``draws``: E[log q(z1|x)/p(z1|z2)], E[log q(z2|z1)/p(z2)].

        Their sum is ``kl``; a top rate near 0 means the top layer carries no information (it collapsed
        to its prior).
        """
        require_int("draws", draws, low=1)
        q = self.encode(x)
        lower, upper = self._log_ratios(q, q.sample((draws,)))
        return lower.mean(0), upper.mean(0)

    @torch.no_grad()
    def iwae(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log (1/k) sum_i p(x, z1_i, z2_i) / q(z1_i, z2_i | x), (z1_i, z2_i) ~ q (eq-vae-iwae) -> (batch,)."""
        require_int("k", k, low=1)
        q = self.encode(x)
        chunk = max(1, 16384 // x.shape[0])
        log_w = []
        for start in range(0, k, chunk):
            z1 = q.sample((min(chunk, k - start),))  # (c, batch, latent_dim)
            lower, upper = self._log_ratios(q, z1)
            log_w.append(self.reconstruction(x, z1) - lower - upper)
        return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral draw z2 ~ p(z2), z1 ~ p(z1|z2), x ~ p(x|z1): (n, data_dim)."""
        require_int("n", n, low=1)
        z2 = self.top_prior().sample((n,))
        return self.decode(self.conditional_prior(z2).sample()).sample()

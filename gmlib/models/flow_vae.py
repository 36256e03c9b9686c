"""A VAE whose posterior is a normalizing flow (flows chapter, eq-flow-free-energy).

Rezende & Mohamed (2015, Section 4) replace the Gaussian encoder of a VAE by
q_K(z_K | x): draw z_0 ~ N(mu(x), diag sigma(x)^2), then apply K planar layers
z_k = f_k(z_{k-1}) whose parameters (w_k, u_k, b_k) the encoder also outputs, one
set per image (an *amortised* flow). The free energy becomes

    F(x) = E_{q_0}[ log q_0(z_0) - sum_k log |1 + u_k^T psi_k(z_{k-1})| - log p(x, z_K) ],

so the bound needs only the forward layers: ``torch.distributions.TransformedDistribution``
draws z_K with ``rsample`` and, from the transforms' cache, scores it with ``log_prob``
without inverting anything.
"""

import math

import torch
from torch.distributions import Distribution, TransformedDistribution

from gmlib.models.flows import PlanarTransform, planar_u_hat
from gmlib.models.vae import VAE
from gmlib.validation import require_int


class FlowVAE(VAE):
    """``VAE`` with the posterior q_K(z|x) of ``flow_length`` amortised planar layers (eq-flow-free-energy).

    Args:
        flow_length: K, the number of planar layers after the Gaussian q_0(z|x).
        **vae_options: as for ``VAE`` (latent_dim, hidden, decoder, ...); the prior must be
            "standard" or "mixture" as there, and the KL term is always the one-sample
            Monte-Carlo estimate log q_K(z|x) - log p(z) (no closed form exists for q_K).

    The encoder outputs 2 * latent_dim numbers for q_0 and flow_length * (2 * latent_dim + 1)
    for the layers: w_k, raw u_k (latent_dim each) and b_k per image; u_k is made invertible by
    ``planar_u_hat``.
    """

    def __init__(self, *, flow_length: int = 8, **vae_options) -> None:
        require_int("flow_length", flow_length, low=1)
        self.flow_length = flow_length  # read by _encoder_outputs during VAE.__init__
        super().__init__(**vae_options)

    def _encoder_outputs(self) -> int:
        return 2 * self.latent_dim + self.flow_length * (2 * self.latent_dim + 1)

    def _posterior(self, h) -> Distribution:
        """q_K(z|x) for encoder outputs h (batch, _encoder_outputs()): q_0 pushed through K planar layers."""
        d = self.latent_dim
        gaussian, layers = h.split([2 * d, h.shape[-1] - 2 * d], dim=-1)
        w, u, b = layers.unflatten(-1, (self.flow_length, 2 * d + 1)).split([d, d, 1], dim=-1)  # (batch, K, .)
        transforms = [
            PlanarTransform(w[:, k], planar_u_hat(w[:, k], u[:, k]), b[:, k, 0]) for k in range(self.flow_length)
        ]
        return TransformedDistribution(super()._posterior(gaussian), transforms)

    def identity_layers(self, batch: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Layer parameters (batch, flow_length * (2 * latent_dim + 1)) that make every planar layer the identity.

        With w random and raw u = c w / |w|^2, c = log(e - 1) = softplus^{-1}(1), the reparameterised
        u_hat = u + (softplus(c) - 1 - c) w / |w|^2 is 0, so f(z) = z; the gradient in u_hat is
        tanh(w^T z + b), not 0, so training moves the layers away from the identity. Small raw
        parameters would *not* give the identity: u_hat = u - 0.31 w / |w|^2 is then large.
        """
        require_int("batch", batch, low=1)
        d, k = self.latent_dim, self.flow_length
        w = torch.randn(batch, k, d, generator=generator, dtype=self._zero.dtype).to(self._zero.device)
        u = math.log(math.e - 1) * w / (w * w).sum(-1, keepdim=True)
        return torch.cat([w, u, torch.zeros_like(w[..., :1])], dim=-1).flatten(1)

    def _kl(self, q: Distribution, z):
        """log q_K(z|x) - log p(z) at z (*, batch, latent) -> (*, batch): the Monte-Carlo KL term."""
        return q.log_prob(z) - self.prior().log_prob(z)

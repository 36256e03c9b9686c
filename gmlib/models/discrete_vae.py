"""The discrete VAE of note 000's table: categorical latents trained with the Gumbel-softmax relaxation.

z is ``groups`` independent one-hot variables of ``categories`` classes each,
with a uniform prior. Training draws the *relaxed* sample of the concrete /
Gumbel-softmax distribution (Jang et al. 2017; Maddison et al. 2017),
z_c = softmax((log pi_c + g_c) / tau), g_c ~ Gumbel(0, 1), which is
differentiable in the logits; the reported ``elbo`` and ``iwae`` use *hard*
one-hot samples, so they are true bounds on log p(x) for the discrete model.
Chapter "VAE", eq-vae-gumbel.
"""

import torch
from torch.distributions import Distribution, Independent, OneHotCategorical, RelaxedOneHotCategorical

from gmlib.models.vae import VAE, DecoderKind
from gmlib.validation import require_int, require_positive


class DiscreteVAE(VAE):
    """A VAE whose latent is ``groups`` one-hot categoricals of ``categories`` classes; x (batch, data_dim).

    ``temperature`` is tau of the relaxation used in ``loss``: small tau gives
    nearly one-hot samples with high-variance gradients, large tau smooth samples
    far from the discrete model the ELBO scores.
    """

    def __init__(
        self,
        *,
        data_dim: int = 64,
        groups: int = 8,
        categories: int = 10,
        hidden: int = 400,
        temperature: float = 0.5,
        decoder: DecoderKind = "categorical",
        beta: float = 1.0,
        levels: int = 17,
        gaussian_std: float = 0.1,
        level_rank: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        require_int("groups", groups, low=1)
        require_int("categories", categories, low=2)
        require_positive("temperature", temperature)
        super().__init__(
            data_dim=data_dim,
            latent_dim=groups * categories,
            hidden=hidden,
            decoder=decoder,
            prior="standard",
            beta=beta,
            levels=levels,
            gaussian_std=gaussian_std,
            level_rank=level_rank,
            dropout=dropout,
        )
        self.groups, self.categories, self.temperature = groups, categories, float(temperature)

    def _encoder_outputs(self) -> int:
        return self.latent_dim  # one logit per class and group

    def _posterior(self, h: torch.Tensor) -> Distribution:
        return Independent(OneHotCategorical(logits=h.unflatten(-1, (self.groups, self.categories))), 1)

    def _draw(self, q: Distribution, k: int | None, *, relaxed: bool) -> torch.Tensor:
        """A hard one-hot sample (batch, groups, categories), or the relaxed one of eq-vae-gumbel."""
        shape = () if k is None else (k,)
        if not relaxed:
            return q.sample(shape)
        temperature = torch.tensor(self.temperature, device=q.base_dist.logits.device)
        return RelaxedOneHotCategorical(temperature, logits=q.base_dist.logits).rsample(shape)

    def _decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        return z.flatten(-2)  # (*, groups * categories)

    def prior(self) -> Distribution:
        """Uniform p(z): each group one of ``categories`` classes with probability 1/categories."""
        logits = self._zero.expand(self.groups, self.categories)
        return Independent(OneHotCategorical(logits=logits), 1)

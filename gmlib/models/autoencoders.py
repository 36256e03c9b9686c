"""Autoencoders beside the VAE (chapter "VAE", sections on the plain and the adversarial autoencoder).

``Autoencoder`` is the plain autoencoder of note 004: a deterministic code
z = f_phi(x) and a decoder p_theta(x|z), trained on the reconstruction term
alone, with no prior term. ``sample`` decodes z ~ N(0, I), which is what
sampling from its code space means when nothing made the codes follow that
prior: the chapter measures that it fails.

``AdversarialAutoencoder`` is the AAE of note 000's table (Makhzani et al.
2016): the same autoencoder plus a discriminator on z that tells codes f_phi(x)
from prior draws z ~ p(z); the encoder is trained to fool it, which replaces
the VAE's KL term by an adversarial match of the aggregate posterior
q(z) = E_x[delta(z - f_phi(x))] to p(z) (the non-saturating GAN objective of
the chapter "GANs").

Both use the VAE's per-pixel categorical decoder over ``levels`` gray levels,
so their reconstruction terms are log-likelihoods in nats.
"""

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal
from torch.nn.functional import softplus

from gmlib.models.nets import mlp
from gmlib.models.vae import LevelLogits
from gmlib.validation import require_int, require_levels, require_nonempty, require_positive, require_shape


class Autoencoder(nn.Module):
    """z = f_phi(x) (batch, latent_dim), x ~ p_theta(x|z) categorical per pixel; x (batch, data_dim) levels.

    Args:
        data_dim: pixels per image (64 for the 8x8 digits).
        latent_dim: size of the code z.
        hidden: units of the one hidden layer of encoder and decoder.
        levels: gray levels per pixel; x holds integers 0..levels-1.
        level_rank: None for ``levels`` free logits per pixel, or the rank of ``LevelLogits``.
        dropout: dropout rate after the hidden layers (0 = none).
    """

    def __init__(
        self,
        *,
        data_dim: int = 64,
        latent_dim: int = 2,
        hidden: int = 400,
        levels: int = 17,
        level_rank: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("data_dim", data_dim, 1),
            ("latent_dim", latent_dim, 1),
            ("hidden", hidden, 1),
            ("levels", levels, 2),
        ):
            require_int(name, value, low=low)
        if level_rank is not None:
            require_int("level_rank", level_rank, low=1)
        self.data_dim, self.latent_dim, self.levels = data_dim, latent_dim, levels
        self.encoder = mlp(inputs=data_dim, hidden=hidden, outputs=latent_dim, dropout=dropout)
        per_pixel = levels if level_rank is None else level_rank
        self.decoder = mlp(inputs=latent_dim, hidden=hidden, outputs=data_dim * per_pixel, dropout=dropout)
        if level_rank is not None:
            self.decoder.append(LevelLogits(pixels=data_dim, levels=levels, rank=level_rank))
        self.register_buffer("_zero", torch.zeros(()))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code f_phi(x): x (batch, data_dim) levels -> (batch, latent_dim)."""
        x = self._checked(x)
        return self.encoder(x.to(self._zero.dtype) / (self.levels - 1))

    def prior(self) -> Distribution:
        """N(0, I) on the code space, event shape (latent_dim,): what ``sample`` draws codes from."""
        zeros = self._zero.expand(self.latent_dim)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p_theta(x|z) for z (*, latent_dim): a categorical per pixel, event shape (data_dim,)."""
        logits = self.decoder(z).unflatten(-1, (self.data_dim, self.levels))
        return Independent(Categorical(logits=logits), 1)

    @torch.no_grad()
    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z] (*, data_dim), the probability-weighted level of each pixel."""
        probs = self.decode(z).base_dist.probs
        return (probs * torch.arange(self.levels, device=z.device)).sum(-1)

    def reconstruction(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z): x (batch, data_dim), z (*, batch, latent_dim) -> (*, batch)."""
        return self.decode(z).log_prob(self._checked(x).long())

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction negative log-likelihood -log p_theta(x | f_phi(x)); no prior term."""
        return -self.reconstruction(x, self.encode(x)).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """x ~ p_theta(x|z) at z ~ N(0, I): (n, data_dim) integer levels."""
        require_int("n", n, low=1)
        return self.decode(self.prior().sample((n,))).sample()

    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        """Refuse x that is not a batch of integer pixel levels, naming the allowed range."""
        require_shape("x", x, (None, self.data_dim))
        require_nonempty("x", x)
        require_levels("x", x, self.levels)
        return x


class AdversarialAutoencoder(Autoencoder):
    """An autoencoder whose codes are pushed towards p(z) = N(0, I) by a discriminator on z (Makhzani et al. 2016).

    The trainer alternates ``discriminator_loss`` (the discriminator tells prior
    draws, label 1, from codes f_phi(x), label 0) and ``generator_loss``
    (reconstruction NLL plus ``adversarial_weight`` times the non-saturating
    loss -log D(f_phi(x)) of the encoder). ``generator`` is the encoder and the
    decoder; ``loss`` is the generator's loss.

    Args:
        adversarial_weight: weight of the encoder's adversarial term, in nats per image.
        discriminator_hidden: units of the discriminator's two hidden (LeakyReLU) layers.
        Other arguments as ``Autoencoder``.
    """

    def __init__(
        self, *, adversarial_weight: float = 1.0, discriminator_hidden: int = 64, **autoencoder: int | float | None
    ) -> None:
        super().__init__(**autoencoder)
        require_positive("adversarial_weight", adversarial_weight)
        require_int("discriminator_hidden", discriminator_hidden, low=1)
        self.adversarial_weight = float(adversarial_weight)
        self.discriminator = mlp(
            inputs=self.latent_dim, hidden=discriminator_hidden, layers=2, outputs=1, negative_slope=0.2
        )

    @property
    def generator(self) -> nn.Module:
        """The encoder and the decoder: the parameters ``generator_loss`` trains."""
        return nn.ModuleList([self.encoder, self.decoder])

    def discriminator_loss(self, x: torch.Tensor) -> torch.Tensor:
        """-E_p(z)[log D(z)] - E_x[log(1 - D(f_phi(x)))] with D = sigmoid(logit); codes detached."""
        codes = self.encode(x).detach()
        prior = self.prior().sample((len(x),))
        return softplus(-self.discriminator(prior)).mean() + softplus(self.discriminator(codes)).mean()

    def generator_loss(self, x: torch.Tensor) -> torch.Tensor:
        """-log p_theta(x | f_phi(x)) - adversarial_weight * log D(f_phi(x)), batch mean (non-saturating)."""
        z = self.encode(x)
        fool = softplus(-self.discriminator(z)).squeeze(-1)  # -log D(z)
        return (-self.reconstruction(x, z) + self.adversarial_weight * fool).mean()

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's loss (the trainer alternates it with ``discriminator_loss``)."""
        return self.generator_loss(x)

"""Variational autoencoders (chapter "VAE").

``VAE`` is the model of note 002's demo: an encoder MLP x -> (mu, log sigma^2)
of q_phi(z|x) = N(mu, diag sigma^2), the reparameterised draw
z = mu + sigma * eps (``rsample``), and a decoder MLP z -> p_theta(x|z). The
decoder kind and the prior kind are options; ``beta`` weighs the KL term of the
training loss (beta-VAE), while ``elbo`` is always the bound itself (beta = 1).

Every ELBO term has its own method, numbered as in the chapter:
``reconstruction`` is E_q[log p(x|z)] (eq-vae-elbo-split), ``kl`` is
KL(q(z|x) || p(z)) (eq-vae-gaussian-kl for the standard prior), ``elbo`` their
difference, and ``iwae`` the importance-weighted bound (eq-vae-iwae).
"""

import math
from typing import Literal

import torch
from torch import nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
    kl_divergence,
)
from torch.nn.functional import softplus

from gmlib.models.nets import mlp
from gmlib.validation import (
    require_finite,
    require_fraction,
    require_int,
    require_levels,
    require_nonempty,
    require_positive,
    require_shape,
)

DecoderKind = Literal["categorical", "bernoulli", "gaussian"]
PriorKind = Literal["standard", "mixture"]
DECODER_KINDS: tuple[str, ...] = ("categorical", "bernoulli", "gaussian")
PRIOR_KINDS: tuple[str, ...] = ("standard", "mixture")


class LevelLogits(nn.Module):
    """Categorical logits (*, pixels * levels) of rank ``rank`` per pixel: h (*, pixels * rank) -> h @ B + c.

    Each pixel's ``levels`` logits are a combination of ``rank`` level profiles B (rank, levels) shared by
    all pixels, plus a per-pixel, per-level bias c (pixels, levels): still a full categorical
    distribution per pixel, with far fewer decoder weights than ``levels`` free logits per pixel.
    """

    def __init__(self, *, pixels: int, levels: int, rank: int) -> None:
        super().__init__()
        self.pixels, self.rank = pixels, rank
        self.profiles = nn.Parameter(torch.randn(rank, levels) / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(pixels, levels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h.unflatten(-1, (self.pixels, self.rank)) @ self.profiles + self.bias).flatten(-2)


class VAE(nn.Module):
    """p_theta(x, z) = p(z) p_theta(x|z) with encoder q_phi(z|x), x (batch, data_dim).

    Args:
        data_dim: pixels per image (64 for the 8x8 digits).
        latent_dim: size of z (2 for the note's demo).
        hidden: units of the one hidden layer of encoder and decoder.
        decoder: "categorical": each pixel a Categorical over ``levels`` values,
            x holds integer levels 0..levels-1 (a proper likelihood, in nats per image);
            "bernoulli": the note's binary cross-entropy on x in [0, 1] (scaled
            gray levels; not a normalised density unless x is binary);
            "gaussian": N(x; mu_theta(z), gaussian_std^2) with a fixed std, the
            note-004 "L2 loss", on real x; with ``gaussian_std=None`` the decoder
            outputs a mean and a standard deviation per pixel (note 002), the std
            floored at ``std_floor`` (on discrete data the likelihood is unbounded
            as a std tends to 0, so the floor is what bounds it).
        prior: "standard" N(0, I), or "mixture", a learned mixture of
            ``components`` diagonal Gaussians (the KL is then estimated by Monte Carlo).
        beta: weight of the KL term in ``loss`` (beta-VAE, eq-vae-beta).
        level_rank: for the categorical decoder, None gives every pixel ``levels`` free logits (the
            decoder's last layer has hidden * data_dim * levels weights); an int r gives them through
            ``LevelLogits`` of rank r, which overfits 1000 training images far less.
        dropout: dropout rate after the hidden layer of encoder and decoder (a regulariser; 0 = none).
    """

    def __init__(
        self,
        *,
        data_dim: int = 64,
        latent_dim: int = 2,
        hidden: int = 400,
        decoder: DecoderKind = "categorical",
        prior: PriorKind = "standard",
        components: int = 10,
        beta: float = 1.0,
        levels: int = 17,
        gaussian_std: float | None = 0.1,
        level_rank: int | None = None,
        dropout: float = 0.0,
        std_floor: float = 1e-3,
    ) -> None:
        super().__init__()
        for name, value, low in (("data_dim", data_dim, 1), ("latent_dim", latent_dim, 1), ("hidden", hidden, 1)):
            require_int(name, value, low=low)
        require_int("components", components, low=1)
        require_int("levels", levels, low=2)
        if decoder not in DECODER_KINDS:
            raise ValueError(f"decoder must be one of {DECODER_KINDS}, got {decoder!r}")
        if prior not in PRIOR_KINDS:
            raise ValueError(f"prior must be one of {PRIOR_KINDS}, got {prior!r}")
        require_positive("beta", beta)
        if gaussian_std is not None:
            require_positive("gaussian_std", gaussian_std)
        require_positive("std_floor", std_floor)
        require_fraction("dropout", dropout)
        self.data_dim, self.latent_dim, self.levels = data_dim, latent_dim, levels
        self.decoder_kind, self.prior_kind = decoder, prior
        self.beta = float(beta)
        self.gaussian_std = None if gaussian_std is None else float(gaussian_std)
        self.std_floor = float(std_floor)
        self.encoder = mlp(inputs=data_dim, hidden=hidden, outputs=self._encoder_outputs(), dropout=dropout)
        if level_rank is not None:
            require_int("level_rank", level_rank, low=1)
            if decoder != "categorical":
                raise ValueError(f"level_rank applies to the categorical decoder only, got decoder={decoder!r}")
        per_pixel = {"categorical": levels if level_rank is None else level_rank}.get(decoder, 1)
        if decoder == "gaussian" and gaussian_std is None:
            per_pixel = 2  # a mean and a standard deviation per pixel
        self.decoder = mlp(inputs=self._decoder_inputs(), hidden=hidden, outputs=data_dim * per_pixel, dropout=dropout)
        if level_rank is not None:
            self.decoder.append(LevelLogits(pixels=data_dim, levels=levels, rank=level_rank))
        self.register_buffer("_zero", torch.zeros(()))
        if prior == "mixture":
            self.prior_logits = nn.Parameter(torch.zeros(components))
            self.prior_means = nn.Parameter(torch.randn(components, latent_dim))
            self.prior_raw_std = nn.Parameter(torch.zeros(components, latent_dim))  # softplus(0) = 0.69

    # -- the latent variable: overridden by DiscreteVAE -------------------------------------------------------------
    def _encoder_outputs(self) -> int:
        return 2 * self.latent_dim

    def _decoder_inputs(self) -> int:
        return self.latent_dim

    def _posterior(self, h: torch.Tensor) -> Distribution:
        mu, log_var = h.chunk(2, dim=-1)
        return Independent(Normal(mu, (0.5 * log_var).exp()), 1)

    def _draw(self, q: Distribution, k: int | None, *, relaxed: bool) -> torch.Tensor:
        """z ~ q by reparameterisation z = mu + sigma * eps (eq-vae-reparam): (k, batch, latent) or (batch, latent)."""
        return q.rsample(() if k is None else (k,))

    def _decoder_input(self, z: torch.Tensor) -> torch.Tensor:
        return z

    # -- the three distributions ------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> Distribution:
        """q_phi(z|x) for x (batch, data_dim); a distribution with batch shape (batch,)."""
        return self._posterior(self.encoder(self._features(self._checked(x))))

    def posterior(self, params: torch.Tensor) -> Distribution:
        """q(z|x) from its parameters (batch, n): what ``encode`` builds from the encoder's output.

        Taking the parameters directly lets a chapter optimise one posterior per image on a
        fixed decoder (non-amortised inference), with the same family as the encoder's.
        """
        require_shape("params", params, (None, self._encoder_outputs()))
        return self._posterior(params)

    def prior(self) -> Distribution:
        """p(z), event shape (latent_dim,): N(0, I) or the learned Gaussian mixture."""
        if self.prior_kind == "standard":
            zeros = self._zero.expand(self.latent_dim)
            return Independent(Normal(zeros, torch.ones_like(zeros)), 1)
        components = Independent(Normal(self.prior_means, softplus(self.prior_raw_std) + 1e-4), 1)
        return MixtureSameFamily(Categorical(logits=self.prior_logits), components)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p_theta(x|z) for z (*, latent): event shape (data_dim,), batch shape (*)."""
        out = self.decoder(self._decoder_input(z))
        if self.decoder_kind == "categorical":
            return Independent(Categorical(logits=out.unflatten(-1, (self.data_dim, self.levels))), 1)
        if self.decoder_kind == "bernoulli":
            # validate_args=False lets log_prob take gray levels in [0, 1]: it is then -BCE, as in the note's demo
            return Independent(Bernoulli(logits=out, validate_args=False), 1)
        if self.gaussian_std is None:  # (*, data_dim, 2): mean and std per pixel, std >= std_floor
            mean, raw_std = out.unflatten(-1, (self.data_dim, 2)).unbind(-1)
            return Independent(Normal(mean, self.std_floor + softplus(raw_std)), 1)
        return Independent(Normal(out, torch.full_like(out, self.gaussian_std)), 1)

    @torch.no_grad()
    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z] (*, data_dim): the image a decoder "predicts" (a probability-weighted level for categorical)."""
        p = self.decode(z).base_dist
        if self.decoder_kind == "categorical":
            return (p.probs * torch.arange(self.levels, device=z.device)).sum(-1)
        return p.mean

    # -- the terms of the ELBO --------------------------------------------------------------------------------------
    def reconstruction(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z), x (batch, data_dim), z (*, batch, latent) -> (*, batch): one-sample reconstruction term."""
        return self.decode(z).log_prob(self._target(self._checked(x)))

    def kl(self, x: torch.Tensor, *, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) -> (batch,): closed form (eq-vae-gaussian-kl) for the standard prior, else the
        one-sample estimate log q(z|x) - log p(z) at ``z`` (drawn from q when not given)."""
        q = self.encode(x)
        return self._kl(q, self._draw(q, None, relaxed=False) if z is None else z)

    def _kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        if self.prior_kind == "standard":
            return kl_divergence(q, self.prior())
        return q.log_prob(z) - self.prior().log_prob(z)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """One-sample estimate of ELBO(x) = E_q[log p(x|z)] - KL(q || p(z)) (eq-vae-elbo-split) -> (batch,)."""
        q = self.encode(x)
        z = self._draw(q, None, relaxed=False)
        return self.reconstruction(x, z) - self._kl(q, z)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of -(reconstruction - beta * KL) over the batch (eq-vae-beta; beta = 1 is the negative ELBO)."""
        q = self.encode(x)
        z = self._draw(q, None, relaxed=True)
        return -(self.reconstruction(x, z) - self.beta * self._kl(q, z)).mean()

    @torch.no_grad()
    def iwae(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q (eq-vae-iwae) -> (batch,).

        IWAE_1 is the ELBO; the bound rises with k towards log p(x) (Burda et al. 2016).
        Samples are processed in chunks so that k * batch can be large.
        """
        require_int("k", k, low=1)
        q = self.encode(x)
        chunk = max(1, 16384 // x.shape[0])
        log_w = []
        for start in range(0, k, chunk):
            z = self._draw(q, min(chunk, k - start), relaxed=False)  # (c, batch, ...)
            log_w.append(self.reconstruction(x, z) + self.prior().log_prob(z) - q.log_prob(z))
        return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """x ~ p_theta(x|z), z ~ p(z): (n, data_dim) (integer levels for the categorical decoder)."""
        require_int("n", n, low=1)
        return self.decode(self.prior().sample((n,))).sample()

    # -- input checks -----------------------------------------------------------------------------------------------
    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        """Refuse x outside the decoder's support, naming the allowed range."""
        require_shape("x", x, (None, self.data_dim))
        require_nonempty("x", x)
        if x.is_floating_point():
            require_finite("x", x)
        if self.decoder_kind == "categorical":
            require_levels("x", x, self.levels)
        elif self.decoder_kind == "bernoulli" and ((x < 0).any() or (x > 1).any()):
            raise ValueError(
                f"x must lie in [0, 1] for the bernoulli decoder, got values in {x.min().item():g}..{x.max().item():g}"
            )
        return x

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder input: levels scaled to [0, 1] for the categorical decoder, x itself otherwise."""
        dtype = self._zero.dtype
        return x.to(dtype) / (self.levels - 1) if self.decoder_kind == "categorical" else x.to(dtype)

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        return x.long() if self.decoder_kind == "categorical" else x.to(self._zero.dtype)

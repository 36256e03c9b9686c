"""The GAN family as distance minimisation (book chapter "GANs").

One ``Critic`` holds every variational bound the chapter derives: for an
f-divergence (KL, reverse KL, Pearson chi^2, squared Hellinger, JS, and the
original GAN's) it maximises E_P[T] - E_Q[f*(T)] with T = activation(V(x))
(eq. (eq-f-bound)); for the Wasserstein distance it maximises
E_P[V] - E_Q[V] over (approximately) 1-Lipschitz V, enforced by weight
clipping or a gradient penalty (eq. (eq-kr-duality)).

* ``GAN``: an ``AdversarialModel``, a generator against a ``Critic``
  (Algorithm 1; the vanilla GAN is ``distance="gan"``, WGAN is
  ``distance="wasserstein"``, f-GAN any other f-divergence).
* ``DivergenceEstimator``: a ``Critic`` trained against a *fixed* distribution
  Q, a likelihood-free ``GenerativeModel`` whose ``estimate`` is the bound.
* ``MomentMatchingGenerator``: a generator trained with no critic at all, on
  the MMD or sliced Wasserstein distance to the real batch.

Each takes ``replicas=R`` to train R independent copies at once (GAN training
varies with the seed, and the chapter shows the spread): the networks are
``ReplicaLinear`` perceptrons, a real batch (R * b, dim) from the trainer is
dealt out b to each replica, samples come as (R, n, dim), and each loss is the
sum of the replicas' losses, so every replica follows its own training run.
"""

from typing import Literal

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from gmlib.divergences import check_bandwidths, f_divergence_spec, mmd, sliced_wasserstein
from gmlib.models.nets import dcgan_discriminator, dcgan_generator, mlp
from gmlib.validation import require_finite, require_int, require_positive, require_shape

Distance = Literal["kl", "reverse_kl", "pearson", "hellinger", "js", "gan", "wasserstein"]
Lipschitz = Literal["clip", "gradient_penalty"]
GeneratorLoss = Literal["minimax", "non_saturating"]
Architecture = Literal["mlp", "dcgan"]


def _image_side(dim: int, architecture: str, replicas: int | None) -> int | None:
    """The side of the square images a "dcgan" network reads (dim = side^2); None for "mlp"."""
    if architecture not in ("mlp", "dcgan"):
        raise ValueError(f"architecture must be 'mlp' or 'dcgan', got {architecture!r}")
    if architecture == "mlp":
        return None
    if replicas is not None:
        raise ValueError("architecture='dcgan' takes no replicas (its batch norm has no replica axis)")
    side = round(dim**0.5)
    if side * side != dim:
        raise ValueError(f"architecture='dcgan' needs dim = side^2 (flattened square images), got dim={dim}")
    return side


def deal(x: torch.Tensor, replicas: int | None) -> torch.Tensor:
    """Deal a batch (R * b, *event) out to R replicas as (R, b, *event); unchanged when ``replicas`` is None."""
    if replicas is None:
        return x
    if x.dim() < 1 or x.shape[0] % replicas or x.shape[0] == 0:
        raise ValueError(f"a batch of shape {tuple(x.shape)} cannot be dealt out evenly to {replicas} replicas")
    return x.reshape(replicas, x.shape[0] // replicas, *x.shape[1:])


class Critic(nn.Module):
    """A network V: (batch, dim) -> (batch,) and the variational bound it maximises for one distance.

    Args:
        dim: data dimension.
        distance: an f-divergence of ``gmlib.divergences.F_DIVERGENCES`` or "wasserstein".
        lipschitz: for "wasserstein" only: "clip" (every weight clamped to
            [-clip, clip] before each use, Arjovsky et al. 2017) or
            "gradient_penalty" (penalty * E(|grad V| - 1)^2 on interpolates,
            Gulrajani et al. 2017).
        clip_biases: with "clip", clamp the biases too, as Arjovsky et al.'s code
            does. Off by default: the Lipschitz constant of the network is bounded
            by the weight matrices alone, and clamped biases pin every full-slope
            unit's kink to |x| <= 1, so the critic cannot be linear over wider data
            (chapter "GANs", section "WGAN").
        architecture: "mlp" (``layers`` hidden layers of width ``hidden``) or
            "dcgan" (``gmlib.models.nets.dcgan_discriminator`` with ``hidden``
            channels, for flattened square images, dim = side^2).
        replicas: R independent critics in one module (None: a single one).
            Inputs are then (R, n, dim), or (n, dim) shared by all replicas,
            and values carry a leading replica axis: (R, n) and bounds (R,).
    """

    def __init__(
        self,
        *,
        dim: int,
        distance: Distance = "gan",
        lipschitz: Lipschitz = "gradient_penalty",
        hidden: int = 64,
        layers: int = 2,
        clip: float = 0.01,
        clip_biases: bool = False,
        penalty: float = 10.0,
        replicas: int | None = None,
        architecture: Architecture = "mlp",
    ) -> None:
        super().__init__()
        if distance != "wasserstein":
            self.spec = f_divergence_spec(distance)  # raises on unknown names
        if lipschitz not in ("clip", "gradient_penalty"):
            raise ValueError(f"lipschitz must be 'clip' or 'gradient_penalty', got {lipschitz!r}")
        require_positive("clip", clip)
        require_positive("penalty", penalty)
        self.dim, self.distance, self.lipschitz, self.clip, self.penalty = dim, distance, lipschitz, clip, penalty
        self.clip_biases, self.replicas = clip_biases, replicas
        require_int("dim", dim, low=1)
        side = _image_side(dim, architecture, replicas)
        if side is None:
            self.net = mlp(inputs=dim, outputs=1, hidden=hidden, layers=layers, negative_slope=0.2, replicas=replicas)
        elif distance == "wasserstein":
            raise ValueError("architecture='dcgan' needs an f-divergence: batch norm breaks a Lipschitz bound")
        else:
            self.net = dcgan_discriminator(side=side, channels=hidden)

    def _inputs(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Check x is (n, dim), or (R, n, dim) with replicas, and give replicas their copy of a shared (n, dim)."""
        if self.replicas is not None and x.dim() == 3:
            require_shape(name, x, (self.replicas, None, self.dim))
        else:
            require_shape(name, x, (None, self.dim))
        if x.shape[-2] == 0:
            raise ValueError(f"{name} must hold at least one sample, got shape {tuple(x.shape)}")
        return x if self.replicas is None or x.dim() == 3 else x.expand(self.replicas, *x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The raw output V(x): (batch, dim) -> (batch,) (a logit for "gan", the critic value for "wasserstein").

        With replicas: (R, batch, dim) or a shared (batch, dim) -> (R, batch).
        A clipping critic clamps its weights first, so no forward pass ever sees
        the unclipped weights an optimiser step left behind.
        """
        self.clip_weights()
        return self.net(self._inputs("x", x)).squeeze(-1)

    @torch.no_grad()
    def clip_weights(self) -> None:
        """Clamp every weight (and bias, with ``clip_biases``) to [-clip, clip], if this critic clips.

        The WGAN's crude Lipschitz constraint. Only parameters out of range are
        touched: an in-place write to a weight that an earlier forward pass of the
        same loss saved for backward would break autograd.
        """
        if self.distance != "wasserstein" or self.lipschitz != "clip":
            return
        for name, parameter in self.net.named_parameters():
            if (self.clip_biases or not name.endswith("bias")) and parameter.abs().max() > self.clip:
                parameter.clamp_(-self.clip, self.clip)

    def statistic(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) = activation(V(x)) (batch,) or (R, batch), the function inside the bound (V for "wasserstein")."""
        v = self(x)
        return v if self.distance == "wasserstein" else self.spec.activation(v)

    def fake_term(self, x_fake: torch.Tensor) -> torch.Tensor:
        """Per-sample E_Q term (batch,) or (R, batch): f*(T(x)) for an f-divergence, V(x) for "wasserstein"."""
        t = self.statistic(x_fake)
        return t if self.distance == "wasserstein" else self.spec.conjugate(t)

    def bound(self, x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
        """The variational lower bound E_P[T] - E_Q[f*(T)] (or E_P[V] - E_Q[V]) on two batches (n, dim), (m, dim).

        A scalar, or (R,) with replicas (one bound per replica). For distance
        "gan" this is V(D, G) of Algorithm 1, whose maximum over critics is
        -log 4 + 2 JSD (chapter "GANs", Theorem eq. (eq-c-of-g)).
        """
        x_real, x_fake = self._inputs("x_real", x_real), self._inputs("x_fake", x_fake)
        require_finite("x_real", x_real)
        return self.statistic(x_real).mean(-1) - self.fake_term(x_fake).mean(-1)

    def gradient_penalty(self, x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
        """penalty * E(|grad_x V(x_hat)| - 1)^2 at random interpolates x_hat of the two batches (same size).

        A scalar, or (R,) with replicas.
        """
        x_real, x_fake = self._inputs("x_real", x_real), self._inputs("x_fake", x_fake)
        alpha = torch.rand(*x_real.shape[:-1], 1, device=x_real.device, dtype=x_real.dtype)
        x_hat = (alpha * x_real + (1 - alpha) * x_fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(self(x_hat).sum(), x_hat, create_graph=True)
        return self.penalty * ((grad.norm(dim=-1) - 1) ** 2).mean(-1)

    def critic_loss(self, x_real: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
        """What the critic minimises (a scalar): minus the bound, plus the gradient penalty where it applies.

        With replicas, the sum of the replicas' losses.
        """
        loss = -self.bound(x_real, x_fake)
        if self.distance == "wasserstein" and self.lipschitz == "gradient_penalty":
            loss = loss + self.gradient_penalty(x_real, x_fake)
        return loss.sum()


class _Sampler(nn.Module):
    """A generator G: z ~ N(0, I_latent) -> x (n, dim); ``tanh`` bounds the output to [-1, 1] (DCGAN).

    ``architecture="dcgan"``: transposed convolutions (``dcgan_generator``),
    whose output is tanh already, for flattened square images.

    With replicas, R generators: ``sample(n)`` -> (R, n, dim).
    """

    def __init__(
        self,
        *,
        dim: int,
        latent: int,
        hidden: int,
        layers: int,
        tanh: bool,
        replicas: int | None = None,
        architecture: Architecture = "mlp",
    ) -> None:
        super().__init__()
        require_int("latent", latent, low=1)
        side = _image_side(dim, architecture, replicas)
        if side is None:
            self.net = mlp(inputs=latent, outputs=dim, hidden=hidden, layers=layers, replicas=replicas)
        else:  # its last layer is tanh already
            self.net = dcgan_generator(latent=latent, side=side, channels=hidden)
        self.tanh, self.replicas = tanh, replicas
        self.register_buffer("loc", torch.zeros(latent))
        self.register_buffer("scale", torch.ones(latent))

    def prior(self) -> Distribution:
        """p(z) = N(0, I), on the generator's device."""
        return Independent(Normal(self.loc, self.scale), 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(z)
        return torch.tanh(x) if self.tanh else x

    def sample(self, n: int) -> torch.Tensor:
        require_int("n", n, low=1)
        shape = (n,) if self.replicas is None else (self.replicas, n)
        return self(self.prior().sample(shape))


class GAN(nn.Module):
    """A generator against a ``Critic``: an ``AdversarialModel`` trained by ``gmlib.train`` (Algorithm 1).

    ``distance="gan"`` is the vanilla GAN (the critic's output is the logit of
    D), "wasserstein" the WGAN, any other f-divergence the f-GAN. The generator
    minimises the bound ("minimax", eq. (eq-gan-value)), or, with
    "non_saturating", maximises E_Q[T(G(z))] instead -- for "gan" exactly
    -E log D(G(z)) (eq. (eq-non-saturating)); for "wasserstein" both are -E V(G(z)).

    ``architecture="dcgan"`` swaps both perceptrons for DCGAN's convolutional
    networks (Radford et al. 2016; ``hidden`` counts channels) on flattened
    square images, dim = side^2 (chapter "GANs", section "Digits").

    Shapes: ``sample(n)`` -> (n, dim); the losses take a real batch (batch, dim).
    With ``replicas=R``: R independent GANs, ``sample(n)`` -> (R, n, dim), and
    the real batch (R * b, dim) is dealt out b to each (``deal``).
    """

    def __init__(
        self,
        *,
        dim: int,
        distance: Distance = "gan",
        generator_loss: GeneratorLoss = "non_saturating",
        lipschitz: Lipschitz = "gradient_penalty",
        latent: int = 2,
        hidden: int = 64,
        layers: int = 2,
        tanh: bool = False,
        clip: float = 0.01,
        penalty: float = 10.0,
        replicas: int | None = None,
        architecture: Architecture = "mlp",
    ) -> None:
        super().__init__()
        if generator_loss not in ("minimax", "non_saturating"):
            raise ValueError(f"generator_loss must be 'minimax' or 'non_saturating', got {generator_loss!r}")
        self.generator = _Sampler(
            dim=dim,
            latent=latent,
            hidden=hidden,
            layers=layers,
            tanh=tanh,
            replicas=replicas,
            architecture=architecture,
        )
        self.discriminator = Critic(
            dim=dim,
            distance=distance,
            lipschitz=lipschitz,
            hidden=hidden,
            layers=layers,
            clip=clip,
            penalty=penalty,
            replicas=replicas,
            architecture=architecture,
        )
        self.mode, self.replicas = generator_loss, replicas

    def sample(self, n: int) -> torch.Tensor:
        """n generated samples (n, dim), or (R, n, dim) with replicas."""
        return self.generator.sample(n)

    def discriminator_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The critic's loss on a real batch x (batch, dim) against as many generated samples (held fixed)."""
        x = deal(x, self.replicas)
        with torch.no_grad():
            fake = self.sample(x.shape[-2])
        return self.discriminator.critic_loss(x, fake)

    def generator_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The generator's loss for a batch of the size of x (batch, dim); x itself enters only through its size."""
        require_finite("x", x)
        fake = self.sample(deal(x, self.replicas).shape[-2])
        if self.mode == "non_saturating" or self.discriminator.distance == "wasserstein":
            return -self.discriminator.statistic(fake).mean(-1).sum()
        # minimax: the bound's E_Q term, for "gan" E log(1 - D)
        return -self.discriminator.fake_term(fake).mean(-1).sum()


class DivergenceEstimator(nn.Module):
    """A ``Critic`` trained against a fixed distribution Q; its bound estimates D(P, Q) from below.

    A likelihood-free ``GenerativeModel`` whose "model" is Q itself:
    ``loss(x)`` is the critic loss on a real batch x (batch, dim) against a
    fresh batch of Q, ``sample(n)`` draws Q (n, dim), and ``estimate(x, y)``
    evaluates the bound on held-out samples of P and Q. For "gan" the trained
    critic's logit gives D(x) = sigmoid(V(x)), to compare with D* (Proposition 1).
    With ``replicas=R`` (a ``Critic`` option), R critics train at once, each on
    its share of the batch, and ``estimate`` returns their R estimates.
    """

    def __init__(self, *, q: Distribution, dim: int, **critic: object) -> None:
        super().__init__()
        self.q = q
        self.critic = Critic(dim=dim, **critic)

    def sample(self, n: int) -> torch.Tensor:
        """n samples of Q as (n, dim)."""
        x = self.q.sample((n,))
        return x.reshape(n, self.critic.dim).to(next(self.critic.parameters()).device)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The critic loss on x (batch, dim) from P against a fresh batch of Q (dealt out to the replicas)."""
        replicas = self.critic.replicas
        return self.critic.critic_loss(deal(x, replicas), deal(self.sample(x.shape[0]), replicas))

    @torch.no_grad()
    def estimate(self, x: torch.Tensor, y: torch.Tensor) -> float | list[float]:
        """The bound on held-out samples x ~ P (n, dim), y ~ Q (m, dim): the critic's estimate of the distance.

        With replicas, every replica's estimate on the same samples, as a list.
        """
        return self.critic.bound(x, y).tolist()


class MomentMatchingGenerator(nn.Module):
    """A generator trained without a critic: ``loss(x)`` is a distance between G(z) and the real batch x.

    ``distance="mmd"``: the unbiased MMD^2 with a sum of Gaussian kernels
    (``bandwidths``), Li et al. 2015 / Dziugaite et al. 2015;
    ``"sliced_wasserstein"``: sliced W1 over ``projections`` random directions
    per step (Deshpande et al. 2018). A likelihood-free ``GenerativeModel``:
    ``sample(n)`` -> (n, dim), ``loss(x)`` for x (batch, dim) -> scalar. With
    ``replicas=R``, R generators: ``sample(n)`` -> (R, n, dim), and the loss is
    the sum of each replica's distance to its share of the batch.
    """

    def __init__(
        self,
        *,
        dim: int,
        distance: Literal["mmd", "sliced_wasserstein"] = "sliced_wasserstein",
        latent: int = 2,
        hidden: int = 64,
        layers: int = 2,
        tanh: bool = False,
        bandwidths: tuple[float, ...] = (0.05, 0.2, 1.0),
        projections: int = 64,
        replicas: int | None = None,
    ) -> None:
        super().__init__()
        if distance not in ("mmd", "sliced_wasserstein"):
            raise ValueError(f"distance must be 'mmd' or 'sliced_wasserstein', got {distance!r}")
        self.generator = _Sampler(dim=dim, latent=latent, hidden=hidden, layers=layers, tanh=tanh, replicas=replicas)
        self.distance, self.bandwidths, self.projections = distance, check_bandwidths(bandwidths), projections
        self.replicas = replicas

    def sample(self, n: int) -> torch.Tensor:
        """n generated samples (n, dim)."""
        return self.generator.sample(n)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The distance between a generated batch and the real batch x (batch, dim)."""
        require_finite("x", x)
        real = deal(x, self.replicas)
        fake = self.sample(real.shape[-2])
        if self.distance == "mmd":
            return mmd(fake, real, bandwidths=self.bandwidths).sum()  # with replicas, one term each
        return sliced_wasserstein(fake, real, projections=self.projections).sum()

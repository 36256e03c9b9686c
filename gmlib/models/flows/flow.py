"""The flow model: a base density and its layers (eq-change-of-variables, eq-flow-composition), and its two fits."""

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from gmlib.data import dequantize
from gmlib.models.flows.transform import Inverse
from gmlib.validation import (
    require_finite,
    require_int,
    require_levels,
    require_nonempty,
    require_shape,
    require_tensor,
)

Direction = Literal["normalizing", "generative"]


DIRECTIONS: tuple[str, ...] = ("normalizing", "generative")


# --- the model ---------------------------------------------------------------------------------------


def standard_normal(dim: int) -> Independent:
    """N(0, I_dim) as a distribution over vectors (event shape (dim,)), the usual base density."""
    require_int("dim", dim, low=1)
    return Independent(Normal(torch.zeros(dim), torch.ones(dim)), 1)


class Flow(nn.Module):
    """p(x) = p_Z(T(x)) |det dT/dx| for T = T_K o ... o T_1 (eq-change-of-variables, eq-flow-composition).

    Args:
        base: the base density p_Z, a ``torch.distributions.Normal`` with batch shape
            (D,) or an ``Independent`` of one with event shape (D,); its loc and scale
            become buffers, so the base follows the module's device and dtype.
        transforms: the layers, modules whose ``forward()`` returns a Transform of R^D.
        direction: ``"normalizing"``: the list is T_1, ..., T_K, data to latent
            (zuko's convention). ``"generative"``: the list is f_1, ..., f_K with
            x = f_K o ... o f_1 (z0) (Rezende & Mohamed's), stored as the inverses
            in reverse order, so that ``rsample_and_log_prob`` runs the f_k forward.
    """

    def __init__(
        self, *, base: Distribution, transforms: Sequence[nn.Module], direction: Direction = "normalizing"
    ) -> None:
        super().__init__()
        loc, scale = _normal_parameters(base)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.dim = len(loc)
        layers = list(transforms)
        for k, layer in enumerate(layers):
            if not isinstance(layer, nn.Module) or getattr(layer, "dim", self.dim) != self.dim:
                raise ValueError(f"transforms[{k}] must be a layer (nn.Module) of dimension {self.dim}, got {layer!r}")
        if direction == "generative":
            layers = [Inverse(layer) for layer in reversed(layers)]
        self.direction = direction
        self.transforms = nn.ModuleList(layers)
        self.register_buffer("loc", loc.detach().clone())
        self.register_buffer("scale", scale.detach().clone())

    def _require_vectors(self, name: str, v: torch.Tensor) -> None:
        """v must be (batch, D), or (batch, R, D) for a flow of replicated layers (``Planar(replicas=R)``)."""
        require_tensor(name, v)
        if v.dim() not in (2, 3) or v.shape[-1] != self.dim:
            raise ValueError(
                f"{name} must have shape (batch, {self.dim}) or (batch, R, {self.dim}), got {tuple(v.shape)}"
            )

    def base(self) -> Independent:
        """p_Z with event shape (D,), on the module's device."""
        return Independent(Normal(self.loc, self.scale), 1)

    def forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = T(x) (batch, D) and log |det dT/dx| (batch,), summed over the layers (eq-flow-composition)."""
        ladj = x.new_zeros(x.shape[:-1])
        for layer in self.transforms:
            t = layer()
            z = t(x)
            ladj = ladj + t.log_abs_det_jacobian(x, z)
            x = z
        return x, ladj

    def inverse_and_log_det(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = T^{-1}(z) (batch, D) and log |det dT/dx| at that x (batch,), so log p(x) = log p_Z(z) + it."""
        ladj = z.new_zeros(z.shape[:-1])
        for layer in reversed(self.transforms):
            t = layer()
            x = t.inv(z)
            ladj = ladj + t.log_abs_det_jacobian(x, z)
            z = x
        return z, ladj

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) for x (batch, D) -> (batch,) (eq-change-of-variables)."""
        self._require_vectors("x", x)
        require_nonempty("x", x)
        require_finite("x", x)
        z, ladj = self.forward_and_log_det(x)
        return self.base().log_prob(z) + ladj

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of x (batch, D), the forward-KL objective."""
        return -self.log_prob(x).mean()

    def rsample_and_log_prob(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n reparameterised draws x (n, D) and their log q(x) (n,): z0 ~ p_Z pushed through T^{-1}.

        log q(x) = log p_Z(z0) - sum_k log |det df_k/dz_{k-1}|, differentiable in the parameters:
        what reverse-KL fitting E_q[log q(x) - log p~(x)] needs (``reverse_kl``).
        """
        require_int("n", n, low=1)
        return self.push_and_log_prob(self.base().rsample((n,)))

    def push_and_log_prob(self, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base draws z0 (batch, D) -> x = T^{-1}(z0) (batch, D) and log q(x) (batch,) (eq-flow-composition)."""
        self._require_vectors("z0", z0)
        x, ladj = self.inverse_and_log_det(z0)
        return x, self.base().log_prob(z0) + ladj

    def reverse_kl(self, log_target: Callable[[torch.Tensor], torch.Tensor], n: int) -> torch.Tensor:
        """Monte-Carlo E_q[log q(x) - log p~(x)] with n draws: KL(q || p) - log Z for p = p~ / Z (a scalar)."""
        x, log_q = self.rsample_and_log_prob(n)
        return (log_q - log_target(x)).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n draws (n, D): z ~ p_Z, x = T^{-1}(z)."""
        require_int("n", n, low=1)
        return self.inverse_and_log_det(self.base().sample((n,)))[0]


class ReverseKLFit(nn.Module):
    """Fit a flow q to an unnormalised density p~ = exp(log_target) by reverse KL (eq-flow-reverse-kl).

    ``loss(z0)`` is the Monte-Carlo E_q[log q(x) - beta log p~(x)] over base draws z0 (batch, D)
    pushed through the flow; at beta = 1 it is KL(q || p) - log Z. The one trainer fits it with
    ``data=fit.flow.base()``: the "data" of a variational fit are draws of the base density.
    ``anneal_steps`` > 0 raises beta linearly from 0.01 to 1 over that many training calls of
    ``loss``, the inverse-temperature schedule of Rezende & Mohamed (2015, Section 6.1), which
    lets q spread over every mode before the target sharpens. ``sample`` is the flow's.
    """

    def __init__(
        self, flow: Flow, log_target: Callable[[torch.Tensor], torch.Tensor], *, anneal_steps: int = 0
    ) -> None:
        super().__init__()
        if not isinstance(flow, Flow):
            raise ValueError(f"flow must be a gmlib Flow, got {type(flow).__name__}")
        if not callable(log_target):
            raise ValueError("log_target must be a callable x (batch, D) -> (batch,)")
        require_int("anneal_steps", anneal_steps, low=0)
        self.flow, self.log_target, self.anneal_steps = flow, log_target, anneal_steps
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))  # saved with checkpoints

    def beta(self) -> float:
        """The inverse temperature of the next training call: 0.01 -> 1 over ``anneal_steps``, then 1."""
        if self.anneal_steps == 0:
            return 1.0
        return min(1.0, 0.01 + 0.99 * self.calls.item() / self.anneal_steps)

    def loss(self, z0: torch.Tensor) -> torch.Tensor:
        beta = self.beta() if self.training else 1.0
        if self.training:
            self.calls += 1
        x, log_q = self.flow.push_and_log_prob(z0)
        return (log_q - beta * self.log_target(x)).mean()

    def sample(self, n: int) -> torch.Tensor:
        return self.flow.sample(n)


def _normal_parameters(base: Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """loc, scale (D,) of a diagonal Normal base, or a ValueError naming ``base``."""
    normal = base
    if isinstance(base, Independent) and base.reinterpreted_batch_ndims == 1:
        normal = base.base_dist
    ok = isinstance(normal, Normal) and len(normal.batch_shape) == 1 and normal.batch_shape[0] >= 1
    ok = ok and (normal is base or (len(base.batch_shape) == 0 and len(base.event_shape) == 1))
    if not ok:
        raise ValueError(
            "base must be a torch.distributions.Normal with batch shape (D,) or Independent(Normal, 1) "
            f"with event shape (D,), e.g. gmlib.models.flows.standard_normal(D); got {base!r}"
        )
    require_finite("base loc", normal.loc)
    if not (normal.scale > 0).all() or not torch.isfinite(normal.scale).all():
        raise ValueError("base scale must be finite and > 0")
    return normal.loc, normal.scale


class Dequantized(nn.Module):
    """A flow on y in R^D as a model of integer levels x in {0, ..., L-1}^D, by uniform dequantisation.

    Level k occupies [k, k + 1), so the flow's density p gives the levels
    P(x) = int_{[0,1)^D} p(x + u) du >= exp E_u log p(x + u) (Jensen,
    eq-dequantization). ``elbo(x)`` is log p(x + u) for one draw u ~ U[0,1)^D
    (batch,), an unbiased estimate of that lower bound on log P(x), as a VAE's
    ``elbo`` is of its bound; ``loss`` is its negative mean, what ``gmlib.train``
    minimises on a tensor of levels. ``sample(n)`` draws floor(y), y ~ p: the
    levels (n, D) with law P, clamped into 0..L-1 (for the mass that p puts
    outside [0, L)^D, which the bound counts as lost).
    """

    def __init__(self, flow: Flow, *, levels: int) -> None:
        super().__init__()
        if not isinstance(flow, Flow):
            raise ValueError(f"flow must be a gmlib Flow, got {type(flow).__name__}")
        require_int("levels", levels, low=1)
        self.flow, self.levels, self.dim = flow, levels, flow.dim

    def elbo(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x + u), one u ~ U[0, 1)^D per image, for levels x (batch, D) -> (batch,)."""
        require_shape("x", x, (None, self.dim))
        require_nonempty("x", x)
        require_levels("x", x, self.levels)
        return self.flow.log_prob(dequantize(x, generator=generator, dtype=self.flow.loc.dtype))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """-E_u log p(x + u), one draw per image, averaged over the batch x (batch, D)."""
        return -self.elbo(x).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n images of levels (n, D), int64: floor of the flow's samples, clamped into 0..L-1."""
        return self.flow.sample(n).floor().clamp(0, self.levels - 1).long()

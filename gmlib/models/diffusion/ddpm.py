"""Denoising diffusion probabilistic models (Ho et al. 2020; chapter "Diffusion").

The reverse process p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I)
runs from p(x_T) = N(0, I) back to the data; its mean is written through a
noise prediction (eq-eps-mean)

    mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(alpha_t).

Every term of the bound (eq-ddpm-bound) has its own method: ``prior_term``
(L_T), ``denoising_term`` (L_{t-1}, t >= 2), ``reconstruction_term`` (L_0), and
``terms`` returns all T + 1 of them, whose sum is -``elbo``. ``loss`` is
Algorithm 1 with L_simple, or an unbiased estimate of the bound itself.
``sample`` is Algorithm 2; ``ddim_sample`` the deterministic sampler of Song
et al. (2021). With ``classes``, the model is conditional and ``sample`` takes
a classifier-free guidance weight (Ho & Salimans 2022).

Pixel levels 0..L-1 (``levels=L``) are mapped to the centres c_k = 2k/(L-1) - 1
in [-1, 1]; L_0 is then the log-probability of the discrete levels, so the bound
is a bound on the discrete data, in the same units as every other model's NLL.
"""

import math
from collections import deque
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn
from torch.nn.functional import log_softmax

from gmlib.models.diffusion.denoisers import Denoiser, level_posterior_logits
from gmlib.models.diffusion.schedule import NoiseSchedule
from gmlib.validation import (
    require_finite,
    require_fraction,
    require_int,
    require_levels,
    require_nonempty,
    require_shape,
)

Prediction = Literal["eps", "levels"]
Variance = Literal["beta", "beta_tilde", "x0_posterior"]
Objective = Literal["simple", "bound"]
PREDICTIONS: tuple[str, ...] = ("eps", "levels")
VARIANCES: tuple[str, ...] = ("beta", "beta_tilde", "x0_posterior")
OBJECTIVES: tuple[str, ...] = ("simple", "bound")


def gaussian_kl(mean_q: torch.Tensor, var_q: torch.Tensor, mean_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, var_q I) || N(mean_p, var_p I)) summed over the event: (batch, D) -> (batch,).

    Per coordinate 1/2 [log(var_p / var_q) + (var_q + (mean_q - mean_p)^2) / var_p - 1]
    (eq-gaussian-kl); variances broadcast against the means.
    """
    per_coordinate = 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)
    return per_coordinate.expand_as(mean_q).sum(-1)


class DDPM(nn.Module):
    """A diffusion model on vectors (batch, dim): continuous, or pixel levels 0..levels-1.

    Args:
        schedule: the forward process (``NoiseSchedule``); T = schedule.steps.
        dim: the event size D (64 for 8x8 digits).
        levels: L for discrete data in 0..L-1 (L_0 is then a discrete decoder);
            None for continuous data (L_0 a Gaussian density).
        prediction: "eps", the network predicts the noise; "levels" (discrete
            data only), it predicts logits over the levels of every pixel, added
            to the single-pixel posterior ``level_posterior_logits``; x_0's
            posterior mean under them gives eps, and at t = 1 the same log-probabilities are
            the decoder p(x_0 | x_1).
        variance: sigma_t^2 = beta_t ("beta"), beta_tilde_t ("beta_tilde"), or,
            for ``prediction="levels"``, per pixel beta_tilde_t + A_t^2
            Var_theta(x_0 | x_t) ("x0_posterior", eq-x0-posterior-variance): the
            law of total variance with the model's own uncertainty about x_0
            (A_t the coefficient of x_0 in the posterior mean; the optimal
            variance of Bao et al. 2022, per pixel and per x_t).
        objective: "simple" (L_simple, eq-simple-loss) or "bound" (the
            eps-error weighted as in the bound, eq-eps-weight, and L_0).
        hidden, layers, dropout: the denoiser perceptron's width, depth and dropout.
        classes: the number of labels of a conditional model (None: unconditional).
        label_dropout: the probability that training hides the label (classifier-free guidance).
    """

    def __init__(
        self,
        *,
        schedule: NoiseSchedule,
        dim: int,
        levels: int | None = None,
        prediction: Prediction = "eps",
        variance: Variance = "beta",
        objective: Objective = "simple",
        hidden: int = 256,
        layers: int = 3,
        dropout: float = 0.0,
        classes: int | None = None,
        label_dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not isinstance(schedule, NoiseSchedule):
            raise ValueError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        require_int("dim", dim, low=1)
        if levels is not None:
            require_int("levels", levels, low=2)
        for name, value, allowed in (
            ("prediction", prediction, PREDICTIONS),
            ("variance", variance, VARIANCES),
            ("objective", objective, OBJECTIVES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if prediction == "levels" and levels is None:
            raise ValueError("prediction='levels' needs discrete data: set levels")
        if variance == "x0_posterior" and prediction != "levels":
            raise ValueError("variance='x0_posterior' needs prediction='levels' (a distribution over x_0)")
        require_fraction("label_dropout", label_dropout)
        self.schedule, self.dim, self.levels, self.classes = schedule, dim, levels, classes
        self.prediction, self.variance, self.objective = prediction, variance, objective
        self.label_dropout = float(label_dropout)
        self.denoiser = Denoiser(
            inputs=dim,
            outputs=dim * levels if prediction == "levels" else dim,
            log_snr=torch.log(schedule.alpha_bars / (1 - schedule.alpha_bars)),
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            classes=classes,
        )
        if levels is not None:
            self.register_buffer("centres", torch.linspace(-1.0, 1.0, levels))
        # the model's dtype and device, also when its denoiser has no parameters
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def steps(self) -> int:
        return self.schedule.steps

    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        self.schedule = self.schedule.to(self._anchor.device)
        return module

    # ----- data and network ------------------------------------------------------------------------------------

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Levels 0..L-1 -> their centres in [-1, 1] (discrete data); continuous data unchanged. (batch, D)."""
        dtype = self._anchor.dtype
        return x.to(dtype) * (2 / (self.levels - 1)) - 1 if self.levels is not None else x.to(dtype)

    def to_levels(self, x: torch.Tensor) -> torch.Tensor:
        """Points in [-1, 1] -> the nearest level, int64 (discrete data); continuous data unchanged."""
        if self.levels is None:
            return x
        return ((x + 1) * (self.levels - 1) / 2).round().clamp(0, self.levels - 1).long()

    def denoise(
        self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's reading of x_t (batch, D) at t (batch,): (eps_theta (batch, D), log-probabilities or None).

        The log-probabilities (batch, D, L) of x_0's levels exist for
        ``prediction="levels"``: the network's outputs are logits added to
        the single-pixel logits (eq-level-posterior); eps is then
        (x_t - sqrt(abar_t) E[x_0]) / sqrt(1 - abar_t) under them.
        """
        if self.prediction == "eps":
            return self.denoiser(xt, t, y), None
        single_pixel = level_posterior_logits(xt, self.schedule.at("alpha_bars", t, xt), self.centres)
        log_probs = log_softmax(self.denoiser(xt, t, y).view(-1, self.dim, self.levels) + single_pixel, -1)
        x0 = log_probs.exp() @ self.centres
        return self.schedule.predicted_eps(xt, t, x0), log_probs

    def guided_eps(
        self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, guidance: float
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(1 + w) eps(x_t, y) - w eps(x_t, no label), classifier-free guidance (eq-cfg), and the levels given y.

        w = 0 (or no labels) is ``denoise`` itself.
        """
        eps, log_probs = self.denoise(xt, t, y)
        if guidance == 0 or y is None:
            return eps, log_probs
        unconditional, _ = self.denoise(xt, t, torch.full_like(y, self.classes))
        return (1 + guidance) * eps - guidance * unconditional, log_probs

    def reverse_variance(
        self, t: torch.Tensor, like: torch.Tensor, log_probs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """sigma_t^2 as ``variance`` chooses: (batch, 1), or (batch, D) per pixel for "x0_posterior".

        "x0_posterior" needs the levels' ``log_probs`` (batch, D, L) that ``denoise`` returned for x_t.
        """
        if self.variance == "beta":
            return self.schedule.at("betas", t, like)
        tilde = self.schedule.at("posterior_variances", t, like)
        if self.variance == "beta_tilde":
            return tilde
        if log_probs is None:
            raise ValueError("variance='x0_posterior' needs the log_probs of x_t's levels")
        probs = log_probs.exp()
        spread = (probs @ self.centres**2 - (probs @ self.centres) ** 2).clamp(min=0)  # Var(x_0 | x_t)
        return tilde + self.schedule.at("posterior_x0_coefs", t, like) ** 2 * spread

    # ----- the bound, term by term (eq-ddpm-bound) -------------------------------------------------------------

    def prior_term(self, x: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I)) (batch,): constant in theta, small when abar_T is."""
        x0 = self._checked(x)
        t = torch.full((x0.shape[0],), self.steps, device=x0.device)
        abar = self.schedule.at("alpha_bars", t, x0)
        return gaussian_kl(abar.sqrt() * x0, 1 - abar, torch.zeros_like(x0), torch.ones_like(abar))

    def denoising_term(
        self, x: torch.Tensor, t: torch.Tensor, *, y: torch.Tensor | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)) at one draw x_t ~ q(x_t | x_0): (batch,).

        t (batch,) in 2..T; ``noise`` (batch, D) is the draw's eps (fresh if None).
        """
        x0 = self._checked(x)
        t = self.schedule.check_timesteps(t)
        if (t < 2).any():
            raise ValueError("denoising_term needs t >= 2; L_0 is reconstruction_term")
        noise = torch.randn_like(x0) if noise is None else noise
        xt = self.schedule.forward_sample(x0, t, noise)
        mean_q, var_q = self.schedule.posterior(x0, xt, t)
        eps, log_probs = self.denoise(xt, t, y)
        mean_p = self.schedule.reverse_mean(xt, t, eps)
        return gaussian_kl(mean_q, var_q, mean_p, self.reverse_variance(t, xt, log_probs))

    def reconstruction_term(
        self, x: torch.Tensor, *, y: torch.Tensor | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L_0 = -log p_theta(x_0 | x_1) at one draw x_1 ~ q(x_1 | x_0): (batch,).

        Discrete data: the level log_probs at t = 1 (``prediction="levels"``), or
        DDPM's discretised Gaussian N(mu_theta(x_1, 1), beta_1) integrated over
        each level's bin (eq-discrete-decoder); continuous data: the Gaussian
        density N(x_0; mu_theta(x_1, 1), beta_1).
        """
        x0 = self._checked(x)
        t = torch.ones(x0.shape[0], dtype=torch.long, device=x0.device)
        noise = torch.randn_like(x0) if noise is None else noise
        x1 = self.schedule.forward_sample(x0, t, noise)
        eps, log_probs = self.denoise(x1, t, y)
        return self._decoder_nll(x0, x1, eps, log_probs)

    @torch.no_grad()
    def terms(self, x: torch.Tensor, *, y: torch.Tensor | None = None, chunk: int = 64) -> torch.Tensor:
        """Every term of the bound, (batch, T + 1): column k is L_k (L_0, L_1, ..., L_T), in nats.

        One draw x_t ~ q(x_t | x_0) per example and t; the row sums are -``elbo``.
        ``chunk`` timesteps are evaluated in one batch.
        """
        x = self._checked_input(x)
        n = x.shape[0]
        columns = [self.reconstruction_term(x, y=y)]
        for start in range(2, self.steps + 1, chunk):
            ts = torch.arange(start, min(start + chunk, self.steps + 1), device=x.device)
            t = ts.repeat_interleave(n)
            repeated = x.repeat(len(ts), 1)
            labels = None if y is None else y.repeat(len(ts))
            columns += list(self.denoising_term(repeated, t, y=labels).view(len(ts), n))
        columns.append(self.prior_term(x))
        return torch.stack(columns, dim=1)

    @torch.no_grad()
    def stratified_terms(
        self, x: torch.Tensor, *, strata: int, y: torch.Tensor | None = None, chunk: int = 16
    ) -> torch.Tensor:
        """An unbiased estimate of the bound's terms in ``strata`` blocks of t: (batch, strata + 2).

        Column 0 is L_0 and the last column L_T, as in ``terms``; column b is
        the sum of L_{t-1} over block b of t in 2..T (``timestep_blocks``),
        estimated by |block| L_{t-1} at one t drawn uniformly in the block for
        each example (stratified sampling of t). The row sums are unbiased for
        -ELBO at 1/(T/strata) of the cost of ``terms``.
        """
        x = self._checked_input(x)
        n = x.shape[0]
        blocks = timestep_blocks(self.steps, strata).to(x.device)  # (strata, 2): first and last t of each
        sizes = blocks[:, 1] - blocks[:, 0] + 1
        columns = [self.reconstruction_term(x, y=y)]
        for start in range(0, strata, chunk):
            part, width = blocks[start : start + chunk], sizes[start : start + chunk]
            offsets = (torch.rand(len(part), n, device=x.device) * width[:, None]).long()
            t = (part[:, :1] + offsets).reshape(-1)  # block-major: (len(part) * n,)
            labels = None if y is None else y.repeat(len(part))
            values = self.denoising_term(x.repeat(len(part), 1), t, y=labels).view(len(part), n)
            columns += list(values * width[:, None])
        columns.append(self.prior_term(x))
        return torch.stack(columns, dim=1)

    def elbo(self, x: torch.Tensor, *, y: torch.Tensor | None = None) -> torch.Tensor:
        """The evidence lower bound -(L_0 + ... + L_T) on log p_theta(x_0): (batch,) (eq-ddpm-bound)."""
        return -self.terms(x, y=y).sum(1)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Algorithm 1: t ~ U{1..T}, eps ~ N(0, I); the ``objective`` at x_t, averaged over the batch.

        "simple": ||eps - eps_theta(x_t, t)||^2, averaged over coordinates
        (L_simple). "bound": T times the sampled term (L_{t-1}, or L_0 at t = 1),
        an unbiased estimate of the bound minus L_T, in nats per example. A
        conditional model hides each label with probability ``label_dropout``.
        """
        x0 = self._checked_input(x)
        y = self._checked_labels(y, x0.shape[0])
        if y is not None and self.label_dropout:
            hide = torch.rand(y.shape, device=y.device) < self.label_dropout
            y = torch.where(hide, torch.full_like(y, self.classes), y)
        x0 = self.to_unit(x0)
        t = torch.randint(1, self.steps + 1, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.schedule.forward_sample(x0, t, noise)
        eps, log_probs = self.denoise(xt, t, y)
        if self.objective == "simple":
            return ((noise - eps) ** 2).mean()
        first = t == 1
        terms = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
        later = ~first
        if later.any():
            ts = t[later]
            mean_q, var_q = self.schedule.posterior(x0[later], xt[later], ts)
            mean_p = self.schedule.reverse_mean(xt[later], ts, eps[later])
            variance = self.reverse_variance(ts, xt[later], None if log_probs is None else log_probs[later])
            terms[later] = gaussian_kl(mean_q, var_q, mean_p, variance)
        if first.any():
            terms[first] = self._decoder_nll(
                x0[first], xt[first], eps[first], None if log_probs is None else log_probs[first]
            )
        return self.steps * terms.mean()

    def _decoder_nll(
        self, x0: torch.Tensor, x1: torch.Tensor, eps: torch.Tensor, log_probs: torch.Tensor | None
    ) -> torch.Tensor:
        """-log p_theta(x_0 | x_1) from the network's reading of x_1: (batch,) (see ``reconstruction_term``)."""
        if log_probs is not None:
            return -log_probs.gather(-1, self.to_levels(x0)[..., None]).squeeze(-1).sum(-1)
        t = torch.ones(x0.shape[0], dtype=torch.long, device=x0.device)
        mean = self.schedule.reverse_mean(x1, t, eps)
        std = self.schedule.at("betas", t, x1).sqrt()
        if self.levels is None:
            return -torch.distributions.Normal(mean, std).log_prob(x0).sum(-1)
        return -discretized_gaussian_log_prob(x0, mean, std, self.centres).sum(-1)

    # ----- sampling ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self, n: int, *, y: torch.Tensor | None = None, guidance: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Algorithm 2: x_T ~ N(0, I), then x_{t-1} = mu_theta(x_t, t) + sigma_t z for t = T..1: (n, D).

        The last step adds no noise (z = 0), so x_0 = mu_theta(x_1, 1); discrete
        data then take the nearest level (int64). ``y`` (n,) labels and
        ``guidance`` w >= 0 for a conditional model.
        """
        ((_, x0),) = deque(self.reverse_chain(n, y=y, guidance=guidance, generator=generator), maxlen=1)
        return self.to_levels(x0)

    @torch.no_grad()
    def reverse_chain(
        self, n: int, *, y: torch.Tensor | None = None, guidance: float = 0.0, generator: torch.Generator | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """The states of Algorithm 2 as it runs: yields (t, x_t (n, D)) for t = T, T-1, ..., 0.

        x_0 is mu_theta(x_1, 1), in the model's space [-1, 1] (not yet rounded to levels).
        """
        xt, y = self._start(n, y, guidance, generator)
        yield self.steps, xt
        for step in range(self.steps, 0, -1):
            t = torch.full((n,), step, device=xt.device)
            eps, log_probs = self.guided_eps(xt, t, y, guidance)
            mean = self.schedule.reverse_mean(xt, t, eps)
            if step == 1:
                xt = mean
            else:
                xt = mean + self.reverse_variance(t, xt, log_probs).sqrt() * _normal_like(xt, generator)
            yield step - 1, xt

    @torch.no_grad()
    def ddim_sample(
        self,
        n: int,
        *,
        steps: int,
        eta: float = 0.0,
        y: torch.Tensor | None = None,
        guidance: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """DDIM (Song et al. 2021, eq-ddim) on the timesteps ``ddim_timesteps(T, steps)``: (n, D).

        ``eta = 0`` is deterministic given x_T; ``eta = 1`` has DDPM's
        posterior variance. Discrete data take the nearest level at the end.
        """
        require_int("steps", steps, low=1)
        if steps > self.steps:
            raise ValueError(f"steps must be at most T = {self.steps}, got {steps}")
        if not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
            raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
        xt, y = self._start(n, y, guidance, generator)
        timesteps = ddim_timesteps(self.steps, steps).tolist()
        for step, previous in zip(timesteps, timesteps[1:] + [0], strict=True):
            t = torch.full((n,), step, device=xt.device)
            eps, _ = self.guided_eps(xt, t, y, guidance)
            noise = _normal_like(xt, generator)
            xt = self.schedule.ddim_step(xt, t, torch.full_like(t, previous), eps, eta=eta, noise=noise)
        return self.to_levels(xt)

    def _start(
        self, n: int, y: torch.Tensor | None, guidance: float, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        require_int("n", n, low=1)
        if not (isinstance(guidance, (int, float)) and math.isfinite(guidance) and guidance >= 0):
            raise ValueError(f"guidance must be a finite number >= 0, got {guidance!r}")
        if guidance and y is None:
            raise ValueError("guidance needs labels y")
        y = self._checked_labels(y, n)
        return _normal_like(self._anchor.new_empty(n, self.dim), generator), y

    # ----- checks -----------------------------------------------------------------------------------------------

    def _checked_input(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, D) as given, checked: finite, and levels 0..L-1 for discrete data."""
        require_shape("x", x, (None, self.dim))
        require_nonempty("x", x)
        if self.levels is not None:
            require_levels("x", x, self.levels)
        elif x.is_floating_point():
            require_finite("x", x)
        return x

    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, D) checked and mapped to the model's space (``to_unit``)."""
        return self.to_unit(self._checked_input(x))

    def _checked_labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if y is None:
            return None
        if self.classes is None:
            raise ValueError("y given to an unconditional model (build it with classes=...)")
        require_shape("y", y, (n,))
        if y.is_floating_point() or (y < 0).any() or (y >= self.classes).any():
            raise ValueError(f"y must hold integer labels in 0..{self.classes - 1}")
        return y.long().to(self._anchor.device)


def _normal_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of x's shape, dtype and device, drawn from ``generator`` (on any device) if given."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


def ddim_timesteps(steps: int, count: int) -> torch.Tensor:
    """The DDIM subsequence, largest first: t_i = 1 + i * (T // count) for i = count-1..0, shape (count,).

    The "leading" spacing of Song et al.'s code and of diffusers (whose 0-based
    timesteps are these minus one).
    """
    require_int("steps", steps, low=1)
    require_int("count", count, low=1)
    if count > steps:
        raise ValueError(f"count must be at most steps = {steps}, got {count}")
    return (torch.arange(count) * (steps // count) + 1).flip(0)


def timestep_blocks(steps: int, strata: int) -> torch.Tensor:
    """Split t = 2..T into ``strata`` contiguous blocks of near-equal size: (strata, 2), first and last t of each."""
    require_int("steps", steps, low=2)
    require_int("strata", strata, low=1)
    if strata > steps - 1:
        raise ValueError(f"strata must be at most T - 1 = {steps - 1}, got {strata}")
    edges = torch.linspace(2, steps + 1, strata + 1).round().long()
    return torch.stack([edges[:-1], edges[1:] - 1], dim=1)


def discretized_gaussian_log_prob(
    x0: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, centres: torch.Tensor
) -> torch.Tensor:
    """log P(x_0) of N(mean, std^2) integrated over x_0's bin (eq-discrete-decoder): (batch, D) -> (batch, D).

    Level centres c_0 < ... < c_{L-1} with spacing 2 delta; the bin of c_k is
    [c_k - delta, c_k + delta], the outer bins reach -inf and +inf, so the L
    probabilities of a pixel sum to 1 (Ho et al. 2020, section 3.3).
    """
    delta = (centres[1] - centres[0]) / 2
    upper = torch.where(x0 >= centres[-1] - delta / 2, torch.full_like(x0, math.inf), x0 + delta)
    lower = torch.where(x0 <= centres[0] + delta / 2, torch.full_like(x0, -math.inf), x0 - delta)
    z_upper, z_lower = (upper - mean) / std, (lower - mean) / std
    # P = Phi(z_upper) - Phi(z_lower), computed on the side of the mean where it does not cancel
    flip = z_lower > 0
    a = torch.where(flip, -z_upper, z_lower)
    b = torch.where(flip, -z_lower, z_upper)
    log_b = torch.special.log_ndtr(b)
    return log_b + torch.log1p(-torch.exp((torch.special.log_ndtr(a) - log_b).clamp(max=0))).clamp(min=-1e4)

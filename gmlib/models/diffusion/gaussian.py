"""Diffusion of 1D Gaussian data, where every quantity is exact (chapter "Diffusion", the bound and its gap).

For data x_0 ~ N(m, s^2) the forward chain keeps every marginal Gaussian,
q(x_t) = N(sqrt(abar_t) m, abar_t s^2 + 1 - abar_t), and every reverse
conditional q(x_{t-1} | x_t) is Gaussian with a mean linear in x_t. Using
those conditionals as the reverse process (the best a Gaussian reverse process
can do, exactly) makes the bound, each of its terms, the model's own
log-likelihood and the gap between them closed-form expressions.
"""

import math
from dataclasses import dataclass

import torch

from gmlib.models.diffusion.ddpm import gaussian_kl
from gmlib.models.diffusion.schedule import NoiseSchedule
from gmlib.validation import require_finite, require_positive, require_tensor


@dataclass(frozen=True)
class GaussianDiffusion:
    """The forward process of ``schedule`` applied to data N(mean, std^2), with its exact reverse process.

    Tensors are float64, indexed by t - 1 like the schedule's. ``std = 0``
    is a single point (the reverse conditionals are then the posteriors
    q(x_{t-1} | x_t, x_0) themselves).
    """

    schedule: NoiseSchedule
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, NoiseSchedule):
            raise ValueError(f"schedule must be a NoiseSchedule, got {type(self.schedule).__name__}")
        if not (isinstance(self.mean, (int, float)) and math.isfinite(self.mean)):
            raise ValueError(f"mean must be a finite number, got {self.mean!r}")
        if not (isinstance(self.std, (int, float)) and math.isfinite(self.std) and self.std >= 0):
            raise ValueError(f"std must be a finite number >= 0, got {self.std!r}")

    def marginal(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_t) for t = 0..T: two (T + 1,) tensors (t = 0 is the data)."""
        abar = torch.cat([torch.ones(1, dtype=torch.float64), self.schedule.alpha_bars])
        return abar.sqrt() * self.mean, abar * self.std**2 + 1 - abar

    def reverse(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q(x_{t-1} | x_t) = N(a_t x_t + b_t, v_t) for t = 1..T: (a, b, v), each (T,) (eq-gaussian-reverse).

        From the joint Gaussian of (x_{t-1}, x_t): Cov = sqrt(alpha_t) Var(x_{t-1}),
        so a_t = sqrt(alpha_t) V_{t-1} / V_t, b_t = M_{t-1} - a_t M_t and
        v_t = V_{t-1} - alpha_t V_{t-1}^2 / V_t.
        """
        m, var = self.marginal()
        alphas = self.schedule.alphas
        a = alphas.sqrt() * var[:-1] / var[1:]
        return a, m[:-1] - a * m[1:], var[:-1] - alphas * var[:-1] ** 2 / var[1:]

    def _x0(self, x0: torch.Tensor) -> torch.Tensor:
        require_tensor("x0", x0)
        if x0.dim() != 1:
            raise ValueError(f"x0 must have shape (n,), got {tuple(x0.shape)}")
        x0 = x0.to(torch.float64)
        require_finite("x0", x0)
        return x0[:, None]

    def _variances(self, variances: torch.Tensor | None) -> torch.Tensor:
        """The reverse variances sigma_t^2 (T,): the exact v_t by default, else checked > 0."""
        if variances is None:
            require_positive("std", self.std)  # v_1 = 0 for a point
            return self.reverse()[2]
        require_tensor("variances", variances)
        if variances.shape != (self.schedule.steps,):
            raise ValueError(f"variances must have shape ({self.schedule.steps},), got {tuple(variances.shape)}")
        variances = variances.to(torch.float64)
        require_finite("variances", variances)
        if (variances <= 0).any():
            raise ValueError("variances must be > 0")
        return variances

    def bound_terms(self, x0: torch.Tensor, *, variances: torch.Tensor | None = None) -> torch.Tensor:
        """The exact terms L_0, ..., L_T of the bound at each x_0: (n, T + 1).

        The reverse process has the exact means a_t x_t + b_t and the variances
        ``variances`` (T,) (default: the exact v_t, the optimal Gaussian reverse
        process). Expectations over x_t ~ q(x_t | x_0) are taken in closed form
        (no sampling): L_{t-1} = E KL(N(mu_tilde, beta_tilde) || N(a x_t + b, sigma_t^2)),
        L_0 = E[-log N(x_0; a_1 x_1 + b_1, sigma_1^2)], L_T = KL(q(x_T | x_0) || N(0, 1)).
        """
        x = self._x0(x0)
        s = self.schedule
        a, b, _ = self.reverse()
        v = self._variances(variances)
        abar = s.alpha_bars
        # x_t given x_0: mean sqrt(abar_t) x_0, variance 1 - abar_t
        A, B = s.posterior_x0_coefs, s.posterior_xt_coefs  # mu_tilde = A x_0 + B x_t
        mean_gap = A * x + (B - a) * abar.sqrt() * x - b  # E[mu_tilde - mu_p]
        spread = (B - a) ** 2 * (1 - abar)  # Var[mu_tilde - mu_p]
        kl = 0.5 * (torch.log(v / s.posterior_variances) + (s.posterior_variances + mean_gap**2 + spread) / v - 1)
        decoder_gap = x - a[0] * abar[0].sqrt() * x - b[0]
        first = 0.5 * torch.log(2 * math.pi * v[0]) + (decoder_gap**2 + a[0] ** 2 * (1 - abar[0])) / (2 * v[0])
        last = gaussian_kl(abar[-1].sqrt() * x, 1 - abar[-1], torch.zeros(()), torch.ones(()))[:, None]
        return torch.cat([first, kl[:, 1:], last], dim=1)

    def model_log_prob(self, x0: torch.Tensor, *, variances: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_0) of the reverse process started at N(0, 1): (n,), exact (a linear-Gaussian chain).

        The reverse steps are N(a_t x_t + b_t, sigma_t^2) with ``variances`` as in ``bound_terms``.
        """
        x = self._x0(x0)[:, 0]
        a, b, _ = self.reverse()
        v = self._variances(variances)
        mean, var = torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64)
        for t in range(self.schedule.steps - 1, -1, -1):
            mean, var = a[t] * mean + b[t], a[t] ** 2 * var + v[t]
        return torch.distributions.Normal(mean, var.sqrt()).log_prob(x)

    def data_entropy(self) -> float:
        """H(q(x_0)) = 1/2 log(2 pi e s^2), in nats."""
        require_positive("std", self.std)
        return 0.5 * math.log(2 * math.pi * math.e * self.std**2)

    def prior_mismatch(self) -> float:
        """KL(q(x_T) || N(0, 1)): what the mean bound exceeds the data entropy by (eq-gaussian-bound-mean)."""
        m, var = self.marginal()
        return gaussian_kl(m[-1:], var[-1], torch.zeros(()), torch.ones(())).item()

"""The forward process of a diffusion model: a noise schedule and the Gaussians it fixes (chapter "Diffusion").

Time runs t = 1..T as in Ho et al. (2020); a tensor of per-step constants is
indexed by t - 1, so ``schedule.betas[t - 1]`` is beta_t. Every constant is
computed once, in float64, from the betas:

    alpha_t     = 1 - beta_t
    abar_t      = prod_{s <= t} alpha_s                         (eq-forward-marginal)
    beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t     (eq-posterior)

with abar_0 = 1, so beta_tilde_1 = 0: given x_0, x_0 is known.
"""

import math
from dataclasses import dataclass, fields
from typing import Self

import torch

from gmlib.validation import require_finite, require_int, require_positive, require_tensor


@dataclass(frozen=True)
class NoiseSchedule:
    """A frozen bundle of the forward process's constants, float64 tensors of shape (T,).

    Build it with ``NoiseSchedule.from_betas``, ``linear`` or ``cosine``; the
    fields are derived from ``betas`` and checked on construction. ``to(device)``
    returns a copy on another device.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    alpha_bars_prev: torch.Tensor
    posterior_variances: torch.Tensor
    posterior_x0_coefs: torch.Tensor
    posterior_xt_coefs: torch.Tensor

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> Self:
        """The schedule of the variances ``betas`` (T,), each in (0, 1).

        Raises ValueError for an empty or non-1D tensor, or a beta outside (0, 1)
        (abar_t then decreases strictly, as it must).
        """
        require_tensor("betas", betas)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(f"betas must have shape (T,) with T >= 1, got {tuple(betas.shape)}")
        betas = betas.detach().to(dtype=torch.float64)
        require_finite("betas", betas)
        if (betas <= 0).any() or (betas >= 1).any():
            raise ValueError(f"betas must lie in (0, 1), got values in {betas.min().item():g}..{betas.max().item():g}")
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, 0)
        alpha_bars_prev = torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
        return cls(
            betas=betas,
            alphas=alphas,
            alpha_bars=alpha_bars,
            alpha_bars_prev=alpha_bars_prev,
            posterior_variances=(1 - alpha_bars_prev) / (1 - alpha_bars) * betas,
            posterior_x0_coefs=alpha_bars_prev.sqrt() * betas / (1 - alpha_bars),
            posterior_xt_coefs=alphas.sqrt() * (1 - alpha_bars_prev) / (1 - alpha_bars),
        )

    @classmethod
    def from_alpha_bars(cls, alpha_bars: torch.Tensor) -> Self:
        """The schedule whose products abar_1 > ... > abar_T, each in (0, 1), are ``alpha_bars`` (T,).

        beta_t = 1 - abar_t / abar_{t-1}; raises ValueError unless abar decreases
        strictly inside (0, 1) (a non-decreasing step would need beta <= 0).
        """
        require_tensor("alpha_bars", alpha_bars)
        if alpha_bars.dim() != 1 or alpha_bars.numel() < 1:
            raise ValueError(f"alpha_bars must have shape (T,) with T >= 1, got {tuple(alpha_bars.shape)}")
        alpha_bars = alpha_bars.detach().to(dtype=torch.float64)
        require_finite("alpha_bars", alpha_bars)
        previous = torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
        if (alpha_bars <= 0).any() or (alpha_bars >= previous).any():
            raise ValueError("alpha_bars must decrease strictly from below 1 and stay > 0")
        return cls.from_betas(1 - alpha_bars / previous)

    @classmethod
    def linear(cls, steps: int = 1000, *, beta_start: float = 1e-4, beta_end: float = 0.02) -> Self:
        """Ho et al.'s schedule: betas evenly spaced from ``beta_start`` to ``beta_end`` over ``steps`` steps."""
        require_int("steps", steps, low=1)
        require_positive("beta_start", beta_start)
        require_positive("beta_end", beta_end)
        return cls.from_betas(torch.linspace(beta_start, beta_end, steps, dtype=torch.float64))

    @classmethod
    def log_snr_linear(cls, steps: int = 1000, *, snr_max: float = 1e4, snr_min: float = 1e-4) -> Self:
        """log SNR_t = log(abar_t / (1 - abar_t)) falling linearly from log ``snr_max`` to log ``snr_min``.

        abar_t = sigmoid(log SNR_t), so beta_1 = 1 / (1 + snr_max) and abar_T = snr_min / (1 + snr_min).
        Every step lowers the signal-to-noise ratio by the same factor, so the
        noise scales from sqrt(1 / snr_max) to about 1 get equal numbers of steps.
        """
        require_int("steps", steps, low=1)
        require_positive("snr_max", snr_max)
        require_positive("snr_min", snr_min)
        if snr_min >= snr_max:
            raise ValueError(f"snr_min must be below snr_max, got {snr_min!r} >= {snr_max!r}")
        log_snr = torch.linspace(math.log(snr_max), math.log(snr_min), steps, dtype=torch.float64)
        return cls.from_alpha_bars(torch.sigmoid(log_snr))

    @classmethod
    def cosine(cls, steps: int = 1000, *, offset: float = 0.008, max_beta: float = 0.999) -> Self:
        """Nichol & Dhariwal's (2021) schedule: abar_t = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2).

        beta_t = 1 - abar_t / abar_{t-1}, clipped at ``max_beta`` so that the
        last step, where abar reaches 0, keeps beta < 1.
        """
        require_int("steps", steps, low=1)
        require_positive("offset", offset)
        if not (isinstance(max_beta, float) and 0 < max_beta < 1):
            raise ValueError(f"max_beta must be a float in (0, 1), got {max_beta!r}")
        grid = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((grid + offset) / (1 + offset) * math.pi / 2) ** 2
        return cls.from_betas((1 - f[1:] / f[:-1]).clamp(max=max_beta))

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, torch.Tensor) or value.dtype != torch.float64 or value.shape != self.betas.shape:
                raise ValueError(f"{field.name} must be a float64 tensor of shape {tuple(self.betas.shape)}")

    @property
    def steps(self) -> int:
        """T, the number of diffusion steps."""
        return self.betas.numel()

    def to(self, device: torch.device | str) -> Self:
        """The same schedule with every tensor on ``device`` (still float64)."""
        return type(self)(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def check_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Return ``t`` as int64 after checking it holds integers in 1..T; raise ValueError otherwise."""
        require_tensor("t", t)
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"t must hold integer timesteps, got dtype {t.dtype}")
        if t.numel() and (t.min() < 1 or t.max() > self.steps):
            raise ValueError(f"t must lie in 1..{self.steps}, got values in {t.min().item()}..{t.max().item()}")
        return t.long()

    def at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The constant ``name`` at timesteps t (batch,), shaped (batch, 1, ..., 1) to broadcast against ``like``.

        The value is cast to ``like``'s dtype after indexing (the table stays float64).
        """
        t = self.check_timesteps(t)
        value = getattr(self, name).to(t.device)[t - 1]
        return value.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def forward_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, a draw of q(x_t | x_0) (eq-forward-marginal).

        x0 and noise (batch, *event), t (batch,) in 1..T -> (batch, *event).
        """
        return self.at("alpha_bars", t, x0).sqrt() * x0 + (1 - self.at("alpha_bars", t, x0)).sqrt() * noise

    def posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (batch, *event) and variance (batch, 1, ..., 1) of q(x_{t-1} | x_t, x_0) (eq-posterior)."""
        mean = self.at("posterior_x0_coefs", t, x0) * x0 + self.at("posterior_xt_coefs", t, xt) * xt
        return mean, self.at("posterior_variances", t, x0)

    def predicted_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), the forward sample solved for x_0."""
        abar = self.at("alpha_bars", t, xt)
        return (xt - (1 - abar).sqrt() * eps) / abar.sqrt()

    def predicted_eps(self, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t), the forward sample solved for eps."""
        abar = self.at("alpha_bars", t, xt)
        return (xt - abar.sqrt() * x0) / (1 - abar).sqrt()

    def reverse_mean(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t), the mean of eq-eps-mean: (batch, *event).

        Equal to the posterior mean ``posterior(predicted_x0(x_t, t, eps), x_t, t)``.
        """
        beta, abar = self.at("betas", t, xt), self.at("alpha_bars", t, xt)
        return (xt - beta / (1 - abar).sqrt() * eps) / self.at("alphas", t, xt).sqrt()

    def ddim_step(
        self,
        xt: torch.Tensor,
        t: torch.Tensor,
        t_prev: torch.Tensor,
        eps: torch.Tensor,
        *,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One DDIM update x_t -> x_{t_prev} (Song et al. 2021, eq. 12; eq-ddim): (batch, *event).

        x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps + s z, with
        x0_hat = ``predicted_x0``, s = eta sqrt((1 - abar_prev)/(1 - abar_t)) sqrt(1 - abar_t/abar_prev),
        t_prev (batch,) in 0..t-1 (abar_0 = 1), z = ``noise`` (needed when eta > 0).
        """
        t = self.check_timesteps(t)
        require_tensor("t_prev", t_prev)
        if t_prev.shape != t.shape or (t_prev < 0).any() or (t_prev >= t).any():
            raise ValueError("t_prev must have t's shape and lie in 0..t-1")
        abar = self.at("alpha_bars", t, xt)
        abar_prev = torch.where(t_prev > 0, self.alpha_bars.to(t.device)[(t_prev - 1).clamp(min=0)], 1.0)
        abar_prev = abar_prev.to(xt.dtype).reshape(abar.shape)
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
        x0 = self.predicted_x0(xt, t, eps)
        step = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta == 0:
            return step
        if noise is None:
            raise ValueError("noise must be given when eta > 0")
        return step + sigma * noise

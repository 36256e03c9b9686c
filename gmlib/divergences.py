"""Divergences between distributions (book chapters "Prerequisites", "MLE", "GANs").

Discrete divergences take probability vectors p, q (..., K) that are
non-negative and sum to 1 along the last axis, and return (...). The log base
is explicit: ``base=math.e`` gives nats, ``base=2`` bits.
"""

import math

import torch

from gmlib.validation import require_finite, require_positive, require_probability_vector


def _check_pair(p: torch.Tensor, q: torch.Tensor) -> None:
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    require_probability_vector("p", p)
    require_probability_vector("q", q)


def _log_base(base: float) -> float:
    require_positive("base", base)
    if base == 1:
        raise ValueError("base must not be 1 (log base 1 is undefined); use math.e for nats or 2 for bits")
    return math.log(base)


def kl_terms(p: torch.Tensor, q: torch.Tensor, *, base: float = math.e) -> torch.Tensor:
    """The per-outcome penalties p(x) log(p(x)/q(x)) (..., K) whose sum is KL(p || q).

    Chapter "Prerequisites", eq. (kl-definition). Terms where p(x) = 0 are 0
    (the limit of t log t); where p(x) > 0 = q(x) the penalty is +inf.
    """
    _check_pair(p, q)
    p, q = p.double(), q.double()
    ratio = torch.where(p > 0, p / q, torch.ones_like(p))
    return torch.where(p > 0, p * torch.log(ratio), torch.zeros_like(p)) / _log_base(base)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, *, base: float = math.e) -> torch.Tensor:
    """KL(p || q) = sum_x p(x) log(p(x)/q(x)) for probability vectors (..., K) -> (...)."""
    return kl_terms(p, q, base=base).sum(-1)


def js_divergence(p: torch.Tensor, q: torch.Tensor, *, base: float = math.e) -> torch.Tensor:
    """JSD(p || q) = KL(p || m)/2 + KL(q || m)/2 with m = (p + q)/2; (..., K) -> (...).

    Bounded by log(2) in the chosen base: log 2 nats, or exactly 1 bit.
    """
    _check_pair(p, q)
    m = (p.double() + q.double()) / 2
    return (kl_divergence(p.double(), m, base=base) + kl_divergence(q.double(), m, base=base)) / 2


def kl_monte_carlo(log_p: torch.Tensor, log_q: torch.Tensor) -> tuple[float, float]:
    """Estimate KL(p || q) = E_p[log p - log q] from log-densities (n,) at n samples of p.

    Returns (estimate, standard error) in nats.
    """
    if log_p.shape != log_q.shape or log_p.dim() != 1 or log_p.numel() < 2:
        raise ValueError(
            f"log_p and log_q must both have shape (n,) with n >= 2, got {tuple(log_p.shape)} and {tuple(log_q.shape)}"
        )
    require_finite("log_p", log_p)
    require_finite("log_q", log_q)
    gap = (log_p - log_q).double()
    return gap.mean().item(), (gap.std() / math.sqrt(gap.numel())).item()

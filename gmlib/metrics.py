"""Numbers that compare models: negative log-likelihood and exact integrals on grids."""

import math

import torch

from gmlib.validation import require_finite, require_positive


@torch.no_grad()
def nll(log_prob: torch.Tensor) -> tuple[float, float]:
    """Mean negative log-likelihood and its standard error, in nats, from log_prob (n,)."""
    if log_prob.dim() != 1 or log_prob.numel() < 2:
        raise ValueError(f"log_prob must have shape (n,) with n >= 2, got {tuple(log_prob.shape)}")
    require_finite("log_prob", log_prob)
    values = -log_prob.double()
    return values.mean().item(), (values.std() / math.sqrt(values.numel())).item()


def grid_2d(*, lim: float, n: int) -> tuple[torch.Tensor, float]:
    """Midpoints of an n x n grid on [-lim, lim]^2 as (n*n, 2), and the area of one cell.

    The midpoint rule on this grid integrates a smooth density with error
    O(cell^2); the chapters state the tolerance that follows.
    """
    require_positive("lim", lim)
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    h = 2 * lim / n
    axis = torch.linspace(-lim + h / 2, lim - h / 2, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1), h * h

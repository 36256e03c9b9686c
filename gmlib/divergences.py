"""Divergences between distributions (book chapters "Prerequisites", "MLE", "GANs").

Discrete divergences take probability vectors p, q (..., K) that are
non-negative and sum to 1 along the last axis, and return (...). The log base
is explicit: ``base=math.e`` gives nats, ``base=2`` bits.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from gmlib.validation import require_finite, require_positive, require_probability_vector, require_tensor


def _check_pair(p: torch.Tensor, q: torch.Tensor) -> None:
    require_tensor("p", p)
    require_tensor("q", q)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    require_probability_vector("p", p)
    require_probability_vector("q", q)


def _log_base(base: float) -> float:
    """log(base), for a base > 1: a base in (0, 1) has log(base) < 0 and would turn every divergence negative."""
    if not (isinstance(base, (int, float)) and math.isfinite(base) and base > 1):
        raise ValueError(f"base must be a finite number > 1 (math.e for nats, 2 for bits), got {base!r}")
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
    require_tensor("log_p", log_p)
    require_tensor("log_q", log_q)
    if log_p.shape != log_q.shape or log_p.dim() != 1 or log_p.numel() < 2:
        raise ValueError(
            f"log_p and log_q must both have shape (n,) with n >= 2, got {tuple(log_p.shape)} and {tuple(log_q.shape)}"
        )
    require_finite("log_p", log_p)
    require_finite("log_q", log_q)
    gap = (log_p - log_q).double()
    return gap.mean().item(), (gap.std() / math.sqrt(gap.numel())).item()


# --- Chapter "GANs": sample-based distances and the f-divergence table -----------------------------------------


def _common_dtype(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y in one floating dtype: the promoted one (float32 with float64 gives float64), as torch.cat does."""
    dtype = torch.promote_types(x.dtype, y.dtype)
    dtype = dtype if dtype.is_floating_point else torch.get_default_dtype()
    return x.to(dtype), y.to(dtype)


def _check_samples(
    x: torch.Tensor, y: torch.Tensor, *, dims: int, batched: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, ...) and y (m, ...) must be non-empty, finite, and agree on every axis but the sample axis.

    With ``batched``, samples (n, d) may carry leading batch axes, (..., n, d),
    which x and y share; the sample axis is then the second to last. Returns
    x and y promoted to one floating dtype, so W1, sliced W and MMD all treat
    a float32 sample against a float64 one alike (in float64).
    """
    for name, s in (("x", x), ("y", y)):
        require_tensor(name, s)
        if (s.dim() < dims if batched else s.dim() != dims) or s.shape[-dims] == 0:
            want = "(n,)" if dims == 1 else "(..., n, d)" if batched else "(n, d)"
            raise ValueError(f"{name} must be a non-empty sample of shape {want}, got {tuple(s.shape)}")
        require_finite(name, s)
    sample_axis = x.dim() - dims  # the axes before it are batch axes, the ones after it the event
    same = x.shape[:sample_axis] == y.shape[:sample_axis] and x.shape[sample_axis + 1 :] == y.shape[sample_axis + 1 :]
    if x.dim() != y.dim() or not same:
        raise ValueError(
            f"x and y must agree on every axis but the sample axis, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return _common_dtype(x, y)


def wasserstein_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W1 between the empirical distributions of 1D samples x (n,) and y (m,): a scalar.

    Chapter "GANs", eq. (eq-w1-cdf): in one dimension the optimal transport cost
    is the area between the two CDFs, W1 = int |F_x(t) - F_y(t)| dt, evaluated
    exactly on the merged sorted sample. Differentiable in x and y (through the
    sorted values), so it can be a training loss.
    """
    x, y = _check_samples(x, y, dims=1)
    merged, _ = torch.sort(torch.cat([x, y]))
    widths = merged[1:] - merged[:-1]  # (n + m - 1,)
    knots = merged[:-1].detach()
    cdf_x = torch.searchsorted(torch.sort(x.detach())[0].contiguous(), knots, right=True).to(x.dtype) / x.shape[0]
    cdf_y = torch.searchsorted(torch.sort(y.detach())[0].contiguous(), knots, right=True).to(x.dtype) / y.shape[0]
    return ((cdf_x - cdf_y).abs() * widths).sum()


def sliced_wasserstein(
    x: torch.Tensor, y: torch.Tensor, *, projections: int = 128, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sliced W1 between samples x (n, d) and y (m, d): a scalar.

    Chapter "GANs", eq. (eq-sliced-w): the average over random unit directions
    theta (uniform on the sphere, ``projections`` of them) of W1 between the 1D
    projections <theta, x> and <theta, y>. In d = 1 every direction is +-1 and
    the value is exactly ``wasserstein_1d``. ``generator`` seeds the directions.
    Batches of samples of equal size, x and y (..., n, d), give one value per
    batch entry (...), on the same directions.
    """
    x, y = _check_samples(x, y, dims=2, batched=True)
    if x.dim() > 2 and x.shape[-2] != y.shape[-2]:
        raise ValueError(f"batched samples must have equal sizes, got {tuple(x.shape)} and {tuple(y.shape)}")
    if not isinstance(projections, int) or projections < 1:
        raise ValueError(f"projections must be an int >= 1, got {projections!r}")
    directions = torch.randn(x.shape[-1], projections, generator=generator, dtype=x.dtype).to(x.device)
    directions = directions / directions.norm(dim=0, keepdim=True)  # (d, P) unit columns
    px, py = x @ directions, y @ directions  # (..., n, P), (..., m, P)
    if x.shape[-2] == y.shape[-2]:  # equal sizes: W1 is the mean gap between sorted projections
        return (torch.sort(px, dim=-2)[0] - torch.sort(py, dim=-2)[0]).abs().mean((-2, -1))
    return torch.stack([wasserstein_1d(px[:, k], py[:, k]) for k in range(projections)]).mean()


def _projected_w1(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """W1 between the projections <theta, x> and <theta, y> for each column theta of directions (d, P): (P,)."""
    px, py = x @ directions, y @ directions  # (n, P), (m, P)
    if x.shape[0] == y.shape[0]:
        return (torch.sort(px, dim=0)[0] - torch.sort(py, dim=0)[0]).abs().mean(0)
    return torch.stack([wasserstein_1d(px[:, k], py[:, k]) for k in range(directions.shape[1])])


def max_sliced_wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    projections: int = 256,
    steps: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Max-sliced W1 between samples x (n, d) and y (m, d): a scalar (Deshpande et al. 2019).

    Chapter "GANs", eq. (eq-max-sliced-w): the maximum over unit directions
    theta of W1 between the 1D projections <theta, x> and <theta, y>. The
    direction is the best of ``projections`` random ones (seeded by
    ``generator``), refined by ``steps`` of gradient ascent along the sphere
    that keep only improving steps (a step that does not improve is halved),
    so the value is never below that of any direction tried (a lower bound on
    the exact maximum, which the ascent reaches to high precision). In d = 1 it
    is ``wasserstein_1d``. Differentiable in x and y with the maximising
    direction held fixed (the gradient of a maximum is the gradient at its
    argmax), so it can be a training loss.
    """
    x, y = _check_samples(x, y, dims=2)
    if not isinstance(projections, int) or projections < 1:
        raise ValueError(f"projections must be an int >= 1, got {projections!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    xd, yd = x.detach(), y.detach()
    directions = torch.randn(x.shape[-1], projections, generator=generator, dtype=x.dtype).to(x.device)
    directions = directions / directions.norm(dim=0, keepdim=True)  # (d, P) unit columns
    values = _projected_w1(xd, yd, directions)
    best_value, best = values.max(), directions[:, values.argmax()]
    step, tangent = 0.5, None
    for _ in range(steps):  # ascent with backtracking: a step that does not improve is halved
        if tangent is None:
            theta = best.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(_projected_w1(xd, yd, theta[:, None])[0], theta)
            tangent = grad - (grad @ best) * best  # the gradient along the sphere
            if tangent.norm() == 0:
                break
            tangent = tangent / tangent.norm()
        candidate = best + step * tangent
        candidate = candidate / candidate.norm()
        value = _projected_w1(xd, yd, candidate[:, None])[0]
        if value > best_value:
            best_value, best, tangent, step = value, candidate, None, step * 1.5
        else:
            step /= 2
    return _projected_w1(x, y, best[:, None])[0]


def check_bandwidths(bandwidths: tuple[float, ...]) -> tuple[float, ...]:
    """``bandwidths`` as a tuple of floats, or a ValueError: a non-empty sequence of numbers h > 0."""
    if isinstance(bandwidths, (str, bytes)) or not isinstance(bandwidths, (tuple, list)) or not bandwidths:
        raise ValueError(
            f"bandwidths must be a non-empty tuple of numbers h > 0, got {bandwidths!r}"
            + (f"; write ({bandwidths!r},) for a single bandwidth" if isinstance(bandwidths, (int, float)) else "")
        )
    for h in bandwidths:
        require_positive("bandwidths", h)
    return tuple(float(h) for h in bandwidths)


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, *, bandwidths: tuple[float, ...] = (1.0,)) -> torch.Tensor:
    """k(x_i, y_j) = sum_h exp(-|x_i - y_j|^2 / (2 h^2)) for x (..., n, d), y (..., m, d): the (..., n, m) Gram matrix.

    A sum of Gaussian (RBF) kernels, one per bandwidth h (the standard deviation
    of the Gaussian, sklearn's ``rbf_kernel`` with gamma = 1 / (2 h^2)); each is
    characteristic, so the MMD it defines is zero only when the two
    distributions are equal. x and y are promoted to one floating dtype.
    """
    bandwidths = check_bandwidths(bandwidths)
    for name, s in (("x", x), ("y", y)):
        require_tensor(name, s)
    x, y = _common_dtype(x, y)
    squared = torch.cdist(x, y).pow(2)  # (n, m)
    return sum(torch.exp(-squared / (2 * h * h)) for h in bandwidths)


def mmd(x: torch.Tensor, y: torch.Tensor, *, bandwidths: tuple[float, ...] = (1.0,)) -> torch.Tensor:
    """Unbiased estimate of MMD^2 between samples x (n, d) and y (m, d), n, m >= 2: a scalar.

    Chapter "GANs", eq. (eq-mmd): MMD^2 = E k(X, X') - 2 E k(X, Y) + E k(Y, Y')
    with the kernel ``gaussian_kernel(bandwidths)``; the U-statistic drops the
    diagonal terms k(x_i, x_i), so the estimate is unbiased (and can be slightly
    negative when the distributions are equal). Batches of samples, x (..., n, d)
    and y (..., m, d), give one estimate per batch entry (...).
    """
    x, y = _check_samples(x, y, dims=2, batched=True)
    n, m = x.shape[-2], y.shape[-2]
    if n < 2 or m < 2:
        raise ValueError(f"x and y must hold at least 2 samples each for the unbiased MMD, got {n} and {m}")
    kxx = gaussian_kernel(x, x, bandwidths=bandwidths)
    kyy = gaussian_kernel(y, y, bandwidths=bandwidths)
    kxy = gaussian_kernel(x, y, bandwidths=bandwidths)
    within_x = (kxx.sum((-2, -1)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))
    within_y = (kyy.sum((-2, -1)) - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)) / (m * (m - 1))
    return within_x + within_y - 2 * kxy.mean((-2, -1))


FDivergenceName = Literal["kl", "reverse_kl", "pearson", "hellinger", "js", "gan"]


@dataclass(frozen=True)
class FDivergence:
    """One row of the f-GAN table (Nowozin et al. 2016, Table 6; chapter "GANs", eq. (eq-f-divergence)).

    D_f(P || Q) = E_Q[f(p/q)] with f convex and f(1) = 0 (except the "gan" row,
    D_f = 2 JSD - log 4, f(1) = -log 4; and "js" gives 2 JSD). The critic's raw
    output v is mapped by ``activation`` into the domain of the conjugate
    f*(t) = sup_u (t u - f(u)), and E_P[T] - E_Q[f*(T)] <= D_f(P || Q) for every T.
    All callables act elementwise on tensors.
    """

    name: FDivergenceName
    f: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]
    activation: Callable[[torch.Tensor], torch.Tensor]
    f_prime: Callable[[torch.Tensor], torch.Tensor]


def _xlogx(u: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(u, u)


F_DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence("kl", _xlogx, lambda t: torch.exp(t - 1), lambda v: v, lambda u: torch.log(u) + 1),
    "reverse_kl": FDivergence(
        "reverse_kl", lambda u: -torch.log(u), lambda t: -1 - torch.log(-t), lambda v: -torch.exp(-v), lambda u: -1 / u
    ),
    "pearson": FDivergence(
        "pearson", lambda u: (u - 1) ** 2, lambda t: t * t / 4 + t, lambda v: v, lambda u: 2 * (u - 1)
    ),
    "hellinger": FDivergence(
        "hellinger",
        lambda u: (torch.sqrt(u) - 1) ** 2,
        lambda t: t / (1 - t),
        lambda v: 1 - torch.exp(-v),
        lambda u: 1 - 1 / torch.sqrt(u),
    ),
    "js": FDivergence(
        "js",
        lambda u: _xlogx(u) - (u + 1) * torch.log((u + 1) / 2),
        lambda t: -torch.log(2 - torch.exp(t)),
        lambda v: math.log(2) - torch.nn.functional.softplus(-v),
        lambda u: torch.log(2 * u / (u + 1)),
    ),
    "gan": FDivergence(
        "gan",
        lambda u: _xlogx(u) - (u + 1) * torch.log(u + 1),
        lambda t: -torch.log(-torch.expm1(t)),
        lambda v: -torch.nn.functional.softplus(-v),
        lambda u: torch.log(u / (u + 1)),
    ),
}


def f_divergence_spec(name: FDivergenceName) -> FDivergence:
    """The table row for ``name``; raises ValueError naming the allowed divergences."""
    if name not in F_DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(F_DIVERGENCES)}, got {name!r}")
    return F_DIVERGENCES[name]


def f_divergence(p: torch.Tensor, q: torch.Tensor, *, divergence: FDivergenceName) -> torch.Tensor:
    """D_f(p || q) = sum_x q(x) f(p(x)/q(x)) for probability vectors (..., K) with q > 0 -> (...), in nats."""
    _check_pair(p, q)
    if (q <= 0).any():
        raise ValueError("q must be > 0 everywhere for D_f(p || q) = sum q f(p/q); got a zero entry")
    spec = f_divergence_spec(divergence)
    p, q = p.double(), q.double()
    return (q * spec.f(p / q)).sum(-1)

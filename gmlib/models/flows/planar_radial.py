"""Planar and radial layers (Rezende & Mohamed 2015): linear-time log-determinants (eq-planar, eq-radial)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from gmlib.models.flows.transform import _slack, _VectorTransform
from gmlib.validation import (
    require_int,
    require_shape,
    require_tensor,
)

# --- planar (Rezende & Mohamed 2015, eq. 10-12, Appendix A.1) ---------------------------------------


class PlanarTransform(_VectorTransform):
    """y = x + u tanh(w^T x + b) (eq-planar), x, y (..., D); w, u (*batch, D), b (*batch).

    log |det dy/dx| = log |1 + u^T psi(x)|, psi(x) = h'(w^T x + b) w: the Jacobian
    I + u psi^T is a rank-one update, so the matrix determinant lemma gives its
    determinant in O(D). Invertible iff w^T u >= -1 (then a = w^T x solves the
    monotone scalar equation a + (w^T u) tanh(a + b) = w^T y); build u with
    ``Planar.u_hat``. The parameters may carry batch dimensions that broadcast
    against x's: an encoder that outputs one planar layer per image (the
    amortised flow posterior of eq-flow-free-energy) passes w, u (batch, D).
    """

    def __init__(self, w: torch.Tensor, u: torch.Tensor, b: torch.Tensor) -> None:
        require_tensor("w", w)
        super().__init__(w.shape[-1] if w.dim() >= 1 else 0)
        if w.dim() < 1 or self.dim < 1:
            raise ValueError(f"w of PlanarTransform must have shape (..., D) with D >= 1, got {tuple(w.shape)}")
        require_shape("u", u, tuple(w.shape))
        require_shape("b", b, tuple(w.shape[:-1]))
        wu = (w * u).sum(-1)
        if not (wu >= -1 - _slack(w)).all():
            raise ValueError(
                f"PlanarTransform needs w^T u >= -1 to be invertible, got {wu.min().item():.6g}; use Planar.u_hat()"
            )
        self.w, self.u, self.b = w, u, b

    def _ladj(self, h: torch.Tensor) -> torch.Tensor:
        """log |1 + (1 - h^2) w^T u| for h = tanh(w^T x + b) (...,): u^T psi with h' = 1 - tanh^2."""
        return torch.log(torch.abs(1 + (1 - h**2) * (self.w * self.u).sum(-1)))

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh((x * self.w).sum(-1) + self.b)  # (...,)
        return x + h[..., None] * self.u, self._ladj(h)

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wu, wy = (self.w * self.u).sum(-1), (y * self.w).sum(-1)  # (*batch,), (...,)
        a = _solve_planar(wy, wu, self.b, name=type(self).__name__)  # a = w^T x, detached
        # One Newton step on the graph: its value is a (a root), its gradient the implicit function theorem's.
        g = a + wu * torch.tanh(a + self.b) - wy
        step = g / (1 + wu * (1 - torch.tanh(a + self.b) ** 2))
        a = a - (step - step.detach())
        h = torch.tanh(a + self.b)
        return y - h[..., None] * self.u, self._ladj(h)


def _solve_planar(
    wy: torch.Tensor, wu: torch.Tensor, b: torch.Tensor, *, name: str, max_iter: int = 200
) -> torch.Tensor:
    """The root a of g(a) = a + c tanh(a + b) - wy, c = w^T u >= -1, for every entry of wy (...,), in float64.

    c and b broadcast against wy. g is non-decreasing (g' = 1 + c sech^2 >= 0) and
    |a - wy| <= |c|, so the root lies in [wy - |c|, wy + |c|]; Newton steps that
    leave the shrinking bracket are replaced by bisection, which converges whatever the start.
    """
    t = wy.detach().double()
    c, b = wu.detach().double(), b.detach().double()
    lo, hi, a = t - c.abs(), t + c.abs(), t.clone()
    tol = 64 * torch.finfo(torch.float64).eps * (1 + t.abs() + c.abs())
    width = hi - lo
    for _ in range(max_iter):
        th = torch.tanh(a + b)
        g = a + c * th - t
        hi, lo = torch.where(g > 0, a, hi), torch.where(g < 0, a, lo)
        newton = a - g / (1 + c * (1 - th * th))
        inside = (newton > lo) & (newton < hi)  # false for NaN too (g' = 0)
        # Newton on the S-shaped g can bounce between the two sides, shrinking the bracket slowly:
        # when a step did not halve the bracket, the next one bisects (convergence at least as fast).
        slow = hi - lo > width / 2
        new = torch.where(inside & ~slow, newton, (lo + hi) / 2)
        width = hi - lo
        done = ((new - a).abs() <= tol) | (width <= tol)
        a = new
        if done.all():
            break
    residual = (a + c * torch.tanh(a + b) - t).abs()
    if not (residual <= 1e3 * tol).all():
        raise ValueError(f"{name}.inverse did not converge (residual {residual.max().item():.3g})")
    return a.to(wy.dtype)


def planar_u_hat(w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """u_hat = u + (m(w^T u) - w^T u) w / |w|^2, m(a) = -1 + softplus(a), for w, u (..., D) -> (..., D).

    Rezende & Mohamed (2015, Appendix A.1): w^T u_hat = m(w^T u) > -1, so the planar
    layer built from (w, u_hat) is invertible whatever the raw u.
    """
    wu = (w * u).sum(-1, keepdim=True)
    ww = (w * w).sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    m = F.softplus(wu) - 1
    u_hat = u + (m - wu) * w / ww
    # That sum cancels when |w^T u| >> 1 (its w^T u_hat is off by ~eps |w| |u|); one step of iterative
    # refinement, whose correction is zero in exact arithmetic, brings w^T u_hat to m within ~eps.
    return u_hat + (m - (w * u_hat).sum(-1, keepdim=True)) * w / ww


class Planar(nn.Module):
    """The parameters of one planar layer (eq-planar); ``forward()`` -> ``PlanarTransform``.

    Raw parameters w, u (dim,), b () are unconstrained; the layer uses
    u_hat = u + (m(w^T u) - w^T u) w / |w|^2, m(a) = -1 + softplus(a)
    (Rezende & Mohamed 2015, Appendix A.1), so w^T u_hat = m(w^T u) > -1.
    With ``replicas=R`` the layer holds R independent planar maps, w, u (R, dim),
    b (R,), acting on inputs (..., R, dim): R flows trained side by side at the
    cost of one (Adam's update is elementwise, so the replicas never interact).
    """

    def __init__(self, dim: int, *, replicas: int | None = None) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        if replicas is not None:
            require_int("replicas", replicas, low=1)
        self.dim = dim
        batch = () if replicas is None else (replicas,)
        self.w = nn.Parameter(torch.randn(*batch, dim) / math.sqrt(dim))
        self.u = nn.Parameter(torch.randn(*batch, dim) / math.sqrt(dim))
        self.b = nn.Parameter(torch.zeros(batch))

    def u_hat(self) -> torch.Tensor:
        """u_hat (*replicas, dim) with w^T u_hat = -1 + softplus(w^T u) >= -1."""
        return planar_u_hat(self.w, self.u)

    def forward(self) -> PlanarTransform:
        return PlanarTransform(self.w, self.u_hat(), self.b)


# --- radial (Rezende & Mohamed 2015, eq. 14, Appendix A.2) ------------------------------------------


class RadialTransform(_VectorTransform):
    """y = x + beta h(alpha, r) (x - z0), h = 1 / (alpha + r), r = |x - z0| (eq-radial); x, y (..., D).

    z0 (D,), alpha > 0, beta >= -alpha (): then r -> r (1 + beta h) is increasing
    and the map is a bijection. The Jacobian is (1 + beta h) I plus a rank-one
    radial term, so log |det| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r),
    h'(r) = -h^2.
    """

    def __init__(self, z0: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> None:
        require_tensor("z0", z0)
        super().__init__(z0.shape[-1] if z0.dim() == 1 else 0)
        require_shape("z0", z0, (self.dim,))
        require_shape("alpha", alpha, ())
        require_shape("beta", beta, ())
        if not alpha.item() > 0:
            raise ValueError(f"RadialTransform needs alpha > 0, got {alpha.item():.6g}; use Radial.alpha()")
        if not beta.item() >= -alpha.item() * (1 + _slack(alpha)):
            raise ValueError(
                f"RadialTransform needs beta >= -alpha to be invertible, got beta = {beta.item():.6g}, "
                f"alpha = {alpha.item():.6g}; use Radial.beta()"
            )
        self.z0, self.alpha, self.beta = z0, alpha, beta

    def _ladj(self, r: torch.Tensor) -> torch.Tensor:
        bh = self.beta / (self.alpha + r)  # beta h (...,)
        return (self.dim - 1) * torch.log1p(bh) + torch.log1p(bh - bh * r / (self.alpha + r))

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = x - self.z0  # (..., D)
        r = torch.linalg.vector_norm(d, dim=-1)  # (...,)
        return x + (self.beta / (self.alpha + r))[..., None] * d, self._ladj(r)

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # |y - z0| = r (alpha + beta + r) / (alpha + r): r^2 + p r - alpha |y - z0| = 0, p = alpha + beta - |y - z0|,
        # whose root r >= 0 is taken in the form that does not cancel.
        dy = y - self.z0
        ry = torch.linalg.vector_norm(dy, dim=-1)
        p = self.alpha + self.beta - ry
        root = torch.sqrt(p**2 + 4 * self.alpha * ry)
        tiny = torch.finfo(y.dtype).tiny
        r = torch.where(p > 0, 2 * self.alpha * ry / (p + root).clamp_min(tiny), (root - p) / 2)
        x = self.z0 + dy * ((self.alpha + r) / (self.alpha + self.beta + r).clamp_min(tiny))[..., None]
        return x, self._ladj(r)


class Radial(nn.Module):
    """The parameters of one radial layer (eq-radial); ``forward()`` -> ``RadialTransform``.

    alpha = softplus(alpha_hat) > 0 and beta = -alpha + softplus(beta_hat) >= -alpha
    (Rezende & Mohamed 2015, Appendix A.2), whatever the raw parameters.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        self.dim = dim
        self.z0 = nn.Parameter(torch.randn(dim))
        self.alpha_hat = nn.Parameter(torch.zeros(()))
        self.beta_hat = nn.Parameter(torch.randn(()))  # beta_hat = 0 would make beta = 0, the identity

    def alpha(self) -> torch.Tensor:
        return F.softplus(self.alpha_hat)

    def beta(self) -> torch.Tensor:
        return -self.alpha() + F.softplus(self.beta_hat)

    def forward(self) -> RadialTransform:
        return RadialTransform(self.z0, self.alpha(), self.beta())

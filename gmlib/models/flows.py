"""Normalizing flows (book chapter "Normalizing flows", the flows chapter).

A flow is a bijection T: x -> z from data space onto the space of a simple base
density p_Z. The change of variables (eq-change-of-variables)

    log p_X(x) = log p_Z(T(x)) + log |det dT/dx (x)|

gives an exact log-likelihood, and for a composition T = T_K o ... o T_1 the
log-determinants of the parts add up (eq-flow-composition).

Design (zuko's, on ``torch.distributions``):

* Every bijection is a ``torch.distributions.Transform`` on vectors (..., D):
  domain and codomain ``independent(real, 1)``, ``log_abs_det_jacobian(x, y)
  -> (...,)``. ``PlanarTransform`` (eq-planar), ``RadialTransform``
  (eq-radial), ``AffineCouplingTransform`` (eq-affine-coupling),
  ``SplineCouplingTransform`` (eq-spline), ``PermutationTransform`` and
  ``ElementwiseAffineTransform``. A Transform owns no parameters; it refuses
  parameters that break invertibility and, as an inverse, non-finite input.
* Parameters live in one small ``nn.Module`` per layer (``Planar``, ``Radial``,
  ``AffineCoupling``, ``SplineCoupling``, ``Permute``, ``ElementwiseAffine``)
  whose ``forward()`` builds the Transform from the current parameter values
  (zuko's "lazy transform"), so an optimiser trains the module and every call
  sees the updated bijection. The reparameterisations that keep a layer
  invertible whatever the raw parameters are (planar u_hat, radial
  beta >= -alpha, the spline's softmax and softplus) live in these modules.
* ``Flow(base=..., transforms=[...])`` lists its layers in the *normalizing*
  direction x -> z, as zuko's ``NormalizingFlow`` does: ``log_prob`` runs them
  forward, ``sample`` inverts them.
* Direction. Rezende & Mohamed (2015) write planar and radial layers in the
  *generative* direction, x = f_K o ... o f_1 (z0), and fit them by reverse KL,
  which needs only f_k forward. Rather than a second model class, the layer
  ``Inverse(layer)`` builds ``layer().inv`` (torch's own inverse transform),
  and ``Flow(..., direction="generative")`` reads its list as f_1, ..., f_K and
  stores ``Inverse(f_K), ..., Inverse(f_1)``. One ``Flow`` then serves both
  uses: ``rsample_and_log_prob`` evaluates the f_k forward (closed form, cheap,
  reparameterised) and ``log_prob`` their inverses (for planar layers a
  safeguarded Newton solve). The direction only decides which way is cheap;
  the density is the same formula.

Each Transform computes its log-determinant with its output (``call_and_ladj``,
as in zuko) and remembers it for the ``log_abs_det_jacobian(x, y)`` call that
follows, so a coupling layer runs its conditioner once per pass.
"""

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, Normal, Transform, constraints

from gmlib.models.nets import mlp
from gmlib.validation import (
    require_finite,
    require_int,
    require_nonempty,
    require_positive,
    require_shape,
    require_tensor,
)

Direction = Literal["normalizing", "generative"]
DIRECTIONS: tuple[str, ...] = ("normalizing", "generative")


def _slack(t: torch.Tensor) -> float:
    """Rounding slack sqrt(eps) of ``t``'s dtype for invertibility checks on reparameterised values.

    u_hat and beta are sums with cancellation (u + (m - w^T u) w / |w|^2, -alpha + softplus), so the
    inequality they guarantee exactly holds in floating point only up to a few ulps of the larger terms.
    """
    return math.sqrt(torch.finfo(t.dtype).eps)


class _VectorTransform(Transform):
    """A bijection of R^D acting on the last axis of (..., D), with its log-determinant (...,)."""

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, dim: int) -> None:
        super().__init__(cache_size=0)
        self.dim = dim
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (x, ladj at x) of the latest pass

    def _check(self, name: str, v: torch.Tensor) -> None:
        require_tensor(name, v)
        if v.dim() < 1 or v.shape[-1] != self.dim:
            raise ValueError(f"{name} of {type(self).__name__} must have shape (..., {self.dim}), got {tuple(v.shape)}")

    def call_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y = T(x) (..., D) and log |det dT/dx| (...,) in one pass."""
        self._check("x", x)
        y, ladj = self._forward_and_ladj(x)
        self._last = (x, ladj)
        return y, ladj

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self.call_and_ladj(x)[0]

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        self._check("y", y)
        require_finite(f"y (the input of {type(self).__name__}.inverse)", y)
        x, ladj = self._inverse_and_ladj(y)
        self._last = (x, ladj)
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log |det dT/dx| at x (..., D) -> (...,), reused from the pass that produced (x, y) when there was one."""
        if self._last is not None and self._last[0] is x:
            return self._last[1]
        return self.call_and_ladj(x)[1]

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = T^{-1}(y) and log |det dT/dx| at that x (the forward log-determinant)."""
        raise NotImplementedError


# --- planar (Rezende & Mohamed 2015, eq. 10-12, Appendix A.1) ---------------------------------------


class PlanarTransform(_VectorTransform):
    """y = x + u tanh(w^T x + b) (eq-planar), x, y (..., D); w, u (D,), b ().

    log |det dy/dx| = log |1 + u^T psi(x)|, psi(x) = h'(w^T x + b) w: the Jacobian
    I + u psi^T is a rank-one update, so the matrix determinant lemma gives its
    determinant in O(D). Invertible iff w^T u >= -1 (then a = w^T x solves the
    monotone scalar equation a + (w^T u) tanh(a + b) = w^T y); build u with
    ``Planar.u_hat``.
    """

    def __init__(self, w: torch.Tensor, u: torch.Tensor, b: torch.Tensor) -> None:
        require_tensor("w", w)
        super().__init__(w.shape[-1] if w.dim() == 1 else 0)
        require_shape("w", w, (self.dim,))
        require_shape("u", u, (self.dim,))
        require_shape("b", b, ())
        wu = (w @ u).item()
        if not wu >= -1 - _slack(w):
            raise ValueError(f"PlanarTransform needs w^T u >= -1 to be invertible, got {wu:.6g}; use Planar.u_hat()")
        self.w, self.u, self.b = w, u, b

    def _ladj(self, h: torch.Tensor) -> torch.Tensor:
        """log |1 + (1 - h^2) w^T u| for h = tanh(w^T x + b) (...,): u^T psi with h' = 1 - tanh^2."""
        return torch.log(torch.abs(1 + (1 - h**2) * (self.w @ self.u)))

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(x @ self.w + self.b)  # (...,)
        return x + h[..., None] * self.u, self._ladj(h)

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wu, wy = self.w @ self.u, y @ self.w  # (), (...,)
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

    g is non-decreasing (g' = 1 + c sech^2 >= 0) and |a - wy| <= |c|, so the root
    lies in [wy - |c|, wy + |c|]; Newton steps that leave the shrinking bracket
    are replaced by bisection, which converges whatever the start.
    """
    t = wy.detach().double()
    c, b = float(wu.detach()), float(b.detach())
    lo, hi, a = t - abs(c), t + abs(c), t.clone()
    tol = 64 * torch.finfo(torch.float64).eps * (1 + t.abs() + abs(c))
    for _ in range(max_iter):
        th = torch.tanh(a + b)
        g = a + c * th - t
        hi, lo = torch.where(g > 0, a, hi), torch.where(g < 0, a, lo)
        newton = a - g / (1 + c * (1 - th * th))
        inside = (newton >= lo) & (newton <= hi)  # false for NaN too (g' = 0)
        new = torch.where(inside, newton, (lo + hi) / 2)
        done = ((new - a).abs() <= tol) | (hi - lo <= tol)
        a = new
        if done.all():
            break
    residual = (a + c * torch.tanh(a + b) - t).abs()
    if not (residual <= 1e3 * tol).all():
        raise ValueError(f"{name}.inverse did not converge (residual {residual.max().item():.3g})")
    return a.to(wy.dtype)


class Planar(nn.Module):
    """The parameters of one planar layer (eq-planar); ``forward()`` -> ``PlanarTransform``.

    Raw parameters w, u (dim,), b () are unconstrained; the layer uses
    u_hat = u + (m(w^T u) - w^T u) w / |w|^2, m(a) = -1 + softplus(a)
    (Rezende & Mohamed 2015, Appendix A.1), so w^T u_hat = m(w^T u) > -1.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        self.dim = dim
        self.w = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.u = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> torch.Tensor:
        """u_hat (dim,) with w^T u_hat = -1 + softplus(w^T u) >= -1."""
        wu, ww = self.w @ self.u, (self.w @ self.w).clamp_min(torch.finfo(self.w.dtype).tiny)
        m = F.softplus(wu) - 1
        u_hat = self.u + (m - wu) * self.w / ww
        # That sum cancels when |w^T u| >> 1 (its w^T u_hat is off by ~eps |w| |u|); one step of iterative
        # refinement, whose correction is zero in exact arithmetic, brings w^T u_hat to m within ~eps.
        return u_hat + (m - self.w @ u_hat) * self.w / ww

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


# --- coupling layers (RealNVP, Dinh et al. 2017; neural spline flows, Durkan et al. 2019) -------------


def coupling_mask(dim: int, *, flip: bool = False) -> torch.Tensor:
    """The coordinates a coupling layer changes, (dim,) bool: the second half (the first with ``flip``)."""
    require_int("dim", dim, low=2)
    changed = torch.arange(dim) >= dim // 2
    return ~changed if flip else changed


class _CouplingTransform(_VectorTransform):
    """y_A = x_A, y_B = tau(x_B; theta(x_A)) for a mask B (True) and its complement A (False)."""

    def __init__(self, mask: torch.Tensor, conditioner: Callable[[torch.Tensor], torch.Tensor]) -> None:
        require_tensor("mask", mask)
        if mask.dim() != 1 or mask.dtype != torch.bool or mask.all() or not mask.any():
            raise ValueError(f"mask must be a (dim,) bool tensor with both True and False entries, got {mask}")
        super().__init__(len(mask))
        self.changed = mask.nonzero().squeeze(-1)  # B, the coordinates transformed
        self.kept = (~mask).nonzero().squeeze(-1)  # A, the coordinates conditioned on
        self.conditioner = conditioner


class AffineCouplingTransform(_CouplingTransform):
    """y_A = x_A, y_B = x_B * exp(s(x_A)) + t(x_A) (eq-affine-coupling); x, y (..., D).

    ``conditioner``: x_A (..., |A|) -> (..., 2 |B|), the raw log-scales and the
    shifts. s = bound tanh(raw / bound) keeps the scales within exp(+-bound).
    The Jacobian is triangular, so log |det| = sum_B s(x_A).
    """

    def __init__(
        self, mask: torch.Tensor, conditioner: Callable[[torch.Tensor], torch.Tensor], *, scale_bound: float = 2.0
    ) -> None:
        super().__init__(mask, conditioner)
        require_positive("scale_bound", scale_bound)
        self.scale_bound = scale_bound

    def _scale_shift(self, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw, t = self.conditioner(xa).chunk(2, dim=-1)  # (..., |B|) each
        return self.scale_bound * torch.tanh(raw / self.scale_bound), t

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(x.index_select(-1, self.kept))
        yb = x.index_select(-1, self.changed) * s.exp() + t
        return x.index_copy(-1, self.changed, yb), s.sum(-1)

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(y.index_select(-1, self.kept))  # y_A = x_A
        xb = (y.index_select(-1, self.changed) - t) * torch.exp(-s)
        return y.index_copy(-1, self.changed, xb), s.sum(-1)


class AffineCoupling(nn.Module):
    """One RealNVP layer (eq-affine-coupling); ``forward()`` -> ``AffineCouplingTransform``.

    The conditioner is ``gmlib.models.nets.mlp`` from the kept coordinates
    (the first half of ``dim``, the second with ``flip``) to a log-scale and a
    shift for each changed one; alternate ``flip`` between layers.
    """

    def __init__(
        self, dim: int, *, hidden: int = 64, layers: int = 2, flip: bool = False, scale_bound: float = 2.0
    ) -> None:
        super().__init__()
        require_int("dim", dim, low=2)
        require_positive("scale_bound", scale_bound)
        self.dim, self.scale_bound = dim, scale_bound
        self.register_buffer("mask", coupling_mask(dim, flip=flip))
        changed = int(self.mask.sum())
        self.conditioner = mlp(inputs=dim - changed, outputs=2 * changed, hidden=hidden, layers=layers)

    def forward(self) -> AffineCouplingTransform:
        return AffineCouplingTransform(self.mask, self.conditioner, scale_bound=self.scale_bound)


def spline_knots(
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    *,
    bound: float,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The K + 1 knots (x_k, y_k) and derivatives delta_k of a spline on [-bound, bound], each (..., K + 1).

    widths, heights (..., K): unnormalised; bin k is min + (1 - K min) softmax_k wide
    (times 2 bound), so the knots increase from -bound to bound. derivatives (..., K - 1):
    the interior delta_k = min_derivative + softplus(raw) > 0; the two boundary
    derivatives are 1, matching the identity tails (eq-spline).
    """

    def knots(raw: torch.Tensor, minimum: float) -> torch.Tensor:
        bins = minimum + (1 - minimum * raw.shape[-1]) * torch.softmax(raw, dim=-1)
        inner = 2 * bound * torch.cumsum(bins, dim=-1)[..., :-1] - bound
        return F.pad(F.pad(inner, (1, 0), value=-bound), (0, 1), value=bound)

    delta = F.pad(min_derivative + F.softplus(derivatives), (1, 1), value=1.0)
    return knots(widths, min_width), knots(heights, min_height), delta


def rational_quadratic_spline(
    x: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    *,
    bound: float,
    inverse: bool = False,
    min_width: float = 1e-3,
    min_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The monotone rational-quadratic spline of Gregory & Delbourgo (eq-spline), element-wise.

    x (...,); widths, heights (..., K) and derivatives (..., K - 1) as in
    ``spline_knots`` (leading axes broadcast with x). In bin k, with
    xi = (x - x_k) / w_k in [0, 1] and s_k = h_k / w_k (Durkan et al. 2019, eq. 4-5):

        y = y_k + h_k [s_k xi^2 + delta_k xi (1 - xi)] / [s_k + (delta_{k+1} + delta_k - 2 s_k) xi (1 - xi)]
        dy/dx = s_k^2 [delta_{k+1} xi^2 + 2 s_k xi (1 - xi) + delta_k (1 - xi)^2] / [...]^2

    and the inverse is the root xi = 2c / (-b - sqrt(b^2 - 4ac)) of a quadratic
    (eq. 6-8, Appendix A). Outside [-bound, bound] the map is the identity.
    Returns the image (...,) and log |d image / d input| (...,); with
    ``inverse=True`` the input is y and that is minus log dy/dx at the returned x.
    """
    shape = torch.broadcast_shapes(x.shape, widths.shape[:-1], heights.shape[:-1], derivatives.shape[:-1])
    kx, ky, delta = (
        k.expand(*shape, k.shape[-1])
        for k in spline_knots(
            widths,
            heights,
            derivatives,
            bound=bound,
            min_width=min_width,
            min_height=min_height,
            min_derivative=min_derivative,
        )
    )
    x = x.expand(shape)
    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)  # evaluated everywhere, used inside only (no NaN gradients from the tails)
    k = (v[..., None] >= (ky if inverse else kx)[..., 1:-1]).sum(-1, keepdim=True)  # bin index (..., 1)

    def at(t: torch.Tensor, shift: int = 0) -> torch.Tensor:
        return t.gather(-1, k + shift).squeeze(-1)

    x_k, y_k, w_k, h_k = at(kx), at(ky), at(kx, 1) - at(kx), at(ky, 1) - at(ky)
    d_k, d_k1 = at(delta), at(delta, 1)
    s = h_k / w_k
    if inverse:
        dy = v - y_k
        a = h_k * (s - d_k) + dy * (d_k1 + d_k - 2 * s)
        b = h_k * d_k - dy * (d_k1 + d_k - 2 * s)
        c = -s * dy
        xi = 2 * c / (-b - torch.sqrt((b**2 - 4 * a * c).clamp_min(0)))
        out = x_k + xi * w_k
    else:
        xi = (v - x_k) / w_k
        out = y_k + h_k * (s * xi**2 + d_k * xi * (1 - xi)) / (s + (d_k1 + d_k - 2 * s) * xi * (1 - xi))
    den = s + (d_k1 + d_k - 2 * s) * xi * (1 - xi)
    log_slope = 2 * torch.log(s) + torch.log(d_k1 * xi**2 + 2 * s * xi * (1 - xi) + d_k * (1 - xi) ** 2)
    log_slope = log_slope - 2 * torch.log(den)  # log dy/dx at the x of this bin
    out = torch.where(inside, out, x)
    ladj = torch.where(inside, -log_slope if inverse else log_slope, torch.zeros_like(log_slope))
    return out, ladj


class SplineCouplingTransform(_CouplingTransform):
    """y_A = x_A, y_B = RQS(x_B; theta(x_A)) element-wise (eq-spline); x, y (..., D).

    ``conditioner``: x_A (..., |A|) -> (..., |B| (3K - 1)), for each changed
    coordinate K widths, K heights and K - 1 interior derivatives, unnormalised
    (see ``rational_quadratic_spline``). log |det| = sum_B log dy_b/dx_b.
    """

    def __init__(
        self,
        mask: torch.Tensor,
        conditioner: Callable[[torch.Tensor], torch.Tensor],
        *,
        bins: int = 8,
        bound: float = 3.0,
        min_width: float = 1e-3,
        min_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ) -> None:
        super().__init__(mask, conditioner)
        _check_spline_options(bins, bound, min_width, min_height, min_derivative)
        self.bins = bins
        self.options = dict(bound=bound, min_width=min_width, min_height=min_height, min_derivative=min_derivative)

    def _spline(self, v: torch.Tensor, *, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.conditioner(v.index_select(-1, self.kept))  # (..., |B| (3K - 1))
        theta = theta.unflatten(-1, (len(self.changed), 3 * self.bins - 1))  # (..., |B|, 3K - 1)
        K = self.bins
        out, ladj = rational_quadratic_spline(
            v.index_select(-1, self.changed),
            theta[..., :K],
            theta[..., K : 2 * K],
            theta[..., 2 * K :],
            inverse=inverse,
            **self.options,
        )
        return v.index_copy(-1, self.changed, out), ladj.sum(-1)

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._spline(x, inverse=False)

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, ladj = self._spline(y, inverse=True)
        return x, -ladj


def _check_spline_options(bins: int, bound: float, min_width: float, min_height: float, min_derivative: float) -> None:
    require_int("bins", bins, low=2)
    require_positive("bound", bound)
    for name, value in (("min_width", min_width), ("min_height", min_height)):
        if not (isinstance(value, (int, float)) and 0 <= value < 1 / bins):
            raise ValueError(f"{name} must be a number in [0, 1/bins) = [0, {1 / bins:.4g}), got {value!r}")
    if not (isinstance(min_derivative, (int, float)) and min_derivative >= 0):
        raise ValueError(f"min_derivative must be a number >= 0, got {min_derivative!r}")


class SplineCoupling(nn.Module):
    """One neural-spline coupling layer (eq-spline); ``forward()`` -> ``SplineCouplingTransform``.

    ``bins`` K >= 2 on [-bound, bound], identity (linear tails) outside; the
    conditioner is ``gmlib.models.nets.mlp`` from the kept half, as in ``AffineCoupling``.
    """

    def __init__(
        self,
        dim: int,
        *,
        bins: int = 8,
        bound: float = 3.0,
        hidden: int = 64,
        layers: int = 2,
        flip: bool = False,
        min_width: float = 1e-3,
        min_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ) -> None:
        super().__init__()
        require_int("dim", dim, low=2)
        _check_spline_options(bins, bound, min_width, min_height, min_derivative)
        self.dim = dim
        self.options = dict(
            bins=bins, bound=bound, min_width=min_width, min_height=min_height, min_derivative=min_derivative
        )
        self.register_buffer("mask", coupling_mask(dim, flip=flip))
        changed = int(self.mask.sum())
        self.conditioner = mlp(inputs=dim - changed, outputs=changed * (3 * bins - 1), hidden=hidden, layers=layers)

    def forward(self) -> SplineCouplingTransform:
        return SplineCouplingTransform(self.mask, self.conditioner, **self.options)


# --- fixed and element-wise layers ------------------------------------------------------------------


class PermutationTransform(_VectorTransform):
    """y = x[..., order] for a permutation ``order`` (D,); log |det| = 0."""

    def __init__(self, order: torch.Tensor) -> None:
        require_tensor("order", order)
        n = order.numel()
        ok = order.dim() == 1 and order.dtype == torch.long
        if not (ok and torch.equal(order.sort().values, torch.arange(n, device=order.device))):
            raise ValueError(f"order must be a permutation of 0..D-1 as a (D,) long tensor, got {order}")
        super().__init__(n)
        self.order = order

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.index_select(-1, self.order), x.new_zeros(x.shape[:-1])

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y.index_select(-1, torch.argsort(self.order)), y.new_zeros(y.shape[:-1])


class Permute(nn.Module):
    """A fixed permutation layer (no parameters), by default the reversal of the ``dim`` coordinates."""

    def __init__(self, dim: int, *, order: torch.Tensor | None = None) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        self.dim = dim
        order = torch.arange(dim - 1, -1, -1) if order is None else order
        PermutationTransform(order)  # validates
        if len(order) != dim:
            raise ValueError(f"order must have {dim} entries, got {len(order)}")
        self.register_buffer("order", order.clone())

    def forward(self) -> PermutationTransform:
        return PermutationTransform(self.order)


class ElementwiseAffineTransform(_VectorTransform):
    """y = x * exp(log_scale) + shift with log_scale, shift (D,); log |det| = sum log_scale."""

    def __init__(self, shift: torch.Tensor, log_scale: torch.Tensor) -> None:
        require_tensor("shift", shift)
        super().__init__(shift.shape[-1] if shift.dim() == 1 else 0)
        require_shape("shift", shift, (self.dim,))
        require_shape("log_scale", log_scale, (self.dim,))
        self.shift, self.log_scale = shift, log_scale

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * self.log_scale.exp() + self.shift, self.log_scale.sum().expand(x.shape[:-1])

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (y - self.shift) * torch.exp(-self.log_scale), self.log_scale.sum().expand(y.shape[:-1])


class ElementwiseAffine(nn.Module):
    """A learned per-coordinate scale and shift (ActNorm without its data-dependent initialisation)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        self.dim = dim
        self.shift = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self) -> ElementwiseAffineTransform:
        return ElementwiseAffineTransform(self.shift, self.log_scale)


class Inverse(nn.Module):
    """The layer whose Transform is ``layer().inv``: turns a generative-direction layer into a normalizing one."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if not isinstance(layer, nn.Module):
            raise ValueError(f"layer must be an nn.Module whose forward() returns a Transform, got {layer!r}")
        self.layer = layer
        if hasattr(layer, "dim"):
            self.dim = layer.dim

    def forward(self) -> Transform:
        return self.layer().inv


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
        require_shape("x", x, (None, self.dim))
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
        z = self.base().rsample((n,))
        x, ladj = self.inverse_and_log_det(z)
        return x, self.base().log_prob(z) + ladj

    def reverse_kl(self, log_target: Callable[[torch.Tensor], torch.Tensor], n: int) -> torch.Tensor:
        """Monte-Carlo E_q[log q(x) - log p~(x)] with n draws: KL(q || p) - log Z for p = p~ / Z (a scalar)."""
        x, log_q = self.rsample_and_log_prob(n)
        return (log_q - log_target(x)).mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """n draws (n, D): z ~ p_Z, x = T^{-1}(z)."""
        require_int("n", n, low=1)
        return self.inverse_and_log_det(self.base().sample((n,)))[0]


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


# --- ready-made flows for 2D toys -------------------------------------------------------------------


def planar_flow(*, dim: int = 2, layers: int = 8, direction: Direction = "normalizing") -> Flow:
    """``layers`` planar layers on a standard normal base (eq-planar)."""
    require_int("layers", layers, low=1)
    return Flow(base=standard_normal(dim), transforms=[Planar(dim) for _ in range(layers)], direction=direction)


def radial_flow(*, dim: int = 2, layers: int = 8, direction: Direction = "normalizing") -> Flow:
    """``layers`` radial layers on a standard normal base (eq-radial)."""
    require_int("layers", layers, low=1)
    return Flow(base=standard_normal(dim), transforms=[Radial(dim) for _ in range(layers)], direction=direction)


def realnvp(*, dim: int = 2, layers: int = 4, hidden: int = 64) -> Flow:
    """``layers`` affine couplings alternating the changed half (eq-affine-coupling)."""
    require_int("layers", layers, low=1)
    couplings = [AffineCoupling(dim, hidden=hidden, flip=k % 2 == 1) for k in range(layers)]
    return Flow(base=standard_normal(dim), transforms=couplings)


def spline_flow(*, dim: int = 2, layers: int = 4, bins: int = 8, bound: float = 3.0, hidden: int = 64) -> Flow:
    """``layers`` rational-quadratic spline couplings alternating the changed half (eq-spline)."""
    require_int("layers", layers, low=1)
    couplings = [SplineCoupling(dim, bins=bins, bound=bound, hidden=hidden, flip=k % 2 == 1) for k in range(layers)]
    return Flow(base=standard_normal(dim), transforms=couplings)

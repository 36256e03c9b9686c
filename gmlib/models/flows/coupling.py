"""Coupling layers: affine (RealNVP, eq-affine-coupling) and rational-quadratic spline (eq-spline).

The spline is Durkan et al. (2019); ``rational_quadratic_spline`` is also used element-wise.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gmlib.models.flows.transform import _VectorTransform
from gmlib.models.nets import mlp
from gmlib.validation import (
    require_int,
    require_positive,
    require_tensor,
)

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
    shift for each changed one; alternate ``flip`` between layers (or put a
    ``Permute`` between them). ``dropout`` > 0 regularises the conditioner
    (active in training mode only).
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 64,
        layers: int = 2,
        flip: bool = False,
        scale_bound: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        require_int("dim", dim, low=2)
        require_positive("scale_bound", scale_bound)
        self.dim, self.scale_bound = dim, scale_bound
        self.register_buffer("mask", coupling_mask(dim, flip=flip))
        changed = int(self.mask.sum())
        self.conditioner = mlp(inputs=dim - changed, outputs=2 * changed, hidden=hidden, layers=layers, dropout=dropout)

    def forward(self) -> AffineCouplingTransform:
        return AffineCouplingTransform(self.mask, self.conditioner, scale_bound=self.scale_bound)


def _softmax(raw: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis (..., K), written out: on the CPU ``torch.softmax`` over a short axis (K ~ 8)
    costs ~4x more than these three element-wise operations, and the spline layers call it every pass."""
    e = torch.exp(raw - raw.detach().amax(dim=-1, keepdim=True))  # the max shift changes no value or gradient
    return e / e.sum(dim=-1, keepdim=True)


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
        bins = minimum + (1 - minimum * raw.shape[-1]) * _softmax(raw)
        inner = 2 * bound * torch.cumsum(bins, dim=-1)[..., :-1] - bound
        return F.pad(F.pad(inner, (1, 0), value=-bound), (0, 1), value=bound)

    # softplus of a strided slice (a conditioner's output) is ~15x slower than of a contiguous copy on the CPU
    delta = F.pad(min_derivative + F.softplus(derivatives.contiguous()), (1, 1), value=1.0)
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
    conditioner is ``gmlib.models.nets.mlp`` from the kept half, with ``dropout``,
    as in ``AffineCoupling``.
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
        dropout: float = 0.0,
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
        self.conditioner = mlp(
            inputs=dim - changed, outputs=changed * (3 * bins - 1), hidden=hidden, layers=layers, dropout=dropout
        )

    def forward(self) -> SplineCouplingTransform:
        return SplineCouplingTransform(self.mask, self.conditioner, **self.options)

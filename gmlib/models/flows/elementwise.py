"""Layers that act on each coordinate alone (or reorder them).

Permutation, elementwise affine (Glow's actnorm), elementwise spline, and the fixed histogram
layer of the digits flow (eq-histogram-gaussianize).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from gmlib.models.flows.coupling import (
    _check_spline_options,
    rational_quadratic_spline,
)
from gmlib.models.flows.transform import _VectorTransform
from gmlib.validation import (
    require_int,
    require_levels,
    require_nonempty,
    require_positive,
    require_probability_vector,
    require_shape,
    require_tensor,
)

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


class ElementwiseSplineTransform(_VectorTransform):
    """y_d = RQS(x_d; theta_d), one monotone spline per coordinate d (eq-spline, no conditioner); x, y (..., D).

    widths, heights (D, K) and derivatives (D, K - 1): unnormalised, as in
    ``spline_knots``, whose softmax and softplus make every spline increasing
    whatever the values, so nothing can break invertibility; the identity
    outside [-bound, bound]. log |det| = sum_d log dy_d/dx_d: the Jacobian is
    diagonal. Unlike a coupling, the layer changes each marginal on its own (it
    can learn the shape of each pixel's histogram) and no dependence.
    """

    def __init__(
        self,
        widths: torch.Tensor,
        heights: torch.Tensor,
        derivatives: torch.Tensor,
        *,
        bound: float = 3.0,
        min_width: float = 1e-3,
        min_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ) -> None:
        require_tensor("widths", widths)
        if widths.dim() != 2:
            raise ValueError(f"widths must have shape (D, K), got {tuple(widths.shape)}")
        super().__init__(widths.shape[0])
        bins = widths.shape[1]
        _check_spline_options(bins, bound, min_width, min_height, min_derivative)
        require_shape("heights", heights, (self.dim, bins))
        require_shape("derivatives", derivatives, (self.dim, bins - 1))
        self.widths, self.heights, self.derivatives = widths, heights, derivatives
        self.options = dict(bound=bound, min_width=min_width, min_height=min_height, min_derivative=min_derivative)

    def _spline(self, v: torch.Tensor, *, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        out, ladj = rational_quadratic_spline(
            v, self.widths, self.heights, self.derivatives, inverse=inverse, **self.options
        )  # (..., D) each: the (D, K) parameters broadcast over the leading axes
        return out, ladj.sum(-1)

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._spline(x, inverse=False)

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, ladj = self._spline(y, inverse=True)
        return x, -ladj


class ElementwiseSpline(nn.Module):
    """A learned monotone spline per coordinate (eq-spline); ``forward()`` -> ``ElementwiseSplineTransform``.

    ``bins`` K >= 2 on [-bound, bound]; it starts as the identity (equal bins,
    unit derivatives), so adding it to a flow changes nothing until it learns.
    """

    def __init__(
        self,
        dim: int,
        *,
        bins: int = 8,
        bound: float = 3.0,
        min_width: float = 1e-3,
        min_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        _check_spline_options(bins, bound, min_width, min_height, min_derivative)
        self.dim = dim
        self.options = dict(bound=bound, min_width=min_width, min_height=min_height, min_derivative=min_derivative)
        self.widths = nn.Parameter(torch.zeros(dim, bins))
        self.heights = nn.Parameter(torch.zeros(dim, bins))
        unit = math.log(math.expm1(1 - min_derivative))  # softplus(unit) + min_derivative = 1
        self.derivatives = nn.Parameter(torch.full((dim, bins - 1), unit))

    def forward(self) -> ElementwiseSplineTransform:
        return ElementwiseSplineTransform(self.widths, self.heights, self.derivatives, **self.options)


class HistogramGaussianizeTransform(_VectorTransform):
    """z_d = Phi^{-1}(F_d(y_d)): each coordinate through a histogram's CDF, then the normal quantile; y, z (..., D).

    probs (D, L): the probabilities of levels 0..L-1 of each coordinate, all > 0.
    F_d is the CDF of the density f_d that is (1 - 2 tail) probs[d, k] on [k, k + 1)
    (the histogram dequantised: uniform within each level) with mass ``tail`` in
    each exponential tail, f_d(y) = tail e^y left of 0 and tail e^(L - y) right
    of L, so that the map is a bijection of the whole line (eq-histogram-gaussianize).
    By the probability integral transform, z_d ~ N(0, 1) exactly when y_d ~ f_d, and

        log |det dz/dy| = sum_d [log f_d(y_d) - log phi(z_d)],

    so on a standard normal base this layer alone *is* the independent-pixel
    histogram model, log p(y) = sum_d log f_d(y_d). On data in [0, L) the tails
    cost -log(1 - 2 tail) nats per coordinate. Computed in float64; |z| is capped
    where float64 underflows (|y| beyond ~700). A fixed (data-dependent) layer:
    build it with ``HistogramGaussianize.from_levels``.
    """

    def __init__(self, probs: torch.Tensor, *, tail: float = 1e-6) -> None:
        require_tensor("probs", probs)
        if probs.dim() != 2 or probs.shape[0] < 1 or probs.shape[1] < 1:
            raise ValueError(f"probs must have shape (D, L) with D, L >= 1, got {tuple(probs.shape)}")
        super().__init__(probs.shape[0])
        p = probs.detach().double()
        require_probability_vector("probs", p)
        if not (p > 0).all():
            raise ValueError("probs must all be > 0 for the map to be invertible (smooth the counts: alpha > 0)")
        if not (isinstance(tail, (int, float)) and 0 < tail < 0.5):
            raise ValueError(f"tail must be a number in (0, 0.5), got {tail!r}")
        self.levels, self.tail = p.shape[1], float(tail)
        self.log_p = torch.log((1 - 2 * self.tail) * p)  # log f_d on each level (D, L)
        self.cdf = F.pad(p.cumsum(-1), (1, 0)).clamp(max=1.0)  # histogram CDF at 0, 1, ..., L (D, L + 1)
        self.probs = p
        self._d = torch.arange(self.dim, device=p.device)

    def _log_f(self, v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """log f_d(v) (..., D) for v in float64 and its level index k (..., D) (clamped to 0..L-1)."""
        log_tail = math.log(self.tail)
        inside = self.log_p[self._d, k]
        return torch.where(v < 0, log_tail + v, torch.where(v > self.levels, log_tail + self.levels - v, inside))

    def _ladj(self, v: torch.Tensor, k: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        log_phi = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
        return (self._log_f(v, k) - log_phi).sum(-1)

    def _forward_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, L, tail = x.double(), self.levels, self.tail
        k = v.floor().clamp(0, L - 1).long()  # the level of each coordinate (..., D)
        inside = v.clamp(0, L)  # each branch sees only its own region: no inf or NaN in the unused ones
        cdf = tail + (1 - 2 * tail) * (self.cdf[self._d, k] + self.probs[self._d, k] * (inside - k))
        tiny = torch.finfo(torch.float64).tiny
        z_left = torch.special.ndtri((tail * torch.exp(v.clamp(max=0))).clamp_min(tiny))
        z_right = -torch.special.ndtri((tail * torch.exp(L - v.clamp(min=L))).clamp_min(tiny))  # by symmetry
        z = torch.where(v < 0, z_left, torch.where(v > L, z_right, torch.special.ndtri(cdf)))
        return z.to(x.dtype), self._ladj(v, k, z).to(x.dtype)

    def _inverse_and_ladj(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, L, tail = y.double(), self.levels, self.tail
        log_tail = math.log(self.tail)
        v_left = torch.special.log_ndtr(z).clamp(max=log_tail) - log_tail  # F = tail e^v
        v_right = L - (torch.special.log_ndtr(-z).clamp(max=log_tail) - log_tail)  # 1 - F = tail e^(L - v)
        g = ((torch.special.ndtr(z) - tail) / (1 - 2 * tail)).clamp(0, 1)  # the histogram CDF's value
        k = (g[..., None] >= self.cdf[:, 1:-1]).sum(-1)  # its level (..., D), 0..L-1
        v_inside = k + ((g - self.cdf[self._d, k]) / self.probs[self._d, k]).clamp(0, 1)
        left, right = torch.special.ndtr(z) < tail, torch.special.ndtr(-z) < tail
        v = torch.where(left, v_left, torch.where(right, v_right, v_inside))
        return v.to(y.dtype), self._ladj(v, k, z).to(y.dtype)


class HistogramGaussianize(nn.Module):
    """The fixed layer ``HistogramGaussianizeTransform`` (eq-histogram-gaussianize); probs (D, L) is a buffer.

    ``from_levels(x, levels=L, alpha=0.5)`` takes the histogram of training
    levels x (n, D), each count plus ``alpha`` (add-alpha smoothing, so that a
    level unseen in training keeps a probability > 0). Nothing is learned: the
    layer is a preprocessing bijection, counted in the log-determinant.
    """

    def __init__(self, probs: torch.Tensor, *, tail: float = 1e-6) -> None:
        super().__init__()
        HistogramGaussianizeTransform(probs, tail=tail)  # validates
        self.dim, self.tail = probs.shape[0], tail
        self.register_buffer("probs", probs.detach().clone())

    @classmethod
    def from_levels(
        cls, x: torch.Tensor, *, levels: int, alpha: float = 0.5, tail: float = 1e-6
    ) -> "HistogramGaussianize":
        """The layer whose probs are the add-``alpha`` histograms of the integer levels x (n, D) in 0..levels-1."""
        require_int("levels", levels, low=1)
        require_shape("x", x, (None, None))
        require_nonempty("x", x)
        require_levels("x", x, levels)
        require_positive("alpha", alpha)
        counts = F.one_hot(x.long(), levels).sum(0).double() + alpha  # (D, L)
        return cls(counts / counts.sum(-1, keepdim=True), tail=tail)

    def forward(self) -> HistogramGaussianizeTransform:
        return HistogramGaussianizeTransform(self.probs, tail=self.tail)

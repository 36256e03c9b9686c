"""The base of every layer: a bijection of R^D on the last axis, with its log-determinant (flows chapter)."""

import math

import torch
from torch import nn
from torch.distributions import Transform, constraints

from gmlib.validation import (
    require_finite,
    require_tensor,
)


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
        super().__init__(cache_size=1)  # TransformedDistribution.log_prob after rsample reuses x
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

"""Argument checks shared by every gmlib module: one clear ValueError each."""

import math

import torch


def require_finite(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` holds NaN or infinity."""
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} must be finite, but {bad} of its {x.numel()} entries are NaN or inf")


def require_int(name: str, value: int, *, low: int) -> None:
    """Raise unless ``value`` is an int (not a bool) >= ``low``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def require_shape(name: str, x: torch.Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise unless ``x.shape`` matches ``shape`` (``None`` matches any size)."""
    ok = x.dim() == len(shape) and all(s is None or s == n for s, n in zip(shape, x.shape, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def require_positive(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def require_probability_vector(name: str, p: torch.Tensor, *, atol: float = 1e-6) -> None:
    """Raise unless ``p`` (..., K) is non-negative and sums to 1 along its last axis."""
    if p.dim() == 0 or p.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty probability vector, got shape {tuple(p.shape)}")
    require_finite(name, p)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative, but its smallest entry is {p.min().item():.4g}")
    total = p.sum(-1)
    if not torch.allclose(total, torch.ones_like(total), atol=atol, rtol=0):
        worst = total[(total - 1).abs().argmax()] if total.dim() else total
        raise ValueError(
            f"{name} must sum to 1 along its last axis (tolerance {atol}), but one sums to {float(worst):.6g}"
        )

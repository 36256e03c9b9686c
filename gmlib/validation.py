"""Argument checks shared by every gmlib module: one clear ValueError each."""

import math

import torch


def require_tensor(name: str, x: object) -> None:
    """Raise unless ``x`` is a ``torch.Tensor`` (a list or an array is refused, not converted)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}; wrap it in torch.tensor(...)")


def require_finite(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` is not a tensor or holds NaN or infinity."""
    require_tensor(name, x)
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} must be finite, but {bad} of its {x.numel()} entries are NaN or inf")


def require_int(name: str, value: int, *, low: int) -> None:
    """Raise unless ``value`` is an int (not a bool) >= ``low``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def require_shape(name: str, x: torch.Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise unless ``x`` is a tensor whose shape matches ``shape`` (``None`` matches any size)."""
    require_tensor(name, x)
    ok = x.dim() == len(shape) and all(s is None or s == n for s, n in zip(shape, x.shape, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def require_nonempty(name: str, x: torch.Tensor) -> None:
    """Raise unless the batch ``x`` (batch, ...) holds at least one sample."""
    require_tensor(name, x)
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample (a non-empty batch), got shape {tuple(x.shape)}")


def require_levels(name: str, x: torch.Tensor, levels: int) -> None:
    """Raise unless ``x`` holds finite integer levels 0..levels-1 (pixel levels of a categorical likelihood)."""
    top = levels - 1
    if x.is_floating_point():
        require_finite(name, x)
        if (x != x.round()).any():
            raise ValueError(f"{name} must hold integer pixel levels 0..{top}")
    if (x < 0).any() or (x > top).any():
        raise ValueError(
            f"{name} must hold pixel levels in 0..{top}, got values in {x.min().item():g}..{x.max().item():g}"
        )


def require_positive(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def require_nonnegative(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite number >= 0 (not a bool): a penalty weight, a weight decay."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def require_fraction(name: str, value: float) -> None:
    """Raise unless ``value`` is a number (not a bool) in [0, 1): a dropout rate, a probability of hiding a label."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def sum_tolerance(dtype: torch.dtype, n: int, *, atol: float = 1e-6) -> float:
    """How far from 1 the sum of a valid probability vector of ``n`` entries of ``dtype`` may be.

    Each entry carries a rounding error of relative size eps (the dtype's machine
    epsilon), and so does the sum that normalised it; summed in any order, n
    rounded terms drift like eps * sqrt(n) (a random walk of rounding errors), so
    the slack is ``max(atol, 4 * eps * sqrt(n))``: 1e-6 for float64 at any
    length, 4.8e-4 for a million float32 entries (whose float32 sum is off by
    up to about 1e-4 when a plain loop normalised them).
    """
    eps = torch.finfo(dtype if dtype.is_floating_point else torch.get_default_dtype()).eps
    return max(atol, 4 * eps * math.sqrt(n))


def require_probability_vector(name: str, p: torch.Tensor, *, atol: float = 1e-6) -> None:
    """Raise unless ``p`` (..., K) is non-negative and sums to 1 along its last axis (within ``sum_tolerance``)."""
    require_tensor(name, p)
    if p.dim() == 0 or p.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty probability vector, got shape {tuple(p.shape)}")
    require_finite(name, p)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative, but its smallest entry is {p.min().item():.4g}")
    tolerance = sum_tolerance(p.dtype, p.shape[-1], atol=atol)
    totals = p.double().sum(-1).flatten()  # summed in float64: the check adds no rounding of its own
    worst = (totals - 1).abs().argmax()
    if (totals[worst] - 1).abs() > tolerance:
        raise ValueError(
            f"{name} must sum to 1 along its last axis (within {tolerance:.2g} for {p.shape[-1]} {p.dtype} entries), "
            f"but one sums to {totals[worst].item():.12g} (off by {(totals[worst] - 1).abs().item():.2g})"
        )

"""Numbers that compare models: negative log-likelihood and exact integrals on grids."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gmlib.data import dequantize
from gmlib.validation import require_finite, require_int, require_positive, require_shape, require_tensor


@torch.no_grad()
def nll(log_prob: torch.Tensor) -> tuple[float, float]:
    """Mean negative log-likelihood and its standard error, in nats, from log_prob (n,)."""
    require_tensor("log_prob", log_prob)
    if log_prob.dim() != 1 or log_prob.numel() < 2:
        raise ValueError(f"log_prob must have shape (n,) with n >= 2, got {tuple(log_prob.shape)}")
    require_finite("log_prob", log_prob)
    values = -log_prob.double()
    return values.mean().item(), (values.std() / math.sqrt(values.numel())).item()


@torch.no_grad()
def dequantized_nll(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    draws: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Upper bound on the discrete NLL of integer levels x (n, D), in nats per example, and its standard error.

    ``log_prob``: a density on the dequantised y = x + u (y (n, D) -> (n,), in
    level units, e.g. ``flow.log_prob``). Each example's -E_u log p(x + u) >=
    -log P(x) (Jensen, eq-dequantization) is estimated by the mean over ``draws``
    uniform draws (``gmlib.data.dequantize``); the result is the mean over the
    examples and its standard error across them (which includes the draw-to-draw
    noise), as ``nll`` reports. If the density was fitted to rescaled levels
    y / c, add D log c to the result (the log-Jacobian of the rescaling).
    """
    require_int("draws", draws, low=1)
    require_shape("x", x, (None, None))
    per_example = torch.stack([log_prob(dequantize(x, generator=generator)) for _ in range(draws)]).double()
    require_shape("log_prob(x)", per_example, (draws, x.shape[0]))
    return nll(per_example.mean(0))


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


@dataclass(frozen=True)
class ModeCoverage:
    """How a sample covers the modes of a mixture (chapter "GANs", mode collapse).

    ``weights`` (K,): the share of the *near* samples that sit at each mode;
    ``near_fraction``: the share of all samples within ``threshold`` standard
    deviations of their nearest mode; ``covered``: how many modes hold at least
    ``min_weight`` of the near samples; ``max_weight_error``: max_k |weights_k - 1/K|.
    """

    covered: int
    near_fraction: float
    weights: torch.Tensor
    max_weight_error: float


@torch.no_grad()
def mode_coverage(
    samples: torch.Tensor, centers: torch.Tensor, *, std: float, threshold: float = 3.0, min_weight: float | None = None
) -> ModeCoverage:
    """Count the modes of an equal-weight mixture that ``samples`` (n, d) cover; ``centers`` (K, d).

    A sample is *near* when it lies within ``threshold * std`` of its nearest
    center (for an isotropic 2D Gaussian mode, a fraction 1 - exp(-threshold^2/2)
    of its own samples: 98.9% at 3 std). A mode is covered when it holds at
    least ``min_weight`` of the near samples; the default, 1/(4K), is a quarter
    of its fair share.
    """
    require_shape("samples", samples, (None, None))
    require_shape("centers", centers, (None, samples.shape[1]))
    if samples.shape[0] == 0 or centers.shape[0] == 0:
        raise ValueError(f"samples and centers must be non-empty, got {samples.shape[0]} and {centers.shape[0]}")
    require_finite("samples", samples)
    require_positive("std", std)
    require_positive("threshold", threshold)
    k = centers.shape[0]
    min_weight = 1 / (4 * k) if min_weight is None else min_weight
    if not 0 < min_weight <= 1:
        raise ValueError(f"min_weight must be in (0, 1], got {min_weight!r}")
    distances = torch.cdist(samples.double(), centers.double().to(samples.device))  # (n, K)
    nearest, index = distances.min(dim=1)
    near = nearest < threshold * std
    counts = torch.bincount(index[near], minlength=k).double().cpu()
    weights = counts / counts.sum().clamp(min=1)
    return ModeCoverage(
        covered=int((weights >= min_weight).sum()),
        near_fraction=near.double().mean().item(),
        weights=weights,
        max_weight_error=(weights - 1 / k).abs().max().item(),
    )


@torch.no_grad()
def nearest_neighbour_labels(
    samples: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to, and label of, the nearest reference point: samples (n, d), reference (m, d), labels (m,).

    The 1-nearest-neighbour classifier the chapters use to read off which class
    a generated digit shows ("GANs", "VAE": the class histogram of samples).
    Returns (distance (n,), label (n,)).
    """
    require_shape("samples", samples, (None, None))
    require_shape("reference", reference, (None, samples.shape[1]))
    require_shape("labels", labels, (reference.shape[0],))
    require_finite("samples", samples.double())
    distance, index = torch.cdist(samples.double(), reference.double().to(samples.device)).min(dim=1)
    return distance, labels.to(index.device)[index]


@torch.no_grad()
def class_histogram(
    samples: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor, *, classes: int
) -> torch.Tensor:
    """Share of ``samples`` (n, d) whose nearest ``reference`` point has each label 0..classes-1: (classes,).

    A model that covers the classes of the data draws each about as often as
    the data holds it; a collapsed one leaves classes near 0.
    """
    require_int("classes", classes, low=1)
    _, predicted = nearest_neighbour_labels(samples, reference, labels)
    if predicted.min() < 0 or predicted.max() >= classes:
        raise ValueError(f"labels must lie in 0..{classes - 1}, got {predicted.min().item()}..{predicted.max().item()}")
    return torch.bincount(predicted.cpu(), minlength=classes).double() / len(samples)


def _symmetric_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The principal square root of a symmetric positive semi-definite ``matrix`` (d, d), from its eigendecomposition.

    Eigenvalues that rounding pushed slightly below 0 are clamped to 0, so the
    root is real and symmetric positive semi-definite even for a singular matrix.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


@torch.no_grad()
def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between two feature sets a (n, d) and b (m, d), n, m >= 2: a float >= 0.

    FID's formula (Heusel et al. 2017), on whatever features are passed (the
    book uses ``gmlib.classifier.DigitsClassifier.features``)::

        ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^{1/2} S_b S_a^{1/2})^{1/2})

    with mu the feature means (d,) and S the unbiased (n - 1) feature
    covariances (d, d). It is the squared 2-Wasserstein distance between the
    Gaussians N(mu_a, S_a) and N(mu_b, S_b) fitted to the two sets: it compares
    first and second moments only, is symmetric, and is invariant to a common
    rotation and translation of both sets.

    Computed in float64 on ``features_a``'s device, with symmetric
    eigendecompositions whose tiny negative eigenvalues (rounding) are clamped
    to 0, so singular covariances (n <= d, or features that are constant, such
    as dead ReLU units) are fine, the result is never negative, and identical
    inputs give 0 up to rounding (about 1e-12 relative to tr S).

    Like FID it is biased upwards by finite samples, the more so the larger d
    is relative to n and m: two halves of one data set are not at distance 0.
    Compare models only with feature sets of equal sizes.
    """
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        require_shape(name, features, (None, None))
        if features.shape[0] < 2:
            raise ValueError(f"{name} must hold at least 2 rows (for a covariance), got shape {tuple(features.shape)}")
        require_finite(name, features)
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"features_a and features_b must have the same number of features d, "
            f"got {features_a.shape[1]} and {features_b.shape[1]}"
        )
    a = features_a.double()
    b = features_b.double().to(a.device)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a = torch.cov(a.T, correction=1).reshape(a.shape[1], a.shape[1])  # reshape: d = 1 gives a 0-dim tensor
    cov_b = torch.cov(b.T, correction=1).reshape(b.shape[1], b.shape[1])
    root_a = _symmetric_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a  # symmetric PSD: its root's trace is the sum of the roots of its eigenvalues
    cross = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(distance.item(), 0.0)

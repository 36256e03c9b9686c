"""Numbers that compare models: negative log-likelihood, exact integrals on grids, and sample quality.

Sample quality: mode and class coverage, the Frechet distance on features,
improved precision and recall (Kynkaanniemi et al. 2019) and the distance of
each sample to its nearest training example (memorisation checks).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gmlib.data import dequantize
from gmlib.validation import (
    require_finite,
    require_int,
    require_positive,
    require_shape,
    require_tensor,
)

# Pairwise distances are computed in blocks of at most this many entries (float64: 128 MiB), so that
# comparing, say, 10,000 samples with 60,000 training images does not allocate a 4.8 GB matrix at once.
_BLOCK_ENTRIES = 2**24


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


def _points(name: str, x: torch.Tensor, *, dim: int | None = None, at_least: int = 1) -> None:
    """Raise unless ``x`` is a finite (n, d) point set with n >= ``at_least`` rows (and d == ``dim`` if given)."""
    require_shape(name, x, (None, dim))
    if x.shape[0] < at_least or x.shape[1] == 0:
        raise ValueError(
            f"{name} must hold at least {at_least} point{'s' if at_least > 1 else ''} with at least one "
            f"coordinate, got shape {tuple(x.shape)}"
        )
    require_finite(name, x)


def _block_rows(columns: int) -> int:
    """How many rows of a pairwise-distance matrix with ``columns`` columns fit in ``_BLOCK_ENTRIES``."""
    return max(1, _BLOCK_ENTRIES // max(columns, 1))


def _nearest(queries: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distance (n,) float64 from each query (n, d) to its nearest reference row (m, d), and its index.

    Computed in float64 on the device of ``queries``, a block of queries at a
    time. The search uses ``torch.cdist``'s fast matrix-product form, whose
    rounding is about 1e-7 of the norms even in float64; the distance to the
    row it finds is then recomputed from the difference, so a query that
    repeats a reference row is at distance exactly 0.
    """
    q = queries.double()
    r = reference.double().to(q.device)
    step = _block_rows(len(r))
    index = torch.cat([torch.cdist(q[i : i + step], r).argmin(dim=1) for i in range(0, len(q), step)])
    return (q - r[index]).norm(dim=1), index


@torch.no_grad()
def nearest_distances(queries: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each query (n, d) to its nearest ``reference`` row (m, d): (n,) float64.

    The memorisation check: the distance of each generated sample to its
    nearest training example, read against the same distances of held-out
    (test) examples. A model that copies its training data puts its samples
    much nearer to the training set than fresh data lies. Computed on the
    device of ``queries`` in blocks of queries, so a large reference set fits.
    """
    _points("queries", queries)
    _points("reference", reference, dim=queries.shape[1])
    return _nearest(queries, reference)[0]


@torch.no_grad()
def nearest_neighbour_labels(
    samples: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to, and label of, the nearest reference point: samples (n, d), reference (m, d), labels (m,).

    The 1-nearest-neighbour classifier the chapters use to read off which class
    a generated digit shows ("GANs", "VAE": the class histogram of samples).
    Returns (distance (n,) float64, as ``nearest_distances`` gives it, label (n,)).
    """
    _points("samples", samples)
    _points("reference", reference, dim=samples.shape[1])
    require_shape("labels", labels, (reference.shape[0],))
    distance, index = _nearest(samples, reference)
    return distance, labels.to(index.device)[index]


def _exact_cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances (n, m) from differences, not matrix products: identical rows are at exactly 0."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def _radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance (n,) from each of ``points`` (n, d) to its k-th nearest neighbour among the others."""
    step = _block_rows(len(points))
    # the k+1 smallest distances of a row include the point's own 0; the largest of them is the k-th neighbour's
    return torch.cat(
        [
            _exact_cdist(points[i : i + step], points).topk(k + 1, dim=1, largest=False).values[:, k]
            for i in range(0, len(points), step)
        ]
    )


def _inside(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Which queries (n, d) lie in some closed ball (centre (m, d), radius (m,)): a bool (n,)."""
    step = _block_rows(len(centres))
    return torch.cat(
        [(_exact_cdist(queries[i : i + step], centres) <= radii).any(dim=1) for i in range(0, len(queries), step)]
    )


@torch.no_grad()
def precision_recall(real: torch.Tensor, fake: torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``fake`` (m, d) against ``real`` (n, d).

    Each set estimates the support of its distribution as a union of balls,
    one around every point with radius the distance to its k-th nearest
    neighbour in the same set (itself excluded)::

        manifold(X) = union_i B(x_i, d_k(x_i, X))
        precision = (1/m) sum_j [fake_j in manifold(real)]
        recall    = (1/n) sum_i [real_i in manifold(fake)]

    Precision is the share of samples that look real (quality), recall the
    share of the data the model reaches (coverage): a collapsed model keeps
    its precision and loses recall. Both lie in [0, 1]; swapping the two sets
    swaps them. The paper uses k = 3 on deep features. Two sets of fresh draws
    of one distribution do not score 1: the balls miss the tails, and the
    more so the higher the dimension (for two sets of 2000 standard Gaussian
    draws and k = 3, about 0.98 in 2 dimensions, 0.79 in 16, 0.61 in 64), so
    compare models only on sets of equal sizes and features.

    Computed in float64 on ``real``'s device, in blocks, with ``torch.cdist``
    on differences (exact zeros for repeated points, so a closed ball always
    holds its centre). Both sets need at least k + 1 points.
    """
    require_int("k", k, low=1)
    _points("real", real, at_least=k + 1)
    _points("fake", fake, dim=real.shape[1], at_least=k + 1)
    a = real.double()
    b = fake.double().to(a.device)
    precision = _inside(b, a, _radii(a, k)).double().mean().item()
    recall = _inside(a, b, _radii(b, k)).double().mean().item()
    return precision, recall


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
        if features.shape[1] == 0:
            raise ValueError(f"{name} must hold at least one feature per row, got shape {tuple(features.shape)}")
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

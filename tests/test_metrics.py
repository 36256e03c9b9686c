import math

import pytest
import torch

from gmlib.metrics import grid_2d, nll


def test_grid_integrates_a_gaussian_to_one():
    points, area = grid_2d(lim=5.0, n=200)
    assert points.shape == (40_000, 2)
    density = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2)).log_prob(points.float()).exp()
    assert density.sum().item() * area == pytest.approx(1.0, abs=1e-5)


def test_nll_is_the_mean_negative_log_prob_with_its_standard_error():
    log_prob = torch.tensor([-1.0, -2.0, -3.0, -4.0])
    mean, se = nll(log_prob)
    assert mean == pytest.approx(2.5)
    assert se == pytest.approx(torch.tensor([1.0, 2.0, 3.0, 4.0]).std().item() / 2)


@pytest.mark.parametrize("bad", [torch.zeros(1), torch.zeros(2, 2), torch.tensor([0.0, math.nan]), [0.0, 1.0]])
def test_nll_refuses_bad_input(bad):
    with pytest.raises(ValueError, match="log_prob"):
        nll(bad)


@pytest.mark.parametrize(("kwargs", "message"), [({"lim": 0.0, "n": 10}, "lim"), ({"lim": 1.0, "n": 1}, "n")])
def test_grid_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grid_2d(**kwargs)


def test_mode_coverage_counts_modes_weights_and_near_samples():
    from gmlib.metrics import mode_coverage

    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    samples = torch.cat([centers[0].expand(60, 2), centers[1].expand(40, 2), torch.full((100, 2), 5.0)])
    coverage = mode_coverage(samples, centers, std=0.1)
    assert coverage.covered == 2
    assert coverage.near_fraction == pytest.approx(0.5)
    assert coverage.weights.tolist() == pytest.approx([0.6, 0.4, 0.0, 0.0])
    assert coverage.max_weight_error == pytest.approx(0.35)
    assert mode_coverage(samples, centers, std=0.1, min_weight=0.5).covered == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples": torch.zeros(5, 3)}, "centers"),
        ({"samples": torch.zeros(0, 2)}, "non-empty"),
        ({"samples": torch.tensor([[math.nan, 0.0]])}, "finite"),
        ({"std": 0.0}, "std"),
        ({"min_weight": 2.0}, "min_weight"),
    ],
)
def test_mode_coverage_refuses_bad_input(kwargs, message):
    from gmlib.metrics import mode_coverage

    arguments = {"samples": torch.zeros(5, 2), "centers": torch.zeros(3, 2), "std": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        mode_coverage(**arguments)


def test_class_histogram_is_the_share_of_each_nearest_neighbour_label():
    from gmlib.metrics import class_histogram, nearest_neighbour_labels

    gen = torch.Generator().manual_seed(0)
    reference, labels = torch.randn(50, 3, generator=gen), torch.randint(0, 4, (50,), generator=gen)
    samples = torch.randn(200, 3, generator=gen)
    by_loop = torch.zeros(4, dtype=torch.float64)
    for s in samples:  # the nearest reference point, one sample at a time
        by_loop[labels[((reference - s) ** 2).sum(-1).argmin()]] += 1 / 200
    assert torch.allclose(class_histogram(samples, reference, labels, classes=4), by_loop)
    distance, label = nearest_neighbour_labels(reference[:5] + 1e-9, reference, labels)
    assert torch.equal(label, labels[:5]) and (distance < 1e-6).all()
    with pytest.raises(ValueError, match="labels"):
        class_histogram(samples, reference, labels, classes=3)


# --- boundaries and definitions pinned (issue 17) -------------------------------------------------------


def test_nll_of_two_values_and_the_smallest_grid():
    assert nll(torch.tensor([-1.0, -3.0])) == pytest.approx((2.0, 1.0))  # sd sqrt(2) over sqrt(2)
    points, area = grid_2d(lim=1.5, n=2)
    assert points.tolist() == [[-0.75, -0.75], [0.75, -0.75], [-0.75, 0.75], [0.75, 0.75]]
    assert area == pytest.approx(1.5**2)


def test_mode_coverage_default_bar_is_a_quarter_of_the_fair_share():
    from gmlib.metrics import mode_coverage

    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])

    def at_modes(counts):
        return torch.cat([centers[k].expand(c, 2) for k, c in enumerate(counts)])

    # K = 4 modes: the bar is 1/16 of the near samples, inclusive
    assert mode_coverage(at_modes([1, 2, 7, 10]), centers, std=0.1).covered == 3  # 1/20 < 1/16
    assert mode_coverage(at_modes([1, 5, 10, 0]), centers, std=0.1).covered == 3  # exactly 1/16 counts
    assert mode_coverage(at_modes([1, 5, 10, 0]), centers, std=0.1, min_weight=1.0).covered == 0
    one = mode_coverage(at_modes([0, 1, 0, 0]), centers, std=0.1)
    assert one.weights.tolist() == [0.0, 1.0, 0.0, 0.0] and one.covered == 1
    # near means strictly within threshold * std (here exactly 0.5 away: not near)
    edge = mode_coverage(torch.tensor([[0.5, 0.0], [0.1, 0.0]]), centers, std=0.25, threshold=2.0)
    assert edge.near_fraction == 0.5
    with pytest.raises(ValueError, match="min_weight"):
        mode_coverage(at_modes([1, 1, 1, 1]), centers, std=0.1, min_weight=0.0)
    with pytest.raises(ValueError, match="non-empty"):
        mode_coverage(torch.zeros(0, 2), centers, std=0.1)
    with pytest.raises(ValueError, match="non-empty"):
        mode_coverage(torch.zeros(3, 2), torch.zeros(0, 2), std=0.1)


def test_mode_coverage_results_are_frozen():
    import dataclasses

    from gmlib.metrics import mode_coverage

    coverage = mode_coverage(torch.zeros(3, 2), torch.zeros(1, 2), std=0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        coverage.covered = 0


def test_dequantized_nll_is_an_upper_bound_on_the_discrete_nll():
    """A normal density N(mu, sigma^2) on the line gives level k the exact mass P(k) = Phi(k+1) - Phi(k) (z-scored)."""
    from gmlib.metrics import dequantized_nll

    mu, sigma = 1.3, 0.8
    normal = torch.distributions.Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))
    x = torch.tensor([0, 1, 1, 2, 2, 2, 3, 1]).unsqueeze(1)  # (n, 1) levels

    def log_prob(y: torch.Tensor) -> torch.Tensor:
        return normal.log_prob(y.double()).sum(-1)

    k = x.squeeze(1).double()
    exact_nll = -torch.log(normal.cdf(k + 1) - normal.cdf(k)).mean().item()
    # E_u[-log p(k + u)], u ~ U[0, 1), in closed form: E (k + u - mu)^2 = (k - mu)^2 + (k - mu) + 1/3
    bound = (0.5 * math.log(2 * math.pi * sigma**2) + ((k - mu) ** 2 + (k - mu) + 1 / 3) / (2 * sigma**2)).mean().item()
    assert bound > exact_nll + 0.01  # Jensen's gap, strictly positive for a density that varies within a level
    estimate, se = dequantized_nll(log_prob, x, draws=4000, generator=torch.Generator().manual_seed(0))
    # it estimates the bound: 8 x 4000 draws of -log p(k + u) (sd ~0.5 nats) leave a Monte-Carlo error ~0.003
    assert estimate == pytest.approx(bound, abs=0.02)
    assert estimate > exact_nll


def test_dequantized_nll_is_exact_for_a_density_constant_on_each_level():
    from gmlib.metrics import dequantized_nll

    probs = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)  # p(y) = probs[floor(y)] on [0, 3): P(k) = probs[k]
    x = torch.tensor([[0, 1], [1, 2], [2, 2]])

    def log_prob(y: torch.Tensor) -> torch.Tensor:
        return torch.log(probs[y.floor().long()]).sum(-1)

    mean, se = dequantized_nll(log_prob, x, draws=3)
    assert mean == pytest.approx(-torch.log(probs[x]).sum(-1).mean().item(), abs=1e-12)
    assert se == pytest.approx(torch.log(probs[x]).sum(-1).std().item() / math.sqrt(3), abs=1e-12)
    with pytest.raises(ValueError, match="draws"):
        dequantized_nll(log_prob, x, draws=0)
    with pytest.raises(ValueError, match="x must have shape"):
        dequantized_nll(log_prob, x[0], draws=1)


# --- Frechet distance ---------------------------------------------------------------------------------------


def _correlated(n: int, d: int, *, seed: int, shift: float = 0.0) -> torch.Tensor:
    """n draws (n, d) float64 of a Gaussian with a random full covariance and mean ``shift``."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) @ mixing + shift


def _with_moments(mean: torch.Tensor, cov: torch.Tensor, n: int, *, seed: int) -> torch.Tensor:
    """n points (n, d) whose sample mean is exactly ``mean`` and whose unbiased sample covariance is exactly ``cov``."""
    z = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(z.T @ z / (n - 1))).T  # whitened: sample covariance I
    return z @ torch.linalg.cholesky(cov).T + mean


def _textbook_frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID as first published: numpy moments and scipy's general matrix root of S_a S_b."""
    import numpy as np
    import scipy.linalg

    a, b = a.numpy(), b.numpy()
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * cross))


def test_frechet_distance_matches_the_textbook_formula_on_correlated_features():
    from gmlib.metrics import frechet_distance

    for d, n, m in [(1, 50, 80), (6, 500, 400), (20, 300, 1000)]:
        a = _correlated(n, d, seed=d)
        b = 0.7 * _correlated(m, d, seed=100 + d, shift=0.3)
        expected = _textbook_frechet(a, b)
        assert expected > 0.1
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
        assert frechet_distance(a.float(), b.float()) == pytest.approx(expected, rel=1e-5)  # float32 in, float64 inside


def test_frechet_distance_is_the_w2_distance_of_diagonal_gaussians_exactly():
    """Commuting covariances: ||mu_a - mu_b||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2, on samples with those moments."""
    from gmlib.metrics import frechet_distance

    var_a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    var_b = torch.tensor([4.0, 1.0, 0.25, 2.0], dtype=torch.float64)
    mean_a = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64)
    mean_b = torch.tensor([1.0, 1.0, 0.0, 0.5], dtype=torch.float64)
    a = _with_moments(mean_a, torch.diag(var_a), 40, seed=0)
    b = _with_moments(mean_b, torch.diag(var_b), 25, seed=1)
    exact = ((mean_a - mean_b) ** 2).sum() + ((var_a.sqrt() - var_b.sqrt()) ** 2).sum()  # 5 + 1 + 1 + 0 + 1.69
    assert frechet_distance(a, b) == pytest.approx(exact.item(), rel=1e-10)
    # one common rotation turns both covariances into full (but still commuting) matrices: the same number
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    assert frechet_distance(a @ rotation, b @ rotation) == pytest.approx(exact.item(), rel=1e-10)


def test_frechet_distance_of_1d_gaussians_is_the_closed_form_on_large_samples():
    """N(1, 2^2) vs N(-0.5, 0.5^2): (mu1 - mu2)^2 + (s1 - s2)^2 = 2.25 + 2.25 = 4.5."""
    from gmlib.metrics import frechet_distance

    gen = torch.Generator().manual_seed(0)
    n = 200_000
    a = 1.0 + 2.0 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    b = -0.5 + 0.5 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    # sampling error: 2 * 1.5 * sd(mean difference) ~ 0.014 plus 2 * 1.5 * sd(s1 - s2) ~ 0.01; 0.05 is > 3 sd
    assert frechet_distance(a, b) == pytest.approx(4.5, abs=0.05)


def test_frechet_distance_is_zero_for_identical_inputs_even_with_singular_covariances():
    from gmlib.metrics import frechet_distance

    a = _correlated(300, 8, seed=0, shift=5.0)
    assert 0.0 <= frechet_distance(a, a) < 1e-10 * a.var(0).sum().item()
    few = _correlated(5, 20, seed=1)  # n < d: covariance of rank 4
    dead = torch.cat([a, torch.zeros(300, 3, dtype=torch.float64)], dim=1)  # constant features, as dead ReLU units give
    for x in (few, dead, torch.ones(4, 3)):
        assert 0.0 <= frechet_distance(x, x) < 1e-9
        assert frechet_distance(x, x.clone()) == frechet_distance(x, x)
    assert isinstance(frechet_distance(a, a), float)


def test_frechet_distance_is_symmetric_and_invariant_to_a_common_rotation_and_translation():
    from gmlib.metrics import frechet_distance

    a = _correlated(400, 5, seed=3)
    b = _correlated(250, 5, seed=4, shift=1.0)
    distance = frechet_distance(a, b)
    assert distance > 1.0
    assert frechet_distance(b, a) == pytest.approx(distance, rel=1e-9)
    rotation, _ = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
    shift = torch.tensor([3.0, -1.0, 0.5, 10.0, 2.0], dtype=torch.float64)
    assert frechet_distance(a @ rotation + shift, b @ rotation + shift) == pytest.approx(distance, rel=1e-9)
    # a squared distance: scaling both sets by c scales it by c^2;
    # translating one set by t adds |t|^2 + 2 t.(mu_a - mu_b)
    assert frechet_distance(3 * a, 3 * b) == pytest.approx(9 * distance, rel=1e-9)
    t = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    moved = distance + 1.0 + 2 * (a.mean(0) - b.mean(0))[0].item()
    assert frechet_distance(a + t, b) == pytest.approx(moved, rel=1e-9)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (torch.zeros(5), torch.zeros(5, 1), "features_a must have shape"),
        (torch.zeros(5, 2), torch.zeros(5, 2, 1), "features_b must have shape"),
        ([[0.0, 1.0], [1.0, 0.0]], torch.zeros(5, 2), "features_a must be a torch.Tensor"),
        (torch.zeros(5, 2), torch.zeros(5, 3), "same number of features"),
        (torch.zeros(1, 2), torch.zeros(5, 2), "features_a must hold at least 2 rows"),
        (torch.zeros(5, 2), torch.zeros(1, 2), "features_b must hold at least 2 rows"),
        (torch.tensor([[0.0, math.nan], [1.0, 1.0]]), torch.zeros(5, 2), "features_a must be finite"),
        (torch.zeros(5, 2), torch.tensor([[0.0, math.inf], [1.0, 1.0]]), "features_b must be finite"),
    ],
)
def test_frechet_distance_refuses_bad_input(a, b, message):
    from gmlib.metrics import frechet_distance

    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)


# --- precision and recall, nearest distances -----------------------------------------------------------------


def _brute_precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int) -> tuple[float, float]:
    """Kynkaanniemi et al. 2019 written out with Python loops and math.dist, one point at a time."""

    def manifold(points):  # [(centre, radius)], radius the distance to the k-th nearest other point
        return [
            (p, sorted(math.dist(p, q) for j, q in enumerate(points) if j != i)[k - 1]) for i, p in enumerate(points)
        ]

    def share_inside(queries, balls):
        return sum(any(math.dist(x, c) <= r for c, r in balls) for x in queries) / len(queries)

    real, fake = real.tolist(), fake.tolist()
    return share_inside(fake, manifold(real)), share_inside(real, manifold(fake))


def _blobs(n: int, centres: list[tuple[float, float]], *, seed: int) -> torch.Tensor:
    """n standard Gaussian draws around each centre: (n * len(centres), 2)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(n, 2, generator=gen) + torch.tensor(c) for c in centres])


@pytest.mark.parametrize(("offset", "unit"), [(0.0, 1.0), (1e6, 1 / 16)])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_matches_the_definition_written_as_loops(k, offset, unit):
    """Against loops of math.dist; also on a small cloud a million from the origin, where distances through
    matrix products (|x|^2 + |y|^2 - 2 x.y) carry errors of ~0.03 and would misplace points near a boundary."""
    from gmlib.metrics import precision_recall

    gen = torch.Generator().manual_seed(k)
    real = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    real = unit * torch.cat([real, real[:6]]) + offset  # repeated points: a repeat is a neighbour at distance 0
    fake = unit * (0.8 * torch.randn(30, 3, generator=gen, dtype=torch.float64) + 0.5) + offset
    fake = torch.cat([fake, real[[2, 3, 10, 11]]])  # copies of real points, two of them repeated ones
    expected = _brute_precision_recall(real, fake, k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # not a degenerate case
    assert precision_recall(real, fake, k=k) == expected
    if offset == 0:
        assert precision_recall(real.float(), fake.float(), k=k) == expected  # float32 in, float64 inside
    # swapping the sets swaps the two numbers (recall is precision with the roles exchanged)
    assert precision_recall(fake, real, k=k) == expected[::-1]


def test_precision_recall_of_a_set_with_itself_is_one_and_of_a_far_set_zero():
    from gmlib.metrics import precision_recall

    real = _blobs(100, [(0.0, 0.0)], seed=0)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)  # every point is the centre of its own ball
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)  # radii are a few units; the sets are 100 apart


def test_precision_recall_of_a_model_that_drops_a_mode():
    """Real: two blobs 20 apart; fake: fresh draws of the first blob only.

    Every fake point lies where real points are, so precision is near 1 (only
    tail draws fall outside the balls: 0-7.5% at 200 points in 2D, k = 3, over
    seeds 0-9); no real point of the second blob lies within reach of a fake
    ball (radii of a few units against a gap of 20), so recall is at most 1/2
    exactly, and near it because the first blob is covered (91-100% of it over
    those seeds: recall 0.455-0.4975; the bars leave a margin below).
    """
    from gmlib.metrics import precision_recall

    for seed in range(3):
        real = _blobs(200, [(-10.0, 0.0), (10.0, 0.0)], seed=seed)
        fake = _blobs(200, [(-10.0, 0.0)], seed=100 + seed)
        precision, recall = precision_recall(real, fake)
        assert precision > 0.9
        assert 0.4 < recall <= 0.5
        both = _blobs(200, [(-10.0, 0.0), (10.0, 0.0)], seed=200 + seed)
        assert precision_recall(real, both)[1] > 0.9  # the same blobs, both modes: recall recovers


def test_precision_recall_balls_are_closed_and_exact_far_from_the_origin():
    """Points on a line at spacing u = 1/64, about a million from 0: every tie below is exact.

    Real points 0, u, 2u, 3u (k = 1: every radius is u) and fake points -u,
    1.5u, 4u, 5u (radii 2.5u, 2.5u, u, u), all shifted by the same offset (the
    shifted values and their differences are exact in float64). Fake -u and 4u
    lie exactly u from a real point: inside, since the balls are closed; 5u
    does not. Every real point is inside a fake ball (3u exactly on the
    boundary of 4u's). Distances through matrix products, |x|^2 + |y|^2 - 2 x.y,
    would carry errors of ~1e-2 here, as large as the spacing.
    """
    from gmlib.metrics import precision_recall

    offset, u = 1e6 + 0.3, 1 / 64
    real = offset + u * torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    fake = offset + u * torch.tensor([[-1.0], [1.5], [4.0], [5.0]], dtype=torch.float64)
    assert (fake[2] - real[3]).item() == u and (real[0] - fake[0]).item() == u  # the ties are exact
    assert precision_recall(real, fake, k=1) == (0.75, 1.0)
    assert precision_recall(real, fake, k=3) == (1.0, 1.0)  # radii 3u (real) and 6u, 3.5u, 5u, 6u (fake)


@pytest.mark.parametrize(
    ("real", "fake", "k", "message"),
    [
        (torch.zeros(10), torch.zeros(10, 2), 3, "real must have shape"),
        (torch.zeros(10, 2), torch.zeros(10, 2, 1), 3, "fake must have shape"),
        (torch.zeros(10, 2), torch.zeros(10, 3), 3, r"fake must have shape \(\*, 2\)"),
        ([[0.0, 1.0]] * 10, torch.zeros(10, 2), 3, "real must be a torch.Tensor"),
        (torch.full((10, 2), math.nan), torch.zeros(10, 2), 3, "real must be finite"),
        (torch.zeros(10, 2), torch.full((10, 2), math.inf), 3, "fake must be finite"),
        (torch.zeros(10, 2), torch.zeros(10, 2), 0, "k must be an int >= 1"),
        (torch.zeros(10, 2), torch.zeros(10, 2), 2.0, "k must be an int >= 1"),
        (torch.zeros(3, 2), torch.zeros(10, 2), 3, "real must hold at least 4 points"),
        (torch.zeros(10, 2), torch.zeros(3, 2), 3, "fake must hold at least 4 points"),
        (torch.zeros(10, 0), torch.zeros(10, 0), 3, "real must hold .* at least one coordinate"),
    ],
)
def test_precision_recall_refuses_bad_input(real, fake, k, message):
    from gmlib.metrics import precision_recall

    with pytest.raises(ValueError, match=message):
        precision_recall(real, fake, k=k)


def test_nearest_distances_match_a_loop_and_are_exactly_zero_for_copies(monkeypatch):
    import gmlib.metrics
    from gmlib.metrics import nearest_distances, nearest_neighbour_labels

    gen = torch.Generator().manual_seed(0)
    reference = 50.0 + torch.randn(70, 4, generator=gen, dtype=torch.float64)  # far from 0: cancellation-prone
    queries = torch.cat([50.0 + torch.randn(25, 4, generator=gen, dtype=torch.float64), reference[[3, 41, 69]]])
    by_loop = torch.tensor(
        [min(math.dist(q, r) for r in reference.tolist()) for q in queries.tolist()], dtype=torch.float64
    )
    distances = nearest_distances(queries, reference)
    assert distances.dtype == torch.float64 and distances.shape == (28,)
    assert torch.allclose(distances, by_loop, rtol=1e-12, atol=0)
    assert distances[-3:].tolist() == [0.0, 0.0, 0.0]  # a copied training point is at distance exactly 0
    # the same numbers when the distance matrix is cut into blocks of one or a few rows
    for entries in (1, 150, 10_000):
        monkeypatch.setattr(gmlib.metrics, "_BLOCK_ENTRIES", entries)
        assert torch.equal(nearest_distances(queries, reference), distances)
    # one search behind both functions
    labels = torch.arange(70) % 7
    distance, label = nearest_neighbour_labels(queries, reference, labels)
    assert torch.equal(distance, distances) and torch.equal(label[-3:], labels[[3, 41, 69]])


@pytest.mark.parametrize(
    ("queries", "reference", "message"),
    [
        (torch.zeros(5), torch.zeros(5, 2), "queries must have shape"),
        (torch.zeros(5, 2), torch.zeros(5, 3), r"reference must have shape \(\*, 2\)"),
        (torch.zeros(0, 2), torch.zeros(5, 2), "queries must hold at least 1 point"),
        (torch.zeros(5, 2), torch.zeros(0, 2), "reference must hold at least 1 point"),
        (torch.tensor([[0.0, math.nan]]), torch.zeros(5, 2), "queries must be finite"),
        (torch.zeros(5, 2), torch.tensor([[0.0, math.inf]]), "reference must be finite"),
        ([[0.0, 1.0]], torch.zeros(5, 2), "queries must be a torch.Tensor"),
    ],
)
def test_nearest_distances_refuse_bad_input(queries, reference, message):
    from gmlib.metrics import nearest_distances

    with pytest.raises(ValueError, match=message):
        nearest_distances(queries, reference)


def test_nearest_neighbour_labels_refuse_an_empty_or_non_finite_reference():
    from gmlib.metrics import nearest_neighbour_labels

    with pytest.raises(ValueError, match="reference must hold at least 1 point"):
        nearest_neighbour_labels(torch.zeros(3, 2), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="reference must be finite"):
        nearest_neighbour_labels(torch.zeros(3, 2), torch.full((4, 2), math.nan), torch.zeros(4, dtype=torch.long))


def test_frechet_distance_refuses_features_without_a_feature():
    from gmlib.metrics import frechet_distance

    with pytest.raises(ValueError, match="features_a must hold at least one feature"):
        frechet_distance(torch.zeros(5, 0), torch.zeros(5, 0))

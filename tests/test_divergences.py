import math

import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gmlib
from gmlib.divergences import js_divergence, kl_divergence, kl_monte_carlo, kl_terms

probability_vectors = (
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8)
    .filter(lambda v: sum(v) > 1e-3)
    .map(lambda v: torch.tensor(v, dtype=torch.float64) / sum(v))
)


def pairs(strategy=probability_vectors):
    return st.integers(2, 8).flatmap(
        lambda k: st.tuples(
            *[
                st.lists(st.floats(1e-3, 1.0), min_size=k, max_size=k).map(
                    lambda v: torch.tensor(v, dtype=torch.float64) / sum(v)
                )
            ]
            * 2
        )
    )


@given(pairs())
@settings(max_examples=200, deadline=None)
def test_kl_is_non_negative_and_matches_scipy(pq):
    p, q = pq
    kl = kl_divergence(p, q).item()
    assert kl >= -1e-12
    assert kl == pytest.approx(scipy.stats.entropy(p.numpy(), q.numpy()), abs=1e-10)
    assert kl_divergence(p, q, base=2).item() == pytest.approx(
        scipy.stats.entropy(p.numpy(), q.numpy(), base=2), abs=1e-10
    )


@given(pairs())
@settings(max_examples=200, deadline=None)
def test_js_is_symmetric_and_bounded_by_log_two(pq):
    p, q = pq
    js = js_divergence(p, q).item()
    assert js == pytest.approx(js_divergence(q, p).item(), abs=1e-12)
    assert -1e-12 <= js <= math.log(2) + 1e-12
    assert js_divergence(p, q, base=2).item() <= 1 + 1e-12
    assert js == pytest.approx(scipy.spatial.distance.jensenshannon(p.numpy(), q.numpy()) ** 2, abs=1e-10)


def test_js_reaches_log_two_on_disjoint_supports():
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert js_divergence(p, q).item() == pytest.approx(math.log(2))
    assert js_divergence(p, q, base=2).item() == pytest.approx(1.0)
    assert kl_divergence(p, q).item() == math.inf


def test_kl_terms_are_the_seed_penalties():
    terms = kl_terms(torch.tensor([0.9, 0.1], dtype=torch.float64), torch.tensor([0.1, 0.9], dtype=torch.float64))
    assert terms.tolist() == pytest.approx([0.9 * math.log(9), -0.1 * math.log(9)])


def test_batched_inputs_give_one_value_per_row():
    p = torch.softmax(torch.randn(5, 4), -1)
    q = torch.softmax(torch.randn(5, 4), -1)
    assert kl_divergence(p, q).shape == (5,)
    assert torch.allclose(kl_divergence(p, q)[2], kl_divergence(p[2], q[2]))


@pytest.mark.parametrize(
    ("p", "q", "message"),
    [
        ([0.5, 0.5], [0.2, 0.3, 0.5], "same shape"),
        ([1.2, -0.2], [0.5, 0.5], "non-negative"),
        ([0.5, 0.6], [0.5, 0.5], "sum to 1"),
        ([0.5, float("nan")], [0.5, 0.5], "finite"),
        ([], [], "non-empty"),
    ],
)
def test_bad_distributions_are_refused(p, q, message):
    for divergence in (kl_divergence, js_divergence):
        with pytest.raises(ValueError, match=message):
            divergence(torch.tensor(p), torch.tensor(q))


def test_bad_base_is_refused():
    p = torch.tensor([0.5, 0.5])
    for base in (1, 0, -2.0):
        with pytest.raises(ValueError, match="base"):
            kl_divergence(p, p, base=base)


def test_monte_carlo_kl_agrees_with_the_closed_form():
    p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(1.0, 2.0)
    x = p.sample((200_000,))
    estimate, stderr = kl_monte_carlo(p.log_prob(x), q.log_prob(x))
    assert abs(estimate - torch.distributions.kl_divergence(p, q).item()) < 4 * stderr
    with pytest.raises(ValueError, match="shape"):
        kl_monte_carlo(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        kl_monte_carlo(torch.tensor([0.0, float("-inf")]), torch.zeros(2))


# --- chapter "GANs": W1, sliced W, MMD, the f-divergence table ---------------------------------------------

from gmlib.divergences import (  # noqa: E402
    F_DIVERGENCES,
    f_divergence,
    mmd,
    sliced_wasserstein,
    wasserstein_1d,
)

samples_1d = st.lists(st.floats(-100, 100), min_size=1, max_size=30).map(lambda v: torch.tensor(v, dtype=torch.float64))


@given(samples_1d, samples_1d, samples_1d)
@settings(max_examples=150, deadline=None)
def test_w1_matches_scipy_and_is_a_metric(x, y, z):
    w = wasserstein_1d(x, y).item()
    assert w == pytest.approx(scipy.stats.wasserstein_distance(x.numpy(), y.numpy()), abs=1e-9, rel=1e-9)
    assert w == pytest.approx(wasserstein_1d(y, x).item(), abs=1e-9)
    assert wasserstein_1d(x, x).item() == 0.0
    assert w <= wasserstein_1d(x, z).item() + wasserstein_1d(z, y).item() + 1e-9


def test_sliced_wasserstein_in_one_dimension_is_w1():
    x, y = torch.randn(300, dtype=torch.float64), 2 * torch.randn(200, dtype=torch.float64) + 1
    exact = scipy.stats.wasserstein_distance(x.numpy(), y.numpy())
    assert sliced_wasserstein(x[:, None], y[:, None]).item() == pytest.approx(exact, abs=1e-12)
    assert sliced_wasserstein(x[:200, None], y[:, None]).item() == pytest.approx(
        scipy.stats.wasserstein_distance(x[:200].numpy(), y.numpy()), abs=1e-12
    )


def test_sliced_wasserstein_of_a_shift_is_the_mean_absolute_projection():
    # shifting by a vector s moves every projection by <theta, s>: SW = E|<theta, s>| = 2|s|/pi in 2D
    x = torch.randn(1000, 2, dtype=torch.float64)
    shift = torch.tensor([3.0, 4.0], dtype=torch.float64)
    value = sliced_wasserstein(x, x + shift, projections=20_000, generator=torch.Generator().manual_seed(0))
    assert value.item() == pytest.approx(2 * 5 / math.pi, rel=0.02)


def test_mmd_agrees_with_the_closed_form_for_gaussians():
    # E k(X, Y) for X ~ N(a, s^2 I), Y ~ N(b, t^2 I), k = exp(-|x-y|^2 / 2h^2), in d dimensions:
    # (h^2 / (h^2 + s^2 + t^2))^(d/2) exp(-|a - b|^2 / (2 (h^2 + s^2 + t^2)))
    gmlib.seed_everything(0)
    d, h = 2, 1.0

    def mean_kernel(gap, var):
        return (h**2 / (h**2 + var)) ** (d / 2) * math.exp(-(gap**2) / (2 * (h**2 + var)))

    exact = mean_kernel(0, 2.0) + mean_kernel(0, 2 * 0.25) - 2 * mean_kernel(1.0, 1.25)
    x = torch.randn(4000, d, dtype=torch.float64)
    y = 0.5 * torch.randn(4000, d, dtype=torch.float64) + torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert mmd(x, y, bandwidths=(h,)).item() == pytest.approx(exact, abs=0.03)  # about 4 standard errors
    assert abs(mmd(x, torch.randn(4000, d, dtype=torch.float64)).item()) < 0.005


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_f_divergence_table_is_consistent(name):
    spec = F_DIVERGENCES[name]
    u = torch.linspace(0.05, 5, 200, dtype=torch.float64)
    at_one = -math.log(4) if name == "gan" else 0.0  # the GAN row is 2 JSD - log 4, so f(1) = -log 4
    assert spec.f(torch.ones(1, dtype=torch.float64)).item() == pytest.approx(at_one, abs=1e-12)
    # Fenchel-Young with equality at t = f'(u): f*(f'(u)) = u f'(u) - f(u)
    t = spec.f_prime(u)
    assert torch.allclose(spec.conjugate(t), u * t - spec.f(u), atol=1e-9)
    # f' agrees with autograd
    v = u.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(spec.f(v).sum(), v)
    assert torch.allclose(grad, t, atol=1e-9)
    # the activation lands in the conjugate's domain: f*(activation(v)) is finite
    assert torch.isfinite(spec.conjugate(spec.activation(torch.linspace(-20, 20, 101, dtype=torch.float64)))).all()


def test_f_divergence_recovers_kl_and_js():
    p = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    q = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    assert f_divergence(p, q, divergence="kl").item() == pytest.approx(kl_divergence(p, q).item())
    assert f_divergence(p, q, divergence="reverse_kl").item() == pytest.approx(kl_divergence(q, p).item())
    assert f_divergence(p, q, divergence="js").item() == pytest.approx(2 * js_divergence(p, q).item())
    gan = f_divergence(p, q, divergence="gan").item()
    assert gan == pytest.approx(2 * js_divergence(p, q).item() - math.log(4))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wasserstein_1d(torch.zeros(0), torch.zeros(3)), "non-empty"),
        (lambda: wasserstein_1d(torch.zeros(3, 1), torch.zeros(3)), "shape"),
        (lambda: wasserstein_1d(torch.tensor([math.nan]), torch.zeros(3)), "finite"),
        (lambda: sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 3)), "agree on every axis"),
        (lambda: sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), projections=0), "projections"),
        (lambda: mmd(torch.zeros(1, 2), torch.zeros(3, 2)), "at least 2"),
        (lambda: mmd(torch.zeros(3, 2), torch.zeros(3, 2), bandwidths=(-1.0,)), "bandwidths"),
        (lambda: f_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]), divergence="kl"), "q must be > 0"),
        (lambda: f_divergence(torch.tensor([1.5, -0.5]), torch.tensor([0.5, 0.5]), divergence="kl"), "non-negative"),
        (lambda: f_divergence(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]), divergence="kl"), "sum to 1"),
        (lambda: f_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5]), divergence="tv"), "one of"),
    ],
)
def test_sample_distances_refuse_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_batched_sample_distances_equal_one_call_per_batch_entry():
    x, y = torch.randn(3, 40, 2), torch.randn(3, 40, 2) + 0.5
    batched_mmd = mmd(x, y, bandwidths=(0.5, 1.0))
    assert batched_mmd.shape == (3,)
    assert torch.allclose(
        batched_mmd, torch.stack([mmd(a, b, bandwidths=(0.5, 1.0)) for a, b in zip(x, y, strict=True)])
    )
    batched_sw = sliced_wasserstein(x, y, projections=16, generator=torch.Generator().manual_seed(1))
    single_sw = [
        sliced_wasserstein(a, b, projections=16, generator=torch.Generator().manual_seed(1))
        for a, b in zip(x, y, strict=True)
    ]
    assert torch.allclose(batched_sw, torch.stack(single_sw))
    with pytest.raises(ValueError, match="equal sizes"):
        sliced_wasserstein(x, y[:, :30])


# --- pinned against independent references (issue 17) ------------------------------------------------------


def _mmd_by_the_formula(x, y, bandwidths):
    """Gretton et al. 2012, eq. (3): the unbiased MMD^2_u, term by term, with k = sum_h exp(-|a - b|^2 / (2 h^2))."""

    def k(a, b):
        squared = sum((ai - bi) ** 2 for ai, bi in zip(a, b, strict=True))
        return sum(math.exp(-squared / (2 * h * h)) for h in bandwidths)

    xs, ys = x.tolist(), y.tolist()
    m, n = len(xs), len(ys)
    xx = sum(k(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(ys[i], ys[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in xs for b in ys) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("bandwidths", [(1.0,), (0.3, 2.0)])
def test_mmd_is_the_unbiased_u_statistic_of_gretton_et_al(bandwidths):
    # unequal sample sizes and a small n: the biased V-statistic, a swapped normalisation or a
    # different bandwidth convention all differ from the formula by far more than rounding
    x = torch.randn(7, 3, dtype=torch.float64)
    y = 0.7 * torch.randn(5, 3, dtype=torch.float64) + 0.4
    expected = _mmd_by_the_formula(x, y, bandwidths)
    assert mmd(x, y, bandwidths=bandwidths).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert mmd(y, x, bandwidths=bandwidths).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("h", [0.5, 1.0, 3.0])
def test_gaussian_kernel_bandwidth_is_the_standard_deviation_as_in_sklearn(h):
    from sklearn.metrics.pairwise import rbf_kernel

    from gmlib.divergences import gaussian_kernel

    x, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    oracle = rbf_kernel(x.numpy(), y.numpy(), gamma=1 / (2 * h * h))  # exp(-gamma |x - y|^2)
    assert torch.allclose(gaussian_kernel(x, y, bandwidths=(h,)), torch.from_numpy(oracle), rtol=1e-12, atol=1e-14)
    both = gaussian_kernel(x, y, bandwidths=(h, 2 * h))
    second = rbf_kernel(x.numpy(), y.numpy(), gamma=1 / (2 * (2 * h) ** 2))
    assert torch.allclose(both, torch.from_numpy(oracle + second), rtol=1e-12, atol=1e-14)


def test_mmd_is_unbiased_for_equal_distributions():
    # E[MMD^2_u] = 0 when P = Q; the biased statistic is positive by (E k(x,x) - E k(x,y)) (1/m + 1/n)
    values = torch.stack([mmd(torch.randn(200, 10, 2), torch.randn(200, 10, 2)) for _ in range(2)]).flatten()
    se = values.std() / math.sqrt(len(values))
    assert abs(values.mean().item()) < 4 * se.item()
    bias = (1 - 1 / math.sqrt(1 + 4)) * (1 / 10 + 1 / 10)  # (k(x, x) - E k(x, y)) (1/m + 1/n), d = 2, h = 1
    assert 4 * se.item() < bias / 2  # the test can tell the two statistics apart


#: Nowozin et al. 2016, Table 6: the output activation g_f(v) of each row, and the domain of its conjugate
#: f* (Table 2) as (low, high): the activation must be increasing and map R onto (low, high).
NOWOZIN_ACTIVATIONS = {
    "kl": (lambda v: v, -math.inf, math.inf),
    "reverse_kl": (lambda v: -torch.exp(-v), -math.inf, 0.0),
    "pearson": (lambda v: v, -math.inf, math.inf),
    "hellinger": (lambda v: 1 - torch.exp(-v), -math.inf, 1.0),
    "js": (lambda v: math.log(2) - torch.log1p(torch.exp(-v)), -math.inf, math.log(2)),
    "gan": (lambda v: -torch.log1p(torch.exp(-v)), -math.inf, 0.0),
}


@pytest.mark.parametrize("name", sorted(NOWOZIN_ACTIVATIONS))
def test_f_gan_activation_is_nowozins_and_maps_onto_the_conjugate_domain(name):
    formula, low, high = NOWOZIN_ACTIVATIONS[name]
    spec = F_DIVERGENCES[name]
    v = torch.linspace(-30, 30, 601, dtype=torch.float64)
    t = spec.activation(v)
    assert torch.allclose(t, formula(v), rtol=1e-12, atol=1e-8)  # softplus is linear beyond 20: 2e-9 off
    assert (t[1:] > t[:-1]).all(), "the activation must be increasing"
    assert (t > low).all() and (t < high).all(), "the activation leaves the conjugate's domain"
    # onto: the ends of the domain are approached at the ends of R
    assert t[0].item() < max(low, -25.0)
    assert t[-1].item() > (min(high, 25.0) - 1e-9 if math.isfinite(high) else 25.0)


@pytest.mark.parametrize("name", sorted(F_DIVERGENCES))
def test_conjugate_is_the_numerical_supremum_on_the_activations_range(name):
    # f*(t) = sup_{u > 0} (t u - f(u)), maximised over log u by scipy, at the activation of a few raw outputs
    from scipy.optimize import minimize_scalar

    spec = F_DIVERGENCES[name]
    for v in (-2.0, -0.5, 0.0, 0.7, 1.5):
        t = spec.activation(torch.tensor(v, dtype=torch.float64))

        def negative(s, t=t):
            u = torch.tensor(math.exp(s), dtype=torch.float64)
            return -(t * u - spec.f(u)).item()

        best = minimize_scalar(negative, bounds=(-20, 8), method="bounded", options={"xatol": 1e-10})
        assert spec.conjugate(t).item() == pytest.approx(-best.fun, abs=1e-6)


@pytest.mark.parametrize("name", ["pearson", "hellinger"])
def test_pearson_and_hellinger_rows_match_their_definitions(name):
    # D_f(p || q) = sum q f(p/q): Pearson chi^2 = sum (p - q)^2 / q, squared Hellinger = sum (sqrt p - sqrt q)^2
    p = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    q = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    direct = ((p - q) ** 2 / q).sum() if name == "pearson" else ((p.sqrt() - q.sqrt()) ** 2).sum()
    assert f_divergence(p, q, divergence=name).item() == pytest.approx(direct.item(), rel=1e-12)


# --- bad input: a clear error or the right answer --------------------------------------------------------


@pytest.mark.parametrize("base", [0.5, 1, 0, -2.0, math.inf, math.nan, "2"])
def test_log_base_must_exceed_one(base):
    p, q = torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.9])
    with pytest.raises(ValueError, match="base must be a finite number > 1"):
        kl_divergence(p, q, base=base)
    with pytest.raises(ValueError, match="base"):
        js_divergence(p, q, base=base)


def test_kl_in_bits_is_kl_in_nats_over_log_two():
    p, q = torch.tensor([0.9, 0.1]), torch.tensor([0.1, 0.9])
    nats = 0.8 * math.log(9)
    assert kl_divergence(p, q).item() == pytest.approx(nats)
    assert kl_divergence(p, q, base=2).item() == pytest.approx(nats / math.log(2))
    assert kl_divergence(p, q, base=10).item() == pytest.approx(nats / math.log(10))


def test_a_long_float32_probability_vector_is_accepted_and_a_wrong_sum_is_printed():
    p = torch.rand(10**6)
    p = p / p.sum()
    p[0] += 1.7e-6  # the float32 rounding of a normalisation over a million entries
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match=r"sums to 1\.0012"):
        kl_divergence(torch.tensor([0.5, 0.5012]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"sums to 1\.001.*off by 0\.001"):
        kl_divergence(p + 1e-9, p)


@pytest.mark.parametrize(
    "call",
    [
        lambda: kl_divergence([0.5, 0.5], torch.tensor([0.5, 0.5])),
        lambda: js_divergence(torch.tensor([0.5, 0.5]), [0.5, 0.5]),
        lambda: kl_monte_carlo([0.0, 1.0], torch.zeros(2)),
        lambda: wasserstein_1d([0.0, 1.0], torch.zeros(2)),
        lambda: sliced_wasserstein(torch.zeros(3, 2), [[0.0, 1.0]]),
        lambda: mmd([[0.0, 1.0], [1.0, 0.0]], torch.zeros(3, 2)),
        lambda: f_divergence([0.5, 0.5], torch.tensor([0.5, 0.5]), divergence="kl"),
    ],
)
def test_a_list_for_a_tensor_is_refused_by_name(call):
    with pytest.raises(ValueError, match=r"(p|q|x|y|log_p|log_q) must be a torch\.Tensor, got list"):
        call()


@pytest.mark.parametrize("bandwidths", [0.5, 2, (), "1.0", (1.0, 0.0), None])
def test_bandwidths_must_be_a_tuple_of_positive_numbers(bandwidths):
    with pytest.raises(ValueError, match="bandwidths"):
        mmd(torch.zeros(3, 2), torch.ones(3, 2), bandwidths=bandwidths)
    assert mmd(torch.zeros(3, 2), torch.ones(3, 2), bandwidths=[1.0]).item() == pytest.approx(
        mmd(torch.zeros(3, 2), torch.ones(3, 2), bandwidths=(1.0,)).item()
    )


def test_mixed_precision_samples_are_promoted_alike_by_every_sample_distance():
    x = torch.randn(30, 2)
    y = torch.randn(20, 2, dtype=torch.float64) + 1
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    results = {
        "w1": (wasserstein_1d(x[:, 0], y[:, 0]), wasserstein_1d(x[:, 0].double(), y[:, 0])),
        "sw": (
            sliced_wasserstein(x, y, generator=generator()),
            sliced_wasserstein(x.double(), y, generator=generator()),
        ),
        "mmd": (mmd(x, y), mmd(x.double(), y)),
    }
    for mixed, promoted in results.values():
        assert mixed.dtype == torch.float64
        assert mixed.item() == pytest.approx(promoted.item(), rel=1e-12)
    assert mmd(y, x).dtype == torch.float64 and mmd(x, x).dtype == torch.float32


def test_max_sliced_wasserstein_is_the_best_projection_found_by_a_dense_angle_search():
    # independent reference: scipy's 1D W1 of the projections on 3600 angles of the half circle
    from gmlib.divergences import max_sliced_wasserstein

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=g, dtype=torch.float64)
    y = torch.randn(300, 2, generator=g, dtype=torch.float64) * torch.tensor([0.5, 1.5], dtype=torch.float64)
    angles = torch.linspace(0, math.pi, 3601, dtype=torch.float64)
    grid = max(
        scipy.stats.wasserstein_distance(x.numpy() @ [a.cos(), a.sin()], y.numpy() @ [a.cos(), a.sin()]) for a in angles
    )
    value = max_sliced_wasserstein(x, y, generator=torch.Generator().manual_seed(1)).item()
    assert value == pytest.approx(grid, rel=1e-4)  # the grid's resolution, pi/3600, costs less than that
    assert value <= grid * (1 + 1e-4)  # and no direction can beat the maximum
    assert value > sliced_wasserstein(x, y, projections=2000).item() * 1.2  # the max is not the mean


def test_max_sliced_wasserstein_of_a_shift_is_its_length_and_in_1d_it_is_w1():
    from gmlib.divergences import max_sliced_wasserstein

    x = torch.randn(500, 5, dtype=torch.float64)
    shift = torch.tensor([3.0, 4.0, 0.0, 0.0, 12.0], dtype=torch.float64)
    assert max_sliced_wasserstein(x, x + shift).item() == pytest.approx(13.0, rel=1e-6)  # max_theta <theta, s>
    a, b = torch.randn(300, dtype=torch.float64), 2 * torch.randn(200, dtype=torch.float64) + 1
    exact = scipy.stats.wasserstein_distance(a.numpy(), b.numpy())
    assert max_sliced_wasserstein(a[:, None], b[:, None]).item() == pytest.approx(exact, abs=1e-12)


def test_max_sliced_wasserstein_is_differentiable_and_refuses_bad_input():
    from gmlib.divergences import max_sliced_wasserstein

    x = torch.randn(50, 3, requires_grad=True)
    max_sliced_wasserstein(x, torch.randn(50, 3) + 1).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="projections"):
        max_sliced_wasserstein(torch.randn(5, 2), torch.randn(5, 2), projections=0)
    with pytest.raises(ValueError, match="steps"):
        max_sliced_wasserstein(torch.randn(5, 2), torch.randn(5, 2), steps=-1)
    with pytest.raises(ValueError, match="same|agree"):
        max_sliced_wasserstein(torch.randn(5, 2), torch.randn(5, 3))


def test_monte_carlo_kl_standard_error_is_the_standard_error_of_the_mean():
    gap = torch.randn(500, dtype=torch.float64) * 2 + 1
    estimate, stderr = kl_monte_carlo(gap, torch.zeros(500, dtype=torch.float64))
    assert estimate == pytest.approx(gap.mean().item(), rel=1e-12)
    assert stderr == pytest.approx(scipy.stats.sem(gap.numpy()), rel=1e-12)  # ddof=1, over sqrt(n)


def test_two_samples_are_enough_for_the_unbiased_mmd_and_one_projection_for_sliced_w():
    x, y = torch.randn(2, 2, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    assert mmd(x, y).item() == pytest.approx(_mmd_by_the_formula(x, y, (1.0,)), rel=1e-12)
    theta = torch.randn(2, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    theta = theta / theta.norm()
    one = sliced_wasserstein(x, y, projections=1, generator=torch.Generator().manual_seed(4))
    exact = scipy.stats.wasserstein_distance((x @ theta)[:, 0].numpy(), (y @ theta)[:, 0].numpy())
    assert one.item() == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wasserstein_1d(torch.zeros(3, 1), torch.zeros(3)), r"x must be a non-empty sample of shape \(n,\)"),
        (lambda: wasserstein_1d(torch.zeros(3), torch.zeros(0)), r"y must be a non-empty sample of shape \(n,\)"),
        (lambda: sliced_wasserstein(torch.zeros(3), torch.zeros(3, 2)), r"x must .* shape \(\.\.\., n, d\)"),
        (lambda: mmd(torch.zeros(3, 2), torch.zeros(0, 2)), r"y must .* shape \(\.\.\., n, d\)"),
    ],
)
def test_shape_errors_name_the_sample_and_its_expected_shape(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_f_divergence_table_cannot_be_edited_in_place():
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        F_DIVERGENCES["kl"].activation = torch.exp

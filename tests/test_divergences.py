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

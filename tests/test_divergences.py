import math

import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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

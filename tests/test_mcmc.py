"""gmlib.mcmc: Langevin moments against closed forms and quadrature, split R-hat against BDA3, mode switches."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from gmlib.mcmc import SamplingDiverged, langevin, mode_switches, r_hat


def gaussian_energy(s: float):
    """E(x) = ||x||^2 / (2 s^2): the target N(0, s^2 I)."""
    return lambda x: (x**2).sum(1) / (2 * s**2)


def variance_se(v: float, n: int) -> float:
    """The standard error of a sample variance of n normal draws with variance v: v sqrt(2 / (n - 1))."""
    return v * math.sqrt(2 / (n - 1))


# ----- Langevin on a Gaussian: ULA's O(eta) bias in closed form, MALA exact -------------------------------------


@pytest.mark.parametrize("s,eta", [(1.0, 0.5), (2.0, 1.6)])
def test_ula_has_the_closed_form_stationary_variance(s, eta):
    """x' = (1 - eta/s^2) x + sqrt(2 eta) xi has fixed point v = (1 - eta/s^2)^2 v + 2 eta, v = s^2 / (1 - eta/(2 s^2)).

    20000 independent chains from x0 = 0 (the contraction (1 - eta/s^2)^150 leaves no trace of the start): the sample
    variance of each coordinate is within 5 standard errors of v, and the exact s^2 is excluded by more than 10.
    """
    n = 20_000
    chains = langevin(torch.zeros(n, 2), energy=gaussian_energy(s), step_size=eta, steps=150)
    v = s**2 / (1 - eta / (2 * s**2))
    se = variance_se(v, n)
    variance = chains.x.double().var(0)
    assert torch.all((variance - v).abs() < 5 * se), (variance, v, se)
    assert (v - s**2) > 10 * se  # the test can tell the biased value from the exact one
    assert torch.all(chains.x.mean(0).abs() < 5 * math.sqrt(v / n))
    assert torch.equal(chains.acceptance, torch.ones(n))  # ULA accepts every move


@pytest.mark.parametrize("s,eta", [(1.0, 0.5), (2.0, 1.6)])
def test_mala_removes_the_bias_at_the_same_step(s, eta):
    """MALA leaves N(0, s^2) exactly stationary: variance s^2 within 5 s.e., ULA's value excluded by > 10 s.e."""
    n = 20_000
    chains = langevin(torch.zeros(n, 2), energy=gaussian_energy(s), step_size=eta, steps=300, metropolis=True)
    se = variance_se(s**2, n)
    variance = chains.x.double().var(0)
    assert torch.all((variance - s**2).abs() < 5 * se), (variance, s**2, se)
    ula = s**2 / (1 - eta / (2 * s**2))
    assert torch.all((variance - ula).abs() > 10 * se)
    # a fraction of proposals is rejected, and each chain's rate is a count over the steps
    assert 0 < chains.acceptance.mean() < 1
    assert torch.all((chains.acceptance >= 0) & (chains.acceptance <= 1))
    counts = chains.acceptance * 300
    assert torch.allclose(counts, counts.round(), atol=1e-3)


def test_mala_matches_the_quadrature_moments_of_a_bimodal_target():
    """MALA on 0.3 N(-1, 0.5^2) + 0.7 N(1, 0.7^2) from uniform starts on [-3, 3]: E[x], E[x^2] and P(x < 0) agree
    with scipy quadrature within 5 standard errors of 20000 independent chains (one draw each after 800 steps)."""
    weights, means, sds = (0.3, 0.7), (-1.0, 1.0), (0.5, 0.7)

    components = list(zip(weights, means, sds, strict=True))

    def energy(x):
        terms = [math.log(w) - math.log(sd) - 0.5 * ((x[:, 0] - m) / sd) ** 2 for w, m, sd in components]
        return -torch.logsumexp(torch.stack(terms, 1), 1)

    def pdf(x):
        return sum(w * stats.norm.pdf(x, m, sd) for w, m, sd in components)

    n = 20_000
    chains = langevin(torch.rand(n, 1) * 6 - 3, energy=energy, step_size=0.3, steps=800, metropolis=True)
    x = chains.x[:, 0].double()
    checks = {
        "E[x]": (x, integrate.quad(lambda t: t * pdf(t), -np.inf, np.inf)[0]),
        "E[x^2]": (x**2, integrate.quad(lambda t: t**2 * pdf(t), -np.inf, np.inf)[0]),
        "P(x<0)": ((x < 0).double(), integrate.quad(pdf, -np.inf, 0)[0]),
    }
    for name, (values, expected) in checks.items():
        se = values.std().item() / math.sqrt(n)
        assert abs(values.mean().item() - expected) < 5 * se, (name, values.mean().item(), expected, se)


def test_the_score_path_is_the_energy_path():
    """ULA with score = -grad E and with energy = E draws the same chain from the same seed (the same noise)."""
    s, x0 = 1.5, torch.randn(50, 3)
    torch.manual_seed(7)
    by_energy = langevin(x0, energy=gaussian_energy(s), step_size=0.1, steps=25, record_every=5)
    torch.manual_seed(7)
    by_score = langevin(x0, score=lambda x: -x / s**2, step_size=0.1, steps=25, record_every=5)
    assert torch.allclose(by_energy.x, by_score.x, rtol=1e-5, atol=1e-5)
    assert torch.allclose(by_energy.trace, by_score.trace, rtol=1e-5, atol=1e-5)
    # and a different score gives a different chain
    torch.manual_seed(7)
    other = langevin(x0, score=lambda x: -x, step_size=0.1, steps=25)
    assert not torch.allclose(other.x, by_score.x, atol=1e-3)


@pytest.mark.parametrize("steps,every", [(10, 1), (10, 3), (12, 4), (5, 0)])
def test_the_trace_keeps_step_zero_and_every_kth_state(steps, every):
    """trace[0] is x0 itself, then steps k, 2k, ...; trace[-1] is x when k divides steps; record_every=0 keeps none."""
    x0 = torch.randn(6, 2)
    chains = langevin(x0, energy=gaussian_energy(1.0), step_size=0.05, steps=steps, record_every=every)
    if every == 0:
        assert chains.trace is None
        return
    assert chains.trace.shape == (steps // every + 1, 6, 2)
    assert torch.equal(chains.trace[0], x0)
    assert not torch.equal(chains.trace[1], x0)
    if steps % every == 0:
        assert torch.equal(chains.trace[-1], chains.x)
    # the recorded states are those of a run that stops at the recorded step (the same noise)
    torch.manual_seed(3)
    full = langevin(x0, energy=gaussian_energy(1.0), step_size=0.05, steps=steps, record_every=1).trace
    torch.manual_seed(3)
    kept = langevin(x0, energy=gaussian_energy(1.0), step_size=0.05, steps=steps, record_every=every).trace
    assert torch.equal(kept, full[::every])


def test_langevin_touches_no_parameter_gradient():
    """The energy's input gradient comes from autograd.grad: a network's parameters get no .grad from sampling."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x0 = torch.randn(10, 2)
    langevin(x0, energy=lambda x: net(x).squeeze(-1), step_size=0.01, steps=5, metropolis=True)
    assert all(p.grad is None for p in net.parameters())
    assert not x0.requires_grad


# ----- SamplingDiverged names the step ----------------------------------------------------------------------------


def energy_that_fails_after(calls: int, bad: float):
    """x^2/2 for the first ``calls`` evaluations (step 0 is the first), then ``bad`` everywhere."""
    count = 0

    def energy(x):
        nonlocal count
        count += 1
        e = (x**2).sum(1) / 2
        return e if count <= calls else e + bad

    return energy


@pytest.mark.parametrize("metropolis", [False, True])
@pytest.mark.parametrize("bad", [math.inf, math.nan])
@pytest.mark.parametrize("calls", [0, 1, 6])
def test_a_non_finite_energy_is_reported_with_its_step(calls, bad, metropolis):
    """Evaluation j + 1 happens at step j (step 0 evaluates x0): failing after `calls` evaluations names that step."""
    energy = energy_that_fails_after(calls, bad)
    with pytest.raises(SamplingDiverged, match=rf"step {calls}$"):
        langevin(torch.zeros(4, 2), energy=energy, step_size=0.1, steps=20, metropolis=metropolis)


def test_a_non_finite_score_is_reported_with_its_step():
    count = 0

    def score(x):
        nonlocal count
        count += 1
        return -x if count <= 4 else torch.full_like(x, math.nan)

    with pytest.raises(SamplingDiverged, match=r"step 4$"):
        langevin(torch.zeros(4, 2), score=score, step_size=0.1, steps=20)


def test_an_exploding_chain_is_caught():
    """ULA on a Gaussian with eta > 2 s^2 is unstable (|1 - eta/s^2| > 1): the states overflow and sampling stops."""
    with pytest.raises(SamplingDiverged, match="step"):
        langevin(torch.ones(4, 1), energy=gaussian_energy(1.0), step_size=5.0, steps=2000)


# ----- bad input --------------------------------------------------------------------------------------------------


E = gaussian_energy(1.0)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": -0.1}, "step_size"),
        ({"step_size": math.inf}, "step_size"),
        ({"step_size": math.nan}, "step_size"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"record_every": -1}, "record_every"),
        ({"x0": torch.tensor([[0.0, math.nan]])}, "x0"),
        ({"x0": torch.tensor([[0.0, math.inf]])}, "x0"),
        ({"x0": torch.zeros(4)}, "x0"),
        ({"x0": torch.zeros(2, 3, 4)}, "x0"),
        ({"x0": [[0.0, 1.0]]}, "x0"),
        ({"energy": None}, "energy"),
        ({"score": lambda x: -x}, "energy"),
        ({"energy": None, "score": lambda x: -x, "metropolis": True}, "metropolis"),
        ({"energy": lambda x: (x**2).sum(1, keepdim=True)}, "energy"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, name):
    arguments = {"x0": torch.zeros(3, 2), "step_size": 0.1, "steps": 5, "energy": E, **kwargs}
    x0 = arguments.pop("x0")
    with pytest.raises(ValueError, match=name):
        langevin(x0, **arguments)


# ----- split R-hat ------------------------------------------------------------------------------------------------


def split_r_hat_bda3(chains: np.ndarray) -> float:
    """BDA3 eq. 11.2-11.4, written out with loops: split each of m chains (m, n) in halves of n' = n // 2 draws (the
    middle draw of an odd chain dropped), then W = mean of the sequence variances, B = n' var(sequence means),
    var+ = (n' - 1)/n' W + B/n', R-hat = sqrt(var+ / W)."""
    m, n = chains.shape
    half = n // 2
    sequences = [list(c[:half]) for c in chains] + [list(c[n - half :]) for c in chains]
    k = len(sequences)
    means = [sum(seq) / half for seq in sequences]
    grand = sum(means) / k
    between = half / (k - 1) * sum((mj - grand) ** 2 for mj in means)
    within = sum(sum((x - mj) ** 2 for x in seq) / (half - 1) for seq, mj in zip(sequences, means, strict=True)) / k
    var_plus = (half - 1) / half * within + between / half
    return math.sqrt(var_plus / within)


@pytest.mark.parametrize("m,n", [(4, 100), (3, 101), (2, 4), (5, 5), (8, 37)])
def test_r_hat_matches_bda3(m, n):
    """On chains with different means and scales (so B and W both matter), for even and odd lengths."""
    g = torch.Generator().manual_seed(m * 1000 + n)
    chains = torch.randn(m, n, generator=g, dtype=torch.float64) * torch.rand(m, 1, generator=g, dtype=torch.float64)
    chains += 0.5 * torch.randn(m, 1, generator=g, dtype=torch.float64)
    assert r_hat(chains).item() == pytest.approx(split_r_hat_bda3(chains.numpy()), rel=1e-10)


def test_r_hat_is_per_coordinate():
    """(m, n, d) -> (d,), coordinate j being the R-hat of chains[..., j]; (m, n) -> a scalar."""
    chains = torch.randn(4, 50, 3) + torch.tensor([0.0, 1.0, 2.0]) * torch.randn(4, 1, 1)
    values = r_hat(chains)
    assert values.shape == (3,)
    assert r_hat(chains[..., 0]).shape == ()
    for j in range(3):
        assert values[j].item() == pytest.approx(split_r_hat_bda3(chains[..., j].double().numpy()), rel=1e-6)


def test_r_hat_is_near_one_for_iid_chains_and_large_for_disagreeing_ones():
    """iid chains: R-hat^2 - 1 ~ (chi2_7/7 - 1)/n', far below the book's 1.01 flag at n' = 1000.

    One chain shifted by 3 sd, or chains drifting (a trend the halves' means reveal, unsplit R-hat would not), is
    flagged."""
    iid = torch.randn(4, 2000)
    assert 0.99 < r_hat(iid).item() < 1.01
    shifted = iid + torch.tensor([0.0, 0.0, 0.0, 3.0])[:, None]
    assert r_hat(shifted).item() > 1.5
    drifting = torch.linspace(0, 1, 2000).expand(4, 2000) + 0.1 * torch.randn(4, 2000)
    assert r_hat(drifting).item() > 1.5
    chain_means = drifting.mean(1)  # unsplit: every chain has the same mean, so only the split sees the drift
    assert chain_means.std() < 0.01


@pytest.mark.parametrize(
    "chains,match",
    [
        (torch.randn(4, 3), "4 draws"),
        (torch.randn(10), "shape"),
        (torch.randn(2, 10, 2, 2), "shape"),
        (torch.tensor([[0.0, 1.0, 2.0, math.nan, 1.0]] * 2), "finite"),
        (torch.ones(3, 10), "constant"),
    ],
)
def test_r_hat_refuses_bad_chains(chains, match):
    with pytest.raises(ValueError, match=match):
        r_hat(chains)


# ----- mode switches ----------------------------------------------------------------------------------------------


def switches_by_hand(column: list[float], threshold: float) -> int:
    """Walk one chain: remember the last well it was seen in, count a switch when it is next seen in the other."""
    last, count = None, 0
    for x in column:
        well = "right" if x > threshold else "left" if x < -threshold else None
        if well is not None:
            count += last is not None and well != last
            last = well
    return count


@pytest.mark.parametrize(
    "column,expected",
    [
        ([-2.0, 0.0, 2.0, 0.5, -0.5, 2.0, -2.0], 2),  # left -> right, (right), right -> left
        ([0.5, -0.5, 0.9, -0.9, 0.0], 0),  # jitter inside the band never counts
        ([2.0, 0.5, -0.5, 0.5, -0.9, 2.0], 0),  # jitter around 0 after a well is not a switch
        ([1.0, -1.0, 1.0, -1.0], 0),  # exactly at the threshold is still the band
        ([1.01, -1.01, 1.01, -1.01], 3),
        ([0.0, 0.0, 3.0, 3.0, 3.0], 0),  # entering the first well is not a switch
        ([-3.0], 0),
    ],
)
def test_mode_switches_count_hand_built_traces(column, expected):
    trace = torch.tensor(column)[:, None]
    assert mode_switches(trace, threshold=1.0).tolist() == [expected]
    assert switches_by_hand(column, 1.0) == expected


def test_mode_switches_count_each_chain_of_a_batch():
    """Random walks (steps, batch): every chain's count equals the hand count, and the counts differ between chains."""
    trace = torch.randn(300, 20).cumsum(0) * 0.3
    counts = mode_switches(trace, threshold=0.5)
    assert counts.shape == (20,) and counts.dtype == torch.long
    assert counts.tolist() == [switches_by_hand(trace[:, b].tolist(), 0.5) for b in range(20)]
    assert len(set(counts.tolist())) > 1


@pytest.mark.parametrize(
    "trace,threshold,match",
    [
        (torch.randn(10), 1.0, "trace"),
        (torch.randn(10, 2, 1), 1.0, "trace"),
        (torch.tensor([[0.0], [math.nan]]), 1.0, "finite"),
        (torch.randn(10, 2), 0.0, "threshold"),
        (torch.randn(10, 2), -1.0, "threshold"),
    ],
)
def test_mode_switches_refuse_bad_input(trace, threshold, match):
    with pytest.raises(ValueError, match=match):
        mode_switches(trace, threshold=threshold)

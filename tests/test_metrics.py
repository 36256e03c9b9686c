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


@pytest.mark.parametrize("bad", [torch.zeros(1), torch.zeros(2, 2), torch.tensor([0.0, math.nan])])
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

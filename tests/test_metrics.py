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

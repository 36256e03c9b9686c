import pytest
import torch

from gmlib.metrics import grid_2d
from gmlib.models import GaussianMixture


def test_log_prob_matches_an_explicit_sum_of_gaussians():
    model = GaussianMixture(dim=2, components=3)
    with torch.no_grad():
        model.logits.copy_(torch.tensor([0.0, 1.0, -1.0]))
        model.raw_tril[1, 1, 0] = 0.7
    x = torch.randn(10, 2)
    weights = torch.softmax(model.logits, 0)
    tril = model.scale_tril()
    by_hand = sum(
        weights[k] * torch.distributions.MultivariateNormal(model.means[k], scale_tril=tril[k]).log_prob(x).exp()
        for k in range(3)
    )
    assert torch.allclose(model.log_prob(x).exp(), by_hand.detach(), rtol=1e-5)


def test_density_integrates_to_one():
    model = GaussianMixture(dim=2, components=4, scale=0.5)
    points, area = grid_2d(lim=6.0, n=300)
    with torch.no_grad():
        assert model.log_prob(points.float()).exp().sum().item() * area == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"dim": 0}, "dim"), ({"components": 0}, "components"), ({"components": 2, "means": torch.zeros(3, 2)}, "means")],
)
def test_bad_construction_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kwargs)


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 2\)"):
        GaussianMixture(dim=2).log_prob(torch.zeros(4, 3))

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


def test_empty_batch_and_lists_are_refused_by_name():
    with pytest.raises(ValueError, match="x must hold at least one sample"):
        GaussianMixture(dim=2).log_prob(torch.zeros(0, 2))
    with pytest.raises(ValueError, match=r"x must be a torch\.Tensor, got list"):
        GaussianMixture(dim=2).loss([[0.0, 1.0]])


def test_scale_tril_is_the_strict_lower_part_plus_a_softplus_diagonal():
    model = GaussianMixture(dim=3, components=2)
    with torch.no_grad():
        model.raw_tril.copy_(torch.randn(2, 3, 3))  # upper entries too: they must not enter
    raw = model.raw_tril.detach().double()
    expected = torch.zeros(2, 3, 3, dtype=torch.float64)
    for k in range(2):
        for i in range(3):
            for j in range(i):
                expected[k, i, j] = raw[k, i, j]
            expected[k, i, i] = torch.log1p(torch.exp(raw[k, i, i])) + 1e-5  # softplus, floored by 1e-5
    assert torch.allclose(model.scale_tril().double(), expected, atol=1e-6)


def test_loss_is_the_mean_negative_log_likelihood_of_the_mixture():
    from scipy.stats import multivariate_normal

    model = GaussianMixture(dim=2, components=2)
    with torch.no_grad():
        model.logits.copy_(torch.tensor([0.3, -0.4]))
        model.raw_tril[1, 1, 0] = 0.6
    x = torch.randn(20, 2)
    weights = torch.softmax(model.logits, 0).tolist()
    tril = model.scale_tril().detach().double().numpy()
    means = model.means.detach().double().numpy()
    points = x.double().numpy()
    density = sum(w * multivariate_normal(m, t @ t.T).pdf(points) for w, m, t in zip(weights, means, tril, strict=True))
    assert model.loss(x).item() == pytest.approx(-float(torch.from_numpy(density).log().mean()), rel=1e-5)


def test_initial_means_and_scales_follow_scale():
    model = GaussianMixture(dim=2, components=4000, scale=3.0)
    assert model.means.std().item() == pytest.approx(3.0, rel=0.05)  # means ~ scale * N(0, I): 8000 draws
    assert torch.allclose(model.scale_tril().diagonal(dim1=-2, dim2=-1), torch.full((4000, 2), 3.0 + 1e-5))
    smallest = GaussianMixture(dim=1, components=1)
    assert smallest.log_prob(torch.zeros(3, 1)).shape == (3,)

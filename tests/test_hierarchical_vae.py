"""gmlib.models.hierarchical_vae: the two-layer bound against its formula and the exact likelihood on a grid."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal

from gmlib.models import HierarchicalVAE


def digits_like(n: int = 8) -> torch.Tensor:
    return torch.randint(0, 17, (n, 64))


def gaussian(h: torch.Tensor) -> Independent:
    mu, log_var = h.chunk(2, dim=-1)
    return Independent(Normal(mu, (0.5 * log_var).exp()), 1)


def test_elbo_is_the_two_layer_formula_at_the_same_draws():
    model = HierarchicalVAE(latent_dim=3, top_dim=2, hidden=16, top_hidden=8)
    x = digits_like()
    torch.manual_seed(3)
    elbo = model.elbo(x)
    torch.manual_seed(3)  # the same draws, by hand from the raw networks (eq-vae-hierarchical-elbo)
    q1 = gaussian(model.encoder(x.float() / 16))
    z1 = q1.rsample()
    q2 = gaussian(model.top_encoder(z1))
    z2 = q2.rsample()
    log_px = Independent(Categorical(logits=model.decoder(z1).reshape(len(x), 64, 17)), 1).log_prob(x)
    log_p1 = gaussian(model.top_decoder(z2)).log_prob(z1)
    log_p2 = Normal(0.0, 1.0).log_prob(z2).sum(-1)
    expected = log_px + log_p1 + log_p2 - q1.log_prob(z1) - q2.log_prob(z2)
    assert torch.allclose(elbo, expected, atol=1e-4)


def test_layer_rates_add_up_to_the_kl_term_and_samples_have_the_event_shape():
    model = HierarchicalVAE(latent_dim=3, top_dim=2, hidden=16, top_hidden=8)
    x = digits_like(64)
    lower, upper = model.layer_rates(x, draws=4000)
    kl = torch.stack([model.kl(x) for _ in range(400)]).mean(0)
    assert torch.allclose(lower + upper, kl, atol=0.3)
    assert model.sample(5).shape == (5, 64)
    with pytest.raises(NotImplementedError, match="closed form"):
        model.prior()


def test_iwae_reaches_the_exact_log_likelihood_on_a_grid():
    """1D z1 and 1D z2: log p(x) = log double integral p(x|z1) p(z1|z2) p(z2) by the midpoint rule."""
    torch.manual_seed(0)
    model = HierarchicalVAE(data_dim=4, latent_dim=1, top_dim=1, hidden=8, top_hidden=8, levels=3).double()
    x = torch.tensor([[0, 1, 2, 1]])
    n, lim = 1200, 9.0
    h = 2 * lim / n
    axis = torch.linspace(-lim + h / 2, lim - h / 2, n, dtype=torch.float64)
    with torch.no_grad():
        log_px_z1 = model.decode(axis[:, None]).log_prob(x.expand(n, 4))  # (n,) over z1
        p1 = model.conditional_prior(axis[:, None])  # batch over z2
        log_p1 = p1.log_prob(axis[:, None, None])  # (n z1, n z2)
        log_joint = log_px_z1[:, None] + log_p1 + Normal(0.0, 1.0).log_prob(axis)[None, :]
        exact = (torch.logsumexp(log_joint.flatten(), 0) + 2 * math.log(h)).item()
        draws = {k: model.iwae(x.repeat(m, 1), k) for k, m in ((1, 4000), (5000, 20))}
    elbo_mean = draws[1].mean().item()
    assert elbo_mean < exact - 4 * draws[1].std().item() / math.sqrt(4000)
    assert draws[5000].mean().item() == pytest.approx(exact, abs=0.02)

"""gmlib.models.flow_vae: the planar-flow posterior against the change of variables, quadrature and its contract."""

import pytest
import torch

from gmlib.models import VAE, FlowVAE


def test_posterior_log_density_is_the_change_of_variables_of_the_gaussian():
    """log q_K(z_K) = log q_0(z_0) - sum_k log|1 + u_k^T psi_k(z_{k-1})|, by hand, and by inverting z_K (no cache)."""
    torch.manual_seed(0)
    model = FlowVAE(latent_dim=3, hidden=16, flow_length=4).double()
    x = torch.randint(0, 17, (5, 64))
    q = model.encode(x)
    z0 = q.base_dist.rsample()
    z, by_hand = z0, q.base_dist.log_prob(z0)
    for t in q.transforms:
        wu = (t.w * t.u).sum(-1)
        h = torch.tanh((z * t.w).sum(-1) + t.b)
        by_hand = by_hand - torch.log(torch.abs(1 + (1 - h**2) * wu))
        z = z + h[:, None] * t.u
    inverted = q.log_prob(z.clone())  # a new tensor: the layers are inverted by their Newton solve
    assert torch.allclose(inverted, by_hand, atol=1e-9)
    z_draw = q.rsample()
    assert torch.allclose(q.log_prob(z_draw), q.log_prob(z_draw.clone()), atol=1e-9)


def test_posterior_is_a_normalised_density():
    torch.manual_seed(1)
    model = FlowVAE(latent_dim=2, hidden=16, flow_length=6).double()
    with torch.no_grad():  # large layer parameters: a strongly non-Gaussian q_K
        model.encoder[-1].weight.mul_(4.0)
    q = model.encode(torch.randint(0, 17, (1, 64)))
    grid = torch.linspace(-10, 10, 801, dtype=torch.float64)
    zz = torch.cartesian_prod(grid, grid)[:, None, :]  # (n, 1, 2): one image
    with torch.no_grad():
        mass = q.log_prob(zz).exp().sum() * (grid[1] - grid[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=2e-3)


def test_elbo_is_reconstruction_minus_monte_carlo_kl_and_below_iwae():
    torch.manual_seed(2)
    model = FlowVAE(latent_dim=2, hidden=16, flow_length=3)
    x = torch.randint(0, 17, (6, 64))
    with torch.no_grad():
        q = model.encode(x)
        z = q.rsample()
        kl = q.log_prob(z) - model.prior().log_prob(z)
        assert torch.allclose(model._kl(q, z), kl)
        elbos = torch.stack([model.elbo(x) for _ in range(300)]).mean(0)
        iwae = torch.stack([model.iwae(x, 500) for _ in range(3)]).mean(0)
    assert (elbos < iwae).all()


def test_flow_of_length_k_adds_k_layers_to_the_encoder_output():
    plain, flow = VAE(latent_dim=3, hidden=8), FlowVAE(latent_dim=3, hidden=8, flow_length=5)
    assert flow.encoder[-1].out_features - plain.encoder[-1].out_features == 5 * (2 * 3 + 1)
    assert len(flow.encode(torch.randint(0, 17, (2, 64))).transforms) == 5


def test_extreme_encoder_outputs_still_give_invertible_layers():
    model = FlowVAE(latent_dim=2, hidden=8, flow_length=2)
    with torch.no_grad():
        model.encoder[-1].bias.fill_(-30.0)
        model.encoder[-1].bias[4 + 2 : 4 + 4].fill_(30.0)  # raw u_1 against w_1: w^T u = -1800
    q = model.encode(torch.randint(0, 17, (3, 64)))
    for t in q.transforms:
        assert ((t.w * t.u).sum(-1) >= -1 - 1e-6).all()
    assert torch.isfinite(q.log_prob(q.rsample())).all()


@pytest.mark.parametrize("length", [0, -1, 2.5])
def test_bad_flow_length_is_refused(length):
    with pytest.raises(ValueError, match="flow_length"):
        FlowVAE(flow_length=length)


def test_kl_is_the_monte_carlo_term_at_its_own_draw():
    """The Gaussian closed form of VAE.kl would be wrong for q_K: FlowVAE.kl is log q_K(z) - log p(z) at z ~ q_K."""
    model = FlowVAE(latent_dim=2, hidden=8, flow_length=2).double()
    x = torch.randint(0, 17, (4, 64))
    torch.manual_seed(3)
    kl = model.kl(x)
    torch.manual_seed(3)
    q = model.encode(x)
    z = q.rsample()
    assert torch.allclose(kl, q.log_prob(z) - model.prior().log_prob(z))
    assert not torch.allclose(kl, torch.distributions.kl_divergence(q.base_dist, model.prior()), atol=1e-3)


def test_identity_layers_leave_the_gaussian_unchanged():
    model = FlowVAE(latent_dim=2, hidden=8, flow_length=4).double()
    x = torch.randint(0, 17, (3, 64))
    gaussian = model.encode(x).base_dist
    base_params = torch.cat([gaussian.base_dist.loc, 2 * gaussian.base_dist.scale.log()], 1)
    q = model.posterior(torch.cat([base_params, model.identity_layers(3)], 1))
    z0 = q.base_dist.sample((7,))
    z = z0
    for t in q.transforms:
        z = t(z)
    assert torch.allclose(z, z0, atol=1e-12)
    assert torch.allclose(q.log_prob(z.clone()), q.base_dist.log_prob(z0), atol=1e-9)
    assert model.identity_layers(1).shape == (1, 4 * 5)
    with pytest.raises(ValueError, match="batch"):
        model.identity_layers(0)
    assert len(FlowVAE(latent_dim=2, hidden=8, flow_length=1).encode(x).transforms) == 1

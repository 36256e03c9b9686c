"""gmlib.models.vae and gmlib.models.discrete_vae: the ELBO terms against independent code and exact values."""

import math

import pytest
import torch
from scipy import integrate
from torch.distributions import Independent, Normal, kl_divergence

import gmlib
from gmlib.models import VAE, DiscreteVAE


def digits_like(n: int = 32) -> torch.Tensor:
    return torch.randint(0, 17, (n, 64))


def test_gaussian_kl_term_matches_torch_and_the_closed_form():
    model = VAE(latent_dim=3, hidden=16)
    x = digits_like()
    q = model.encode(x)
    mu, var = q.base_dist.loc, q.base_dist.scale**2
    closed_form = 0.5 * (mu**2 + var - var.log() - 1).sum(-1)  # eq. vae-gaussian-kl
    oracle = kl_divergence(Independent(Normal(mu, var.sqrt()), 1), Independent(Normal(0.0, torch.ones_like(mu)), 1))
    assert torch.allclose(model.kl(x), closed_form, atol=1e-5)
    assert torch.allclose(model.kl(x), oracle, atol=1e-5)


def test_elbo_is_reconstruction_minus_kl_and_below_iwae():
    model = VAE(latent_dim=2, hidden=32)
    x = digits_like(8)
    torch.manual_seed(1)
    q = model.encode(x)
    z = q.rsample()
    torch.manual_seed(1)
    assert torch.allclose(model.elbo(x), model.reconstruction(x, z) - model.kl(x), atol=1e-4)
    # E[IWAE_1] = ELBO (within 4 standard errors of the two means); E[IWAE_k] increases with k
    elbos, iwae_1 = (torch.stack([f(x) for _ in range(400)]) for f in (model.elbo, lambda v: model.iwae(v, 1)))
    se = ((elbos.var(0) + iwae_1.var(0)) / 400).sqrt()
    assert ((elbos.mean(0) - iwae_1.mean(0)).abs() < 4 * se).all()
    iwae = {k: torch.stack([model.iwae(x, k) for _ in range(20)]).mean() for k in (10, 1000)}
    assert elbos.mean() < iwae[10] < iwae[1000]


def test_iwae_reaches_the_exact_log_likelihood_by_quadrature():
    """With a 1D latent, log p(x) = log integral p(x|z) p(z) dz by scipy quadrature; IWAE_k approaches it from below."""
    model = VAE(data_dim=4, latent_dim=1, hidden=8, levels=3).double()
    x = torch.tensor([[0, 1, 2, 1]])
    with torch.no_grad():  # a decoder that depends strongly on z: a sharp posterior, far from q
        model.decoder[0].weight.mul_(8.0)

    def joint(z: float) -> float:
        with torch.no_grad():
            zt = torch.tensor([[z]], dtype=torch.float64)
            return math.exp(model.decode(zt).log_prob(x).item() + Normal(0.0, 1.0).log_prob(zt).item())

    exact = math.log(integrate.quad(joint, -10, 10, limit=200, epsabs=0, epsrel=1e-9)[0])
    with torch.no_grad():
        draws = {k: model.iwae(x.repeat(n, 1), k) for k, n in ((1, 4000), (10, 4000), (10_000, 20))}
    mean = {k: d.mean().item() for k, d in draws.items()}
    se = {k: d.std().item() / math.sqrt(len(d)) for k, d in draws.items()}
    # the mean IWAE_k rises with k and stays below log p(x), beyond four standard errors
    assert mean[1] + 4 * (se[1] + se[10]) < mean[10] < exact - 4 * se[10]
    assert mean[10_000] == pytest.approx(exact, abs=0.01)


def test_reparameterised_samples_carry_the_encoder_gradient():
    model = VAE(latent_dim=2, hidden=16)
    x = digits_like(4)
    z = model._draw(model.encode(x), None, relaxed=False)
    z.sum().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_mixture_prior_is_a_normalised_density_with_learnable_weights():
    model = VAE(latent_dim=2, hidden=16, prior="mixture", components=3)
    grid = torch.linspace(-8, 8, 401)
    zz = torch.cartesian_prod(grid, grid)
    mass = model.prior().log_prob(zz).exp().sum() * (grid[1] - grid[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-3)
    model.loss(digits_like()).backward()
    assert model.prior_logits.grad.abs().sum() > 0


def test_beta_weighs_only_the_kl_in_the_loss():
    x = digits_like()
    losses = {}
    for beta in (1.0, 4.0):
        gmlib.seed_everything(0)
        model = VAE(latent_dim=2, hidden=16, beta=beta)
        gmlib.seed_everything(1)
        losses[beta] = model.loss(x)
        gmlib.seed_everything(1)
        q = model.encode(x)
        rec, kl = model.reconstruction(x, q.rsample()), model.kl(x)
        assert losses[beta].item() == pytest.approx(-(rec - beta * kl).mean().item(), rel=1e-5)


@pytest.mark.parametrize("decoder", ["categorical", "bernoulli", "gaussian"])
def test_each_decoder_scores_and_samples_in_its_support(decoder):
    model = VAE(latent_dim=2, hidden=16, decoder=decoder)
    x = digits_like() if decoder == "categorical" else digits_like() / 16
    assert model.elbo(x).shape == (32,) and torch.isfinite(model.elbo(x)).all()
    samples = model.sample(7)
    assert samples.shape == (7, 64)
    if decoder == "categorical":
        assert samples.min() >= 0 and samples.max() <= 16 and samples.dtype == torch.long
    if decoder == "bernoulli":
        assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert model.decoder_mean(torch.zeros(3, 2)).shape == (3, 64)


def test_gaussian_decoder_is_l2_up_to_its_fixed_variance():
    model = VAE(latent_dim=2, hidden=16, decoder="gaussian", gaussian_std=0.25)
    x, z = torch.rand(5, 64), torch.randn(5, 2)
    mean = model.decoder_mean(z)
    l2 = ((x - mean) ** 2).sum(-1) / (2 * 0.25**2) + 64 * math.log(0.25 * math.sqrt(2 * math.pi))
    assert torch.allclose(model.reconstruction(x, z), -l2, atol=1e-3)


@pytest.mark.parametrize(
    ("decoder", "x", "message"),
    [
        ("categorical", torch.full((2, 64), 17), r"0\.\.16"),
        ("categorical", torch.full((2, 64), -1), r"0\.\.16"),
        ("categorical", torch.full((2, 64), 2.5), "integer"),
        ("bernoulli", torch.full((2, 64), 1.5), r"\[0, 1\]"),
        ("gaussian", torch.full((2, 64), float("inf")), "finite"),
        ("categorical", torch.zeros(2, 63), r"shape \(\*, 64\)"),
    ],
)
def test_input_outside_the_decoder_support_is_refused(decoder, x, message):
    model = VAE(latent_dim=2, hidden=8, decoder=decoder)
    with pytest.raises(ValueError, match=message):
        model.loss(x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decoder": "poisson"}, "decoder"),
        ({"prior": "vamp"}, "prior"),
        ({"beta": 0.0}, "beta"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"gaussian_std": -1.0}, "gaussian_std"),
    ],
)
def test_bad_construction_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(**kwargs)


def test_discrete_vae_kl_is_exact_and_the_relaxation_tends_to_one_hot():
    model = DiscreteVAE(groups=3, categories=4, hidden=16, temperature=0.05)
    x = digits_like(6)
    q = model.encode(x)
    probs = q.base_dist.probs  # (6, 3, 4)
    by_hand = (probs * (probs * 4).log()).sum((-1, -2))  # KL to the uniform prior, sum over groups
    assert torch.allclose(model.kl(x), by_hand, atol=1e-5)
    relaxed = model._draw(q, 200, relaxed=True)
    assert relaxed.shape == (200, 6, 3, 4)
    assert torch.allclose(relaxed.sum(-1), torch.ones(200, 6, 3), atol=1e-5)
    assert relaxed.max(-1).values.mean() > 0.95  # tau -> 0: nearly one-hot
    hard = model._draw(q, None, relaxed=False)
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert model.sample(5).shape == (5, 64)
    iwae = torch.stack([model.iwae(x, 50) for _ in range(10)]).mean(0)
    elbo = torch.stack([model.elbo(x) for _ in range(500)]).mean(0)
    assert (iwae > elbo).all()


def test_discrete_vae_bad_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        DiscreteVAE(temperature=0.0)


def test_low_rank_level_logits_give_a_categorical_per_pixel_and_need_the_categorical_decoder():
    model = VAE(latent_dim=2, hidden=16, level_rank=3)
    p = model.decode(torch.randn(5, 2)).base_dist
    assert p.probs.shape == (5, 64, 17)
    assert torch.allclose(p.probs.sum(-1), torch.ones(5, 64))
    full = VAE(latent_dim=2, hidden=16)
    assert sum(w.numel() for w in model.parameters()) < sum(w.numel() for w in full.parameters())
    with pytest.raises(ValueError, match="level_rank"):
        VAE(decoder="gaussian", level_rank=3)

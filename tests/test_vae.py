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


# --- pinned against independent references (issue 17) ------------------------------------------------------


def _discrete_vae_by_enumeration(model, x):
    """Exact ELBO(x) and log p(x) of a DiscreteVAE by summing over all categories^groups latent values.

    ELBO = sum_z q(z|x) [log p(x|z) + log p(z) - log q(z|x)], log p(x) = log sum_z p(z) p(x|z), with
    q(z|x) = prod_g softmax(logits_g)[c_g] and the uniform p(z) = categories^-groups, written out here.
    """
    import itertools

    g, c = model.groups, model.categories
    codes = list(itertools.product(range(c), repeat=g))
    z = torch.zeros(len(codes), 1, g, c, dtype=torch.float64)  # (configurations, 1, groups, categories)
    for k, code in enumerate(codes):
        z[k, 0, torch.arange(g), torch.tensor(code)] = 1.0
    with torch.no_grad():
        log_softmax = model.encoder(x.double() / (model.levels - 1)).unflatten(-1, (g, c)).log_softmax(-1)
        log_q = torch.stack([log_softmax[:, torch.arange(g), torch.tensor(code)].sum(-1) for code in codes])
        log_lik = model.decode(z).log_prob(x)  # (configurations, batch)
    log_joint = log_lik - g * math.log(c)
    elbo = (log_q.exp() * (log_joint - log_q)).sum(0)
    return elbo, torch.logsumexp(log_joint, 0)


def _sharp_discrete_vae():
    model = DiscreteVAE(data_dim=6, groups=2, categories=3, hidden=16, levels=3, temperature=0.5).double()
    with torch.no_grad():  # a decoder that depends strongly on z, so a relaxed z decodes very differently
        model.decoder[-1].weight.mul_(6.0)
    return model


def test_discrete_vae_elbo_is_the_exact_bound_of_the_discrete_model():
    model = _sharp_discrete_vae()
    x = torch.randint(0, 3, (4, 6))
    exact_elbo, log_px = _discrete_vae_by_enumeration(model, x)
    assert (exact_elbo <= log_px).all()
    draws = torch.stack([model.elbo(x) for _ in range(3000)])  # (draws, batch): one-sample estimates
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - exact_elbo).abs() < 4 * se).all(), (draws.mean(0), exact_elbo, se)


def test_discrete_vae_iwae_tends_to_the_exact_log_likelihood():
    model = _sharp_discrete_vae()
    x = torch.randint(0, 3, (4, 6))
    _, log_px = _discrete_vae_by_enumeration(model, x)
    k = 20_000
    # the weights w = p(x, z) / q(z|x) have mean p(x) under q and relative variance rho = Var w / p(x)^2,
    # computed exactly here; log of the mean of k of them is biased by about -rho / (2k), with sd sqrt(rho / k)
    import itertools

    g, c = model.groups, model.categories
    with torch.no_grad():
        log_softmax = model.encoder(x.double() / (model.levels - 1)).unflatten(-1, (g, c)).log_softmax(-1)
    rho = torch.zeros(len(x), dtype=torch.float64)
    for code in itertools.product(range(c), repeat=g):
        z = torch.zeros(1, g, c, dtype=torch.float64)
        z[0, torch.arange(g), torch.tensor(code)] = 1.0
        log_q = log_softmax[:, torch.arange(g), torch.tensor(code)].sum(-1)
        with torch.no_grad():
            log_w = model.decode(z).log_prob(x) - g * math.log(c) - log_q
        rho += log_q.exp() * ((log_w - log_px).exp() - 1) ** 2
    iwae = model.iwae(x, k)
    assert (iwae - log_px).abs().max() < (rho / (2 * k) + 5 * (rho / k).sqrt()).max(), (iwae - log_px, rho)


def test_discrete_vae_scores_hard_one_hot_latents_and_trains_on_relaxed_ones():
    model = _sharp_discrete_vae()
    x = torch.randint(0, 3, (8, 6))
    seen = []
    model.decoder.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().clone()))

    def one_hot(z):  # (*, groups * categories), each group's block a one-hot vector
        blocks = z.unflatten(-1, (model.groups, model.categories))
        return bool(((blocks == 0) | (blocks == 1)).all() and (blocks.sum(-1) == 1).all())

    for bound in (model.elbo, lambda v: model.iwae(v, 5)):
        seen.clear()
        bound(x)
        assert seen and all(one_hot(z) for z in seen)
    seen.clear()
    model.loss(x)
    assert seen and not any(one_hot(z) for z in seen)  # the Gumbel-softmax relaxation, differentiable in the logits


@pytest.mark.parametrize("call", ["loss", "elbo", "iwae", "kl"])
def test_an_empty_batch_is_refused_by_name(call):
    model = VAE(latent_dim=2, hidden=8)
    x = torch.zeros(0, 64, dtype=torch.long)
    with pytest.raises(ValueError, match="x must hold at least one sample"):
        model.iwae(x, 4) if call == "iwae" else getattr(model, call)(x)


def test_a_list_for_a_batch_is_refused_by_name():
    with pytest.raises(ValueError, match=r"x must be a torch\.Tensor, got list"):
        VAE(latent_dim=2, hidden=8).loss([[0] * 64])


def test_learned_std_decoder_is_a_normal_per_pixel_above_its_floor():
    """gaussian_std=None: the decoder's 2 * 64 outputs are (mean, raw std) per pixel, std = floor + softplus(raw)."""
    model = VAE(latent_dim=2, hidden=16, decoder="gaussian", gaussian_std=None, std_floor=0.05)
    x, z = torch.rand(5, 64), torch.randn(5, 2)
    out = model.decoder(z).reshape(5, 64, 2)
    std = 0.05 + torch.nn.functional.softplus(out[..., 1])
    expected = Normal(out[..., 0], std).log_prob(x).sum(-1)
    assert torch.allclose(model.reconstruction(x, z), expected, atol=1e-4)
    with torch.no_grad():
        model.decoder[-1].bias[1::2] = -50.0  # raw std -> -inf: the floor holds
    assert torch.allclose(model.decode(z).base_dist.scale, torch.full((5, 64), 0.05))
    assert torch.allclose(model.decoder_mean(z), out[..., 0])
    with pytest.raises(ValueError, match="std_floor"):
        VAE(decoder="gaussian", gaussian_std=None, std_floor=0.0)


def test_the_smallest_discrete_latent_is_one_binary_group():
    model = DiscreteVAE(data_dim=6, groups=1, categories=2, hidden=8, levels=3)
    assert model.elbo(torch.randint(0, 3, (5, 6))).shape == (5,)
    for kwargs, message in (({"groups": 0}, "groups"), ({"categories": 1}, "categories")):
        with pytest.raises(ValueError, match=message):
            DiscreteVAE(**kwargs)


def test_low_rank_level_logits_are_h_times_the_profiles_plus_the_bias():
    from gmlib.models.vae import LevelLogits

    layer = LevelLogits(pixels=3, levels=5, rank=2)
    with torch.no_grad():
        layer.bias.copy_(torch.randn(3, 5))
    h = torch.randn(4, 7, 3 * 2)  # (k, batch, pixels * rank): IWAE's extra sample axis
    expected = torch.einsum("kbpr,rl->kbpl", h.reshape(4, 7, 3, 2), layer.profiles) + layer.bias
    assert torch.allclose(layer(h), expected.reshape(4, 7, 15), atol=1e-6)
    wide = LevelLogits(pixels=1, levels=64, rank=64)
    assert wide.profiles.std().item() == pytest.approx(1 / 8, rel=0.1)  # N(0, 1/rank) profiles: 4096 draws


def test_the_smallest_vae_and_its_bad_dropout():
    model = VAE(data_dim=1, latent_dim=1, hidden=1, levels=2, components=1, prior="mixture", level_rank=1)
    assert model.elbo(torch.tensor([[0], [1]])).shape == (2,)
    for dropout in ("0.1", 1.5, -0.1):
        with pytest.raises(ValueError, match="dropout"):
            VAE(dropout=dropout)
    assert VAE(hidden=4, dropout=0.0).loss(digits_like(2)).shape == ()


def test_each_decoder_likelihood_is_its_textbook_formula():
    z = torch.randn(5, 2)
    x_levels, x_gray = digits_like(5), digits_like(5) / 16
    categorical = VAE(latent_dim=2, hidden=16)
    logits = categorical.decoder(z).reshape(5, 64, 17).log_softmax(-1)
    by_hand = logits.gather(-1, x_levels[..., None])[..., 0].sum(-1)  # sum over pixels of log pi_{x_p}
    assert torch.allclose(categorical.reconstruction(x_levels, z), by_hand, atol=1e-5)
    assert torch.allclose(categorical.reconstruction(x_levels.double(), z), by_hand, atol=1e-5)  # floats of levels
    mean_by_hand = (logits.exp() * torch.arange(17.0)).sum(-1)  # E[x_p | z] = sum_l l pi_l
    assert torch.allclose(categorical.decoder_mean(z), mean_by_hand, atol=1e-4)
    bernoulli = VAE(latent_dim=2, hidden=16, decoder="bernoulli")
    bce = torch.nn.functional.binary_cross_entropy_with_logits(bernoulli.decoder(z), x_gray, reduction="none")
    assert bernoulli.reconstruction(x_gray, z).shape == (5,)
    assert torch.allclose(bernoulli.reconstruction(x_gray, z), -bce.sum(-1), atol=1e-4)  # the note's -BCE
    assert torch.allclose(bernoulli.decoder_mean(z), torch.sigmoid(bernoulli.decoder(z)), atol=1e-6)


def test_mixture_prior_density_and_its_monte_carlo_kl():
    from scipy.stats import norm

    model = VAE(latent_dim=2, hidden=16, prior="mixture", components=3)
    with torch.no_grad():
        model.prior_logits.copy_(torch.tensor([0.5, -0.3, 0.0]))
        model.prior_raw_std.copy_(torch.randn(3, 2) - 3)  # small stds: the 1e-4 floor matters
    weights = torch.softmax(model.prior_logits, 0).detach().double().numpy()
    means = model.prior_means.detach().double().numpy()
    stds = torch.log1p(torch.exp(model.prior_raw_std.detach().double())).numpy() + 1e-4
    z = torch.randn(6, 2, dtype=torch.float64) * 0.1 + torch.from_numpy(means[0])
    density = sum(weights[k] * norm(means[k], stds[k]).pdf(z.numpy()).prod(-1) for k in range(3))
    assert torch.allclose(model.prior().log_prob(z.float()).double(), torch.from_numpy(density).log(), rtol=1e-4)
    # KL(q || p) for the mixture prior: the one-sample estimate log q(z|x) - log p(z), at z drawn or given
    x = digits_like(6)
    q = model.encode(x)
    z = q.sample()
    log_q = torch.distributions.Normal(q.base_dist.loc, q.base_dist.scale).log_prob(z).sum(-1)
    assert torch.allclose(model.kl(x, z=z), log_q - model.prior().log_prob(z), atol=1e-4)
    assert model.kl(x).shape == (6,)


def test_a_single_sample_can_be_drawn():
    assert VAE(latent_dim=2, hidden=8).sample(1).shape == (1, 64)


def test_the_encoder_sees_levels_scaled_to_the_unit_interval():
    model = VAE(latent_dim=2, hidden=8)
    x = torch.tensor([[0] * 63 + [16], list(range(17)) * 3 + [8] * 13])
    assert torch.equal(model._features(x), x.float() / 16)
    gaussian = VAE(latent_dim=2, hidden=8, decoder="gaussian")
    assert torch.equal(gaussian._features(x.float()), x.float())  # real-valued data enter as they are


def test_the_encoder_outputs_a_mean_and_a_log_variance():
    model = VAE(latent_dim=3, hidden=8)
    x = digits_like(5)
    h = model.encoder(x.float() / 16)
    q = model.encode(x)
    assert torch.allclose(q.base_dist.loc, h[:, :3]) and torch.allclose(q.base_dist.scale**2, h[:, 3:].exp())


@pytest.mark.parametrize(
    "kwargs", [{}, {"decoder": "bernoulli"}, {"decoder": "gaussian"}, {"decoder": "gaussian", "gaussian_std": None}]
)
def test_reconstruction_of_a_stack_of_latents_is_one_per_latent(kwargs):
    model = VAE(latent_dim=2, hidden=8, **kwargs)
    x = digits_like(3) if not kwargs else digits_like(3) / 16
    z = torch.randn(4, 3, 2)  # (k, batch, latent), as IWAE draws them
    stacked = model.reconstruction(x, z)
    assert stacked.shape == (4, 3)
    assert torch.allclose(stacked, torch.stack([model.reconstruction(x, z[i]) for i in range(4)]), atol=1e-5)


def test_posterior_from_parameters_is_what_encode_builds():
    model = VAE(latent_dim=3, hidden=16)
    x = digits_like(5)
    params = model.encoder(model._features(x))
    q, q_encoded = model.posterior(params), model.encode(x)
    assert torch.equal(q.base_dist.loc, q_encoded.base_dist.loc)
    assert torch.equal(q.base_dist.scale, q_encoded.base_dist.scale)
    with pytest.raises(ValueError, match="params"):
        model.posterior(params[:, :-1])

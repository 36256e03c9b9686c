"""gmlib.models.diffusion: the schedule against diffusers, the bound term by term, sampling, bad input."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from gmlib.data import load_digits
from gmlib.models.diffusion import (
    DDPM,
    GaussianDiffusion,
    NoiseSchedule,
    ddim_timesteps,
    discretized_gaussian_log_prob,
    gaussian_kl,
    level_posterior_logits,
    time_features,
    timestep_blocks,
)
from gmlib.train import train

T = 50


@pytest.fixture
def schedule():
    return NoiseSchedule.linear(T, beta_start=1e-3, beta_end=0.2)


class ExactNoise(torch.nn.Module):
    """E[eps | x_t] for standard normal data, sqrt(1 - abar_t) x_t: DDPM then is the exact reverse process."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, xt, t, y=None):
        return (1 - self.schedule.at("alpha_bars", t, xt)).sqrt() * xt


def randomized(model):
    """The model with a random output layer (a fresh Denoiser outputs zeros, which would make tests vacuous)."""
    torch.nn.init.normal_(model.denoiser.net[-1].weight, std=0.3)
    torch.nn.init.normal_(model.denoiser.net[-1].bias, std=0.3)
    return model


def in_float64(scheduler, schedule):
    """A diffusers scheduler computing with our float64 constants, so formulas compare to round-off.

    (diffusers holds its constants in float32, where 1 - abar_t at t = 1 keeps only ~3 digits.)
    """
    scheduler.betas, scheduler.alphas, scheduler.alphas_cumprod = schedule.betas, schedule.alphas, schedule.alpha_bars
    return scheduler


# ----- the schedule ---------------------------------------------------------------------------------------------


def test_schedule_fields_follow_their_definitions(schedule):
    betas = schedule.betas
    abar = torch.tensor([math.prod(1 - b for b in betas[: t + 1].tolist()) for t in range(T)], dtype=torch.float64)
    assert torch.allclose(schedule.alpha_bars, abar, rtol=1e-12)
    assert schedule.alpha_bars_prev[0] == 1 and torch.equal(schedule.alpha_bars_prev[1:], schedule.alpha_bars[:-1])
    expected = (1 - schedule.alpha_bars_prev) / (1 - schedule.alpha_bars) * betas
    assert torch.allclose(schedule.posterior_variances, expected, rtol=1e-12)
    assert schedule.posterior_variances[0] == 0  # given x_0, x_0 is known
    assert all(getattr(schedule, f).dtype == torch.float64 for f in schedule.__dataclass_fields__)
    assert schedule.steps == T


@pytest.mark.parametrize("kind", ["linear", "squaredcos_cap_v2"])
def test_schedule_matches_diffusers_ddpm_scheduler(kind):
    ours = NoiseSchedule.linear(1000) if kind == "linear" else NoiseSchedule.cosine(1000)
    theirs = DDPMScheduler(num_train_timesteps=1000, beta_schedule=kind, clip_sample=False)
    # diffusers holds float32 constants: they agree with ours to float32 precision
    assert torch.allclose(ours.betas.float(), theirs.betas, rtol=1e-5, atol=1e-8)
    assert torch.allclose(ours.alpha_bars.float(), theirs.alphas_cumprod, rtol=1e-4, atol=1e-8)
    # and its posterior variance, computed from our constants, is ours to round-off
    theirs = in_float64(theirs, ours)
    variances = torch.stack([theirs._get_variance(t) for t in range(1, 1000)])
    assert torch.allclose(ours.posterior_variances[1:], variances, rtol=1e-12)


@pytest.mark.parametrize("variance_type,ours", [("fixed_small", "beta_tilde"), ("fixed_large", "beta")])
def test_one_reverse_step_matches_diffusers(variance_type, ours):
    """Algorithm 2's step = diffusers' DDPMScheduler.step on the same eps and the same noise."""
    schedule = NoiseSchedule.linear(1000)
    theirs = DDPMScheduler(num_train_timesteps=1000, clip_sample=False, variance_type=variance_type)
    theirs = in_float64(theirs, schedule)
    model = DDPM(schedule=schedule, dim=6, variance=ours).double()
    xt, eps = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    for t in (1, 2, 37, 500, 1000):
        gen = torch.Generator().manual_seed(t)
        expected = theirs.step(eps, t - 1, xt, generator=gen).prev_sample
        noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
        tt = torch.full((4,), t)
        mean = schedule.reverse_mean(xt, tt, eps)
        step = mean if t == 1 else mean + model.reverse_variance(tt, xt).sqrt() * noise
        assert torch.allclose(step, expected, rtol=1e-10, atol=1e-12), t


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("count", [10, 50, 1000])
def test_ddim_matches_diffusers_ddim_scheduler(eta, count):
    schedule = NoiseSchedule.linear(1000)
    theirs = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=True)
    theirs = in_float64(theirs, schedule)
    theirs.set_timesteps(count)
    ours = ddim_timesteps(1000, count)
    assert torch.equal(ours - 1, theirs.timesteps.long())
    xt, eps, noise = (torch.randn(3, 5, dtype=torch.float64) for _ in range(3))
    for t, previous in zip(ours.tolist(), ours.tolist()[1:] + [0], strict=True):
        expected = theirs.step(eps, t - 1, xt, eta=eta, variance_noise=noise).prev_sample
        tt = torch.full((3,), t)
        step = schedule.ddim_step(xt, tt, torch.full((3,), previous), eps, eta=eta, noise=noise)
        assert torch.allclose(step, expected, rtol=1e-10, atol=1e-12), (t, previous)


def test_posterior_mean_and_reverse_mean_agree(schedule):
    """eq-eps-mean: mu(x_t, eps) is the posterior mean at the x_0 that eps predicts; a wrong x_0 is not."""
    xt, eps = torch.randn(200, 3, dtype=torch.float64), torch.randn(200, 3, dtype=torch.float64)
    t = torch.randint(1, T + 1, (200,))
    mean, var = schedule.posterior(schedule.predicted_x0(xt, t, eps), xt, t)
    assert torch.allclose(schedule.reverse_mean(xt, t, eps), mean, atol=1e-10)
    assert torch.allclose(schedule.predicted_eps(xt, t, schedule.predicted_x0(xt, t, eps)), eps, atol=1e-10)
    x0 = torch.randn(200, 3, dtype=torch.float64)
    assert torch.allclose(schedule.predicted_x0(schedule.forward_sample(x0, t, eps), t, eps), x0, atol=1e-9)
    assert var.shape == (200, 1) and torch.all(var >= 0)


def test_forward_sample_has_the_closed_form_moments(schedule):
    x0 = torch.full((200_000, 1), 1.5, dtype=torch.float64)
    t = torch.full((200_000,), 10)
    xt = schedule.forward_sample(x0, t, torch.randn_like(x0))
    abar = schedule.alpha_bars[9]
    assert abs(xt.mean() - abar.sqrt() * 1.5) < 4 * math.sqrt((1 - abar) / 200_000)
    assert abs(xt.var() / (1 - abar) - 1) < 4 * math.sqrt(2 / 200_000)


def test_schedule_from_alpha_bars_round_trips(schedule):
    again = NoiseSchedule.from_alpha_bars(schedule.alpha_bars)
    assert torch.allclose(again.betas, schedule.betas, rtol=1e-10)


@pytest.mark.parametrize(
    "betas",
    [
        torch.tensor([0.1, 0.0, 0.2]),
        torch.tensor([0.1, 1.0]),
        torch.tensor([-0.1]),
        torch.tensor([0.1, float("nan")]),
        torch.zeros(0),
        torch.full((2, 2), 0.1),
    ],
)
def test_betas_outside_zero_one_are_refused(betas):
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule.from_betas(betas)


@pytest.mark.parametrize("alpha_bars", [torch.tensor([0.9, 0.9, 0.5]), torch.tensor([0.5, 0.7]), torch.tensor([1.2])])
def test_alpha_bars_that_do_not_decrease_in_zero_one_are_refused(alpha_bars):
    with pytest.raises(ValueError, match="alpha_bars"):
        NoiseSchedule.from_alpha_bars(alpha_bars)


def test_schedule_constructors_refuse_bad_arguments():
    with pytest.raises(ValueError, match="steps"):
        NoiseSchedule.linear(0)
    with pytest.raises(ValueError, match="beta_start"):
        NoiseSchedule.linear(10, beta_start=-1.0)
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule.linear(10, beta_end=1.5)
    with pytest.raises(ValueError, match="max_beta"):
        NoiseSchedule.cosine(10, max_beta=1.0)


@pytest.mark.parametrize("t", [torch.tensor([0]), torch.tensor([T + 1]), torch.tensor([1.0]), torch.tensor([True])])
def test_timesteps_out_of_range_are_refused(schedule, t):
    with pytest.raises(ValueError, match="t must"):
        schedule.forward_sample(torch.zeros(1, 2), t, torch.zeros(1, 2))


def test_ddim_step_refuses_a_later_previous_step(schedule):
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="t_prev"):
        schedule.ddim_step(x, torch.tensor([5]), torch.tensor([5]), x)
    with pytest.raises(ValueError, match="noise"):
        schedule.ddim_step(x, torch.tensor([5]), torch.tensor([2]), x, eta=1.0)


# ----- the bound ------------------------------------------------------------------------------------------------


def test_gaussian_kl_matches_torch_distributions():
    m_q, m_p = torch.randn(50, 4, dtype=torch.float64), torch.randn(50, 4, dtype=torch.float64)
    v_q, v_p = torch.rand(50, 1, dtype=torch.float64) + 0.1, torch.rand(50, 1, dtype=torch.float64) + 0.1
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(m_q, v_q.sqrt().expand_as(m_q)),
        torch.distributions.Normal(m_p, v_p.sqrt().expand_as(m_p)),
    ).sum(-1)
    assert torch.allclose(gaussian_kl(m_q, v_q, m_p, v_p), expected, atol=1e-12)


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (1.5, 0.3), (-0.5, 2.0)])
def test_gaussian_bound_is_a_bound_and_its_mean_is_entropy_plus_prior_mismatch(schedule, mean, std):
    gauss = GaussianDiffusion(schedule, mean=mean, std=std)
    nodes, weights = np.polynomial.hermite_e.hermegauss(20)
    x0 = mean + std * torch.from_numpy(nodes)
    w = torch.from_numpy(weights / weights.sum())
    for variances in (None, schedule.betas, schedule.betas * 2):
        bound = gauss.bound_terms(x0, variances=variances).sum(1)
        assert torch.all(bound >= -gauss.model_log_prob(x0, variances=variances) - 1e-9)
    expected = gauss.data_entropy() + gauss.prior_mismatch()
    assert float(w @ gauss.bound_terms(x0).sum(1)) == pytest.approx(expected, abs=1e-9)
    # q(x_T) is N(0, 1) exactly when the data are
    assert (gauss.prior_mismatch() > 1e-12) == ((mean, std) != (0.0, 1.0))


def test_exact_reverse_of_standard_normal_data_is_beta():
    """For N(0, 1) data the reverse conditional is N(sqrt(alpha) x_t, beta): note 001's first variance."""
    schedule = NoiseSchedule.linear(T, beta_start=1e-3, beta_end=0.2)
    a, b, v = GaussianDiffusion(schedule, mean=0.0, std=1.0).reverse()
    assert torch.allclose(v, schedule.betas, rtol=1e-12)
    assert torch.allclose(a, schedule.alphas.sqrt(), rtol=1e-12) and torch.all(b == 0)
    _, _, v_point = GaussianDiffusion(schedule, mean=0.7, std=0.0).reverse()
    assert torch.allclose(v_point[1:], schedule.posterior_variances[1:], rtol=1e-10)


def test_ddpm_terms_estimate_the_exact_gaussian_terms(schedule):
    """The sampled terms of a DDPM with the exact noise predictor average to the closed forms."""
    model = DDPM(schedule=schedule, dim=1, variance="beta").double()
    model.denoiser = ExactNoise(schedule)
    x0 = torch.randn(4000, 1, dtype=torch.float64)
    sampled = model.terms(x0)
    exact = GaussianDiffusion(schedule, mean=0.0, std=1.0).bound_terms(x0[:, 0])
    assert sampled.shape == (4000, T + 1)
    diff = (sampled - exact).sum(1)
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(4000)
    assert torch.allclose(sampled[:, -1], exact[:, -1], atol=1e-12)  # L_T is not sampled
    assert torch.allclose(model.elbo(x0[:5]).neg(), model.terms(x0[:5]).sum(1), atol=10)


def test_bound_objective_is_an_unbiased_estimate_of_the_bound(schedule):
    torch.manual_seed(0)
    model = DDPM(schedule=schedule, dim=1, objective="bound").double()
    model.denoiser = ExactNoise(schedule)
    x0 = torch.randn(20_000, 1, dtype=torch.float64)
    terms = model.terms(x0[:4000])
    target = (terms[:, :-1].sum(1)).mean()  # the loss leaves out the constant L_T
    estimates = torch.stack([model.loss(chunk) for chunk in x0.split(500)])
    se = estimates.std() / math.sqrt(len(estimates))
    assert abs(estimates.mean() - target) < 4 * se + 4 * terms[:, :-1].sum(1).std() / math.sqrt(4000)


def test_simple_loss_is_the_mean_squared_noise_error(schedule):
    torch.manual_seed(1)
    model = randomized(DDPM(schedule=schedule, dim=3))
    x = torch.randn(64, 3)
    torch.manual_seed(2)
    loss = model.loss(x)
    torch.manual_seed(2)
    t = torch.randint(1, T + 1, (64,))
    noise = torch.randn(64, 3)
    eps, _ = model.denoise(schedule.forward_sample(x, t, noise), t)
    assert torch.allclose(loss, ((noise - eps) ** 2).mean())


def test_discretized_gaussian_is_a_distribution_over_the_levels():
    centres = torch.linspace(-1, 1, 17, dtype=torch.float64)
    mean = torch.tensor([[-1.3, -0.2, 0.05, 0.9, 2.0]], dtype=torch.float64)
    for std in (0.01, 0.1, 1.0):
        probs = torch.stack(
            [discretized_gaussian_log_prob(c.expand_as(mean), mean, torch.tensor(std), centres).exp() for c in centres]
        )
        assert torch.allclose(probs.sum(0), torch.ones(1, 5, dtype=torch.float64), atol=1e-9)
    # an interior level's probability is the normal CDF difference over its bin
    normal = torch.distributions.Normal(0.05, 0.1)
    direct = normal.cdf(torch.tensor(0.125 + 0.0625)) - normal.cdf(torch.tensor(0.125 - 0.0625))
    got = discretized_gaussian_log_prob(torch.tensor([[0.125]]), torch.tensor([[0.05]]), torch.tensor(0.1), centres)
    assert got.exp().item() == pytest.approx(direct.item(), rel=1e-6)


def test_level_posterior_rounds_at_low_noise_and_forgets_at_high_noise():
    centres = torch.linspace(-1, 1, 17)
    xt = torch.tensor([[0.13, -0.51]])
    sharp = torch.softmax(level_posterior_logits(xt, torch.tensor([[1 - 1e-5]]), centres), -1)
    assert sharp.argmax(-1).tolist() == [[9, 4]] and sharp.max(-1).values.min() > 0.999
    flat = torch.softmax(level_posterior_logits(xt, torch.tensor([[1e-6]]), centres), -1)
    assert torch.allclose(flat, torch.full_like(flat, 1 / 17), atol=1e-4)


def test_levels_model_decodes_exactly_when_the_noise_is_below_the_level_spacing():
    """At t = 1 (noise 0.01 against a half-spacing of 1/16) even an untrained levels model has L_0 near 0."""
    schedule = NoiseSchedule.linear(20, beta_start=1e-4, beta_end=0.05)
    model = randomized(DDPM(schedule=schedule, dim=64, levels=17, prediction="levels"))
    x, _ = load_digits("test")
    assert model.reconstruction_term(x[:100]).max() < 0.05  # random logits alone would cost ~64 log 17


# ----- training, sampling ---------------------------------------------------------------------------------------


def test_training_lowers_the_bound_on_digits():
    torch.manual_seed(0)
    schedule = NoiseSchedule.linear(100, beta_start=1e-3, beta_end=0.1)
    model = DDPM(schedule=schedule, dim=64, levels=17, prediction="levels", hidden=64, layers=2)
    x, _ = load_digits("train")
    test, _ = load_digits("test")
    before = model.terms(test[:100]).sum(1).mean()
    train(model, x, steps=300, progress=False)
    after = model.terms(test[:100]).sum(1).mean()
    assert after < before - 20 and after < 64 * math.log(17)


def test_samples_have_the_data_type_and_range(schedule):
    model = randomized(DDPM(schedule=schedule, dim=64, levels=17, prediction="levels", hidden=32, layers=1))
    for draw in (model.sample(5), model.ddim_sample(5, steps=7), model.ddim_sample(5, steps=5, eta=1.0)):
        assert draw.shape == (5, 64) and draw.dtype == torch.int64
        assert draw.min() >= 0 and draw.max() <= 16
    continuous = DDPM(schedule=schedule, dim=2, hidden=32, layers=1)
    assert continuous.sample(4).dtype == torch.float32 and continuous.sample(4).shape == (4, 2)


def test_reverse_chain_runs_from_t_down_to_zero(schedule):
    model = randomized(DDPM(schedule=schedule, dim=2, hidden=16, layers=1))
    states = list(model.reverse_chain(3, generator=torch.Generator().manual_seed(0)))
    assert [t for t, _ in states] == list(range(T, -1, -1))
    again = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(states[-1][1], again)


def test_ddim_with_eta_one_on_every_step_is_ancestral_sampling_with_beta_tilde(schedule):
    """Song et al.: eta = 1 gives the DDPM posterior variance; on all T steps the two samplers coincide."""
    torch.manual_seed(0)
    model = randomized(DDPM(schedule=schedule, dim=3, variance="beta_tilde", hidden=16, layers=1)).double()
    ancestral = model.sample(6, generator=torch.Generator().manual_seed(3))
    ddim = model.ddim_sample(6, steps=T, eta=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(ancestral, ddim, atol=1e-9)
    deterministic = model.ddim_sample(6, steps=T, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(ancestral, deterministic, atol=1e-3)


def test_guidance_combines_conditional_and_unconditional_noise(schedule):
    torch.manual_seed(0)
    model = randomized(DDPM(schedule=schedule, dim=4, classes=3, hidden=16, layers=1))
    xt, t, y = torch.randn(5, 4), torch.randint(1, T + 1, (5,)), torch.tensor([0, 1, 2, 0, 1])
    conditional, _ = model.denoise(xt, t, y)
    unconditional, _ = model.denoise(xt, t, torch.full_like(y, 3))
    assert not torch.allclose(conditional, unconditional, atol=1e-3)
    assert torch.allclose(model.guided_eps(xt, t, y, 0.0)[0], conditional)
    assert torch.allclose(model.guided_eps(xt, t, y, 2.0)[0], 3 * conditional - 2 * unconditional, atol=1e-6)
    assert torch.allclose(model.guided_eps(xt, t, None, 0.0)[0], unconditional)


def test_conditional_model_trains_on_labelled_tuples(schedule):
    torch.manual_seed(0)
    model = DDPM(schedule=schedule, dim=64, levels=17, classes=10, hidden=32, layers=1)
    x, y = load_digits("val")
    result = train(model, (x, y), steps=5, progress=False)
    assert len(result.history["loss"]) == 5
    assert model.sample(4, y=torch.tensor([1, 2, 3, 4]), guidance=1.5).shape == (4, 64)


def test_time_features_are_distinct_and_bounded():
    f = time_features(torch.linspace(-9.2, 9.2, 1000), dim=32)
    assert f.shape == (1000, 32) and f.abs().max() <= 1
    assert torch.cdist(f, f).add(torch.eye(1000) * 10).min() > 1e-3


# ----- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x",
    [
        torch.full((2, 64), 17),
        torch.full((2, 64), -1),
        torch.full((2, 64), 3.5),
        torch.full((2, 64), float("nan")),
        torch.zeros(2, 63, dtype=torch.long),
        torch.zeros(0, 64, dtype=torch.long),
    ],
)
def test_images_outside_the_levels_are_refused(schedule, x):
    model = DDPM(schedule=schedule, dim=64, levels=17, hidden=8, layers=1)
    with pytest.raises(ValueError, match="x must"):
        model.loss(x)
    with pytest.raises(ValueError, match="x must"):
        model.terms(x)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"prediction": "x0"}, "prediction"),
        ({"variance": "learned"}, "variance"),
        ({"objective": "vlb"}, "objective"),
        ({"prediction": "levels", "levels": None}, "levels"),
        ({"levels": 1}, "levels"),
        ({"dim": 0}, "dim"),
        ({"label_dropout": 1.0}, "label_dropout"),
        ({"schedule": "linear"}, "schedule"),
    ],
)
def test_bad_model_arguments_are_refused(schedule, kwargs, match):
    arguments = {"schedule": schedule, "dim": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        DDPM(**arguments)


def test_bad_sampling_and_label_arguments_are_refused(schedule):
    model = DDPM(schedule=schedule, dim=4, classes=3, hidden=8, layers=1)
    with pytest.raises(ValueError, match="steps"):
        model.ddim_sample(2, steps=T + 1)
    with pytest.raises(ValueError, match="eta"):
        model.ddim_sample(2, steps=5, eta=1.5)
    with pytest.raises(ValueError, match="guidance"):
        model.sample(2, guidance=1.0)
    with pytest.raises(ValueError, match="guidance"):
        model.sample(2, y=torch.tensor([0, 1]), guidance=-1.0)
    with pytest.raises(ValueError, match="y must"):
        model.loss(torch.zeros(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="t >= 2"):
        model.denoising_term(torch.zeros(2, 4), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="unconditional"):
        DDPM(schedule=schedule, dim=4).loss(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="std"):
        GaussianDiffusion(schedule, std=-1.0)
    with pytest.raises(ValueError, match="variances"):
        GaussianDiffusion(schedule).bound_terms(torch.zeros(3), variances=torch.zeros(T))


def test_x0_posterior_variance_is_the_law_of_total_variance(schedule):
    """sigma^2 = beta_tilde + A^2 Var(x_0 | x_t): beta_tilde when the logits are certain, more when they are not."""
    model = DDPM(schedule=schedule, dim=2, levels=5, prediction="levels", variance="x0_posterior")
    t = torch.tensor([10, 10])
    certain = torch.full((2, 2, 5), -1e4)
    certain[..., 2] = 0
    tilde = schedule.at("posterior_variances", t, torch.zeros(2, 2)).float()
    assert torch.allclose(model.reverse_variance(t, torch.zeros(2, 2), certain), tilde.expand(2, 2))
    uniform = torch.full((2, 2, 5), math.log(1 / 5))  # levels -1, -0.5, 0, 0.5, 1 equally likely: variance 0.5
    coef = schedule.at("posterior_x0_coefs", t, torch.zeros(2, 2)).float()
    expected = tilde + coef**2 * 0.5
    assert torch.allclose(model.reverse_variance(t, torch.zeros(2, 2), uniform), expected.expand(2, 2), rtol=1e-5)
    with pytest.raises(ValueError, match="log_probs"):
        model.reverse_variance(t, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="x0_posterior"):
        DDPM(schedule=schedule, dim=2, variance="x0_posterior")


def test_log_snr_linear_schedule_spans_its_signal_to_noise_ratios():
    schedule = NoiseSchedule.log_snr_linear(100, snr_max=1e4, snr_min=1e-4)
    log_snr = torch.log(schedule.alpha_bars / (1 - schedule.alpha_bars))
    assert log_snr[0].item() == pytest.approx(math.log(1e4), rel=1e-9)
    assert log_snr[-1].item() == pytest.approx(math.log(1e-4), rel=1e-9)
    assert torch.allclose(log_snr.diff(), log_snr.diff()[:1].expand(99), rtol=1e-6)
    with pytest.raises(ValueError, match="snr_min"):
        NoiseSchedule.log_snr_linear(10, snr_max=1.0, snr_min=2.0)


@pytest.mark.parametrize("steps,strata", [(50, 7), (1000, 100), (10, 9), (5, 1)])
def test_timestep_blocks_partition_two_to_t(steps, strata):
    blocks = timestep_blocks(steps, strata)
    covered = torch.cat([torch.arange(a, b + 1) for a, b in blocks.tolist()])
    assert torch.equal(covered, torch.arange(2, steps + 1))
    sizes = blocks[:, 1] - blocks[:, 0] + 1
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


def test_stratified_terms_estimate_the_exact_sum_without_bias(schedule):
    """Same model, same x_0: the stratified estimate averages to the full sum over t."""
    torch.manual_seed(0)
    model = DDPM(schedule=schedule, dim=1, variance="beta").double()
    model.denoiser = ExactNoise(schedule)
    x0 = torch.randn(3000, 1, dtype=torch.float64)
    exact = GaussianDiffusion(schedule, mean=0.0, std=1.0).bound_terms(x0[:, 0]).sum(1)
    estimate = model.stratified_terms(x0, strata=7)
    assert estimate.shape == (3000, 9)
    diff = estimate.sum(1) - exact
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(3000)
    blocks = timestep_blocks(T, 7)
    exact_terms = GaussianDiffusion(schedule, mean=0.0, std=1.0).bound_terms(x0[:, 0])
    for b, (first, last) in enumerate(blocks.tolist()):  # each block estimates its own partial sum
        d = estimate[:, b + 1] - exact_terms[:, first - 1 : last].sum(1)
        assert abs(d.mean()) < 4 * d.std() / math.sqrt(3000) + 1e-9

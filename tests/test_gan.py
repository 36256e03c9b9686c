import math

import pytest
import torch

import gmlib
from gmlib.data import gaussian_ring, ring_centers
from gmlib.divergences import wasserstein_1d
from gmlib.metrics import mode_coverage
from gmlib.models.gan import GAN, Critic, DivergenceEstimator, MomentMatchingGenerator
from gmlib.protocol import is_adversarial, is_generative

DISTANCES = ["kl", "reverse_kl", "pearson", "hellinger", "js", "gan", "wasserstein"]


@pytest.mark.parametrize("distance", DISTANCES)
def test_gan_meets_the_protocol_and_both_players_get_gradients(distance):
    gmlib.seed_everything(0)
    model = GAN(dim=2, distance=distance, hidden=16)
    x = torch.randn(32, 2)
    assert is_adversarial(model) and not is_adversarial(model.generator)
    assert model.sample(5).shape == (5, 2)
    model.discriminator_loss(x).backward()
    assert all(p.grad is not None for p in model.discriminator.parameters())
    assert all(p.grad is None for p in model.generator.parameters())  # fakes are detached for the critic
    model.zero_grad()
    model.generator_loss(x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.generator.parameters())


def test_vanilla_critic_value_is_the_binary_cross_entropy():
    gmlib.seed_everything(0)
    critic = Critic(dim=1, distance="gan", hidden=8)
    x, y = torch.randn(50, 1), torch.randn(40, 1) + 1
    d_real, d_fake = torch.sigmoid(critic(x)), torch.sigmoid(critic(y))
    expected = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()  # V(D, G) of Algorithm 1
    assert critic.bound(x, y).item() == pytest.approx(expected.item(), abs=1e-5)


def test_generator_losses_are_log_one_minus_d_and_minus_log_d():
    gmlib.seed_everything(0)
    x = torch.randn(16, 2)
    for mode, formula in [("minimax", lambda d: torch.log(1 - d)), ("non_saturating", lambda d: -torch.log(d))]:
        model = GAN(dim=2, generator_loss=mode, hidden=8)
        gmlib.seed_everything(1)
        loss = model.generator_loss(x)
        gmlib.seed_everything(1)
        d = torch.sigmoid(model.discriminator(model.sample(16)))
        assert loss.item() == pytest.approx(formula(d).mean().item(), abs=1e-5)


@pytest.mark.parametrize("clip_biases", [False, True])
def test_weight_clipping_bounds_every_critic_weight_and_biases_only_on_request(clip_biases):
    critic = Critic(dim=2, distance="wasserstein", lipschitz="clip", clip=0.05, clip_biases=clip_biases, hidden=8)
    with torch.no_grad():
        for p in critic.parameters():
            p.fill_(3.0)
    critic(torch.randn(8, 2))  # any forward pass clamps first, not only the losses
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in critic.named_parameters() if name.endswith("bias")]
    assert max(p.abs().max().item() for p in weights) == pytest.approx(0.05)
    assert min(p.min().item() for p in biases) == pytest.approx(0.05 if clip_biases else 3.0)


@pytest.mark.parametrize(("clip_biases", "low", "high"), [(False, 0.99, 1.001), (True, 0.0, 0.8)])
def test_weight_clipped_critic_over_its_lipschitz_constant_estimates_w1_unless_biases_are_clipped(
    clip_biases, low, high
):
    # P = N(0, 1), Q = N(1.5, 0.5^2): the optimal critic is linear on the bulk of both; clipping
    # the weights makes the critic about K * x, so value / K ~ W1 (and <= W1: T / K is 1-Lipschitz)
    gmlib.seed_everything(3)
    p = torch.distributions.Normal(torch.tensor([0.0]), 1.0)
    q = torch.distributions.Normal(torch.tensor([1.5]), 0.5)
    estimator = DivergenceEstimator(
        q=q, dim=1, distance="wasserstein", lipschitz="clip", clip=0.05, clip_biases=clip_biases
    )
    gmlib.train(estimator, p, steps=1500, batch_size=512, lr=1e-3, betas=(0.5, 0.9), seed=3, progress=False)
    x, y = p.sample((20_000,)), q.sample((20_000,))
    probe = torch.cat([x, y]).requires_grad_(True)
    (slope,) = torch.autograd.grad(estimator.critic(probe).sum(), probe)
    ratio = abs(estimator.estimate(x, y)) / slope.abs().max().item() / wasserstein_1d(x[:, 0], y[:, 0]).item()
    assert low <= ratio <= high


def test_gradient_penalty_is_zero_for_a_unit_slope_linear_critic():
    critic = Critic(dim=2, distance="wasserstein", layers=1, hidden=2)
    with torch.no_grad():  # V(x) = x_1 through (LeakyReLU(x_1) - LeakyReLU(-x_1)) / 1.2
        critic.net[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        critic.net[0].bias.zero_()
        critic.net[2].weight.copy_(torch.tensor([[1.0, -1.0]]) / 1.2)  # LeakyReLU(0.2): 1.2 x_1 before this
        critic.net[2].bias.zero_()
    x, y = torch.randn(64, 2), torch.randn(64, 2)
    assert critic.gradient_penalty(x, y).item() == pytest.approx(0.0, abs=1e-10)
    assert critic.bound(x, y).item() == pytest.approx((x[:, 0].mean() - y[:, 0].mean()).item(), abs=1e-6)


def test_trained_vanilla_critic_approaches_the_optimal_value():
    gmlib.seed_everything(0)
    p, q = torch.distributions.Normal(torch.tensor([0.0]), 1.0), torch.distributions.Normal(torch.tensor([2.0]), 1.0)
    estimator = DivergenceEstimator(q=q, dim=1, distance="gan", hidden=32)
    assert is_generative(estimator)
    gmlib.train(estimator, p, steps=600, batch_size=256, lr=3e-3, progress=False)
    # exact: -log 4 + 2 JSD(N(0,1), N(2,1)) by quadrature on a fine grid
    t = torch.linspace(-12, 14, 200_001, dtype=torch.float64)
    lp, lq = p.log_prob(t[:, None]).squeeze(1).double(), q.log_prob(t[:, None]).squeeze(1).double()
    lm = torch.logaddexp(lp, lq) - math.log(2)
    jsd = 0.5 * ((lp.exp() * (lp - lm)).sum() + (lq.exp() * (lq - lm)).sum()).item() * (t[1] - t[0]).item()
    value = estimator.estimate(p.sample((20_000,)), q.sample((20_000,)))
    assert value == pytest.approx(-math.log(4) + 2 * jsd, abs=0.03)


@pytest.mark.parametrize("distance", ["mmd", "sliced_wasserstein"])
def test_moment_matching_generator_learns_a_shifted_gaussian(distance):
    gmlib.seed_everything(0)
    model = MomentMatchingGenerator(dim=2, distance=distance, hidden=16, bandwidths=(0.5, 2.0))
    assert is_generative(model)
    data = torch.distributions.MultivariateNormal(torch.tensor([2.0, -1.0]), 0.25 * torch.eye(2))
    gmlib.train(model, data, steps=600, batch_size=128, lr=1e-2, progress=False)
    assert torch.allclose(model.sample(4000).mean(0), torch.tensor([2.0, -1.0]), atol=0.15)


def test_a_gan_that_produces_nan_stops_naming_the_step():
    model = GAN(dim=2, hidden=8)
    with torch.no_grad():
        model.generator.net[0].weight.fill_(float("nan"))
    with pytest.raises(gmlib.TrainingDiverged, match="at step 0"):
        gmlib.train(model, gaussian_ring(), steps=5, batch_size=8, progress=False)


def test_nan_real_data_is_refused():
    x = torch.randn(4, 2)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        GAN(dim=2, hidden=8).discriminator_loss(x)
    with pytest.raises(ValueError, match="finite"):
        MomentMatchingGenerator(dim=2, hidden=8).loss(x)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: GAN(dim=2, distance="tv"), "divergence must be one of"),
        (lambda: GAN(dim=2, generator_loss="hinge"), "generator_loss"),
        (lambda: GAN(dim=2, distance="wasserstein", lipschitz="spectral"), "lipschitz"),
        (lambda: GAN(dim=2, clip=0.0), "clip"),
        (lambda: GAN(dim=0), "outputs"),
        (lambda: GAN(dim=2, latent=0), "latent"),
        (lambda: MomentMatchingGenerator(dim=2, distance="energy"), "distance"),
        (lambda: GAN(dim=2).sample(0), "n must be"),
        (lambda: Critic(dim=2).bound(torch.zeros(3, 3), torch.zeros(3, 2)), "x_real"),
    ],
)
def test_bad_arguments_are_named(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_mode_coverage_of_the_true_ring_is_complete():
    gmlib.seed_everything(0)
    ring = gaussian_ring(std=0.05)
    coverage = mode_coverage(ring.sample((20_000,)), ring_centers(), std=0.05)
    assert coverage.covered == 8
    assert coverage.near_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.005)  # Rayleigh: P(r < 3 std)
    assert coverage.max_weight_error < 0.01


@pytest.mark.parametrize(
    "factory",
    [
        lambda r: GAN(dim=2, hidden=8, replicas=r),
        lambda r: GAN(dim=2, hidden=8, distance="wasserstein", replicas=r),
        lambda r: GAN(dim=2, hidden=8, distance="wasserstein", lipschitz="clip", replicas=r),
        lambda r: GAN(dim=2, hidden=8, distance="kl", generator_loss="minimax", replicas=r),
    ],
)
def test_replicated_gans_are_independent_runs(factory):
    # each replica's losses and gradients depend on its own share of the batch only
    model = factory(3)
    assert model.sample(5).shape == (3, 5, 2)
    x = torch.randn(12, 2)
    grads = {}
    for trial in range(2):
        if trial:
            x[4:] = torch.randn(8, 2) * 5  # the shares of replicas 1 and 2
        for loss_name in ("discriminator_loss", "generator_loss"):
            model.zero_grad()
            gmlib.seed_everything(7)
            getattr(model, loss_name)(x).backward()
            grads[trial, loss_name] = [p.grad[0].clone() for p in model.parameters() if p.grad is not None]
    for loss_name in ("discriminator_loss", "generator_loss"):
        first, second = grads[0, loss_name], grads[1, loss_name]
        assert first and all(torch.allclose(a, b) for a, b in zip(first, second, strict=True))


def test_replicated_critic_bounds_are_per_replica_and_shared_inputs_broadcast():
    critic = Critic(dim=2, distance="wasserstein", hidden=8, replicas=4)
    x, y = torch.randn(10, 2), torch.randn(7, 2)
    bounds = critic.bound(x, y)
    assert bounds.shape == (4,)
    assert torch.allclose(bounds, critic.bound(x.expand(4, 10, 2), y.expand(4, 7, 2)))
    assert critic.gradient_penalty(x, x).shape == (4,)
    assert critic.critic_loss(x, x).shape == ()
    with pytest.raises(ValueError, match="x_real"):
        critic.bound(torch.randn(3, 10, 2), y)  # 3 is not the number of replicas


def test_replicated_estimator_trains_every_replica_to_the_optimal_value():
    gmlib.seed_everything(0)
    p, q = torch.distributions.Normal(torch.tensor([0.0]), 1.0), torch.distributions.Normal(torch.tensor([2.0]), 1.0)
    estimator = DivergenceEstimator(q=q, dim=1, distance="gan", hidden=32, replicas=3)
    gmlib.train(estimator, p, steps=600, batch_size=3 * 256, lr=3e-3, progress=False)
    values = estimator.estimate(p.sample((20_000,)), q.sample((20_000,)))
    t = torch.linspace(-12, 14, 200_001, dtype=torch.float64)
    lp, lq = p.log_prob(t[:, None]).squeeze(1).double(), q.log_prob(t[:, None]).squeeze(1).double()
    lm = torch.logaddexp(lp, lq) - math.log(2)
    jsd = 0.5 * ((lp.exp() * (lp - lm)).sum() + (lq.exp() * (lq - lm)).sum()).item() * (t[1] - t[0]).item()
    assert len(values) == 3 and len(set(values)) == 3  # three different critics
    assert values == pytest.approx([-math.log(4) + 2 * jsd] * 3, abs=0.03)


def test_a_batch_that_cannot_be_dealt_out_is_refused():
    with pytest.raises(ValueError, match="dealt out"):
        GAN(dim=2, hidden=8, replicas=3).discriminator_loss(torch.randn(10, 2))


# --- pinned against independent references (issue 17) ------------------------------------------------------


class _HalfSquaredNorm(torch.nn.Module):
    """V(x) = |x|^2 / 2 (gradient x), recording every input it sees: stands in for a critic's network."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return (x**2).sum(-1, keepdim=True) / 2


@pytest.mark.parametrize("replicas", [None, 3])
def test_gradient_penalty_interpolates_each_pair_with_its_own_uniform_weight(replicas):
    # Gulrajani et al. 2017, Algorithm 1: x_hat = eps x + (1 - eps) x~ with one eps ~ U[0, 1] per sample,
    # and the penalty lambda (|grad V(x_hat)| - 1)^2, averaged over the batch
    from scipy.stats import kstest

    critic = Critic(dim=3, distance="wasserstein", penalty=7.0, replicas=replicas)
    critic.net = _HalfSquaredNorm()
    n = 2000
    shape = (n, 3) if replicas is None else (replicas, n, 3)
    x_real, x_fake = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64) + 2
    value = critic.gradient_penalty(x_real, x_fake)
    (x_hat,) = critic.net.seen
    # each x_hat lies on the segment from x_fake to x_real: x_hat - x_fake = eps (x_real - x_fake), one eps per row
    eps = ((x_hat - x_fake) * (x_real - x_fake)).sum(-1) / ((x_real - x_fake) ** 2).sum(-1)
    assert torch.allclose(x_hat, x_fake + eps[..., None] * (x_real - x_fake), atol=1e-12)
    for row in eps.reshape(-1, n):  # per replica: n independent U[0, 1] weights
        assert kstest(row.numpy(), "uniform").pvalue > 1e-4
    expected = 7.0 * ((x_hat.norm(dim=-1) - 1) ** 2).mean(-1)  # the gradient of |x|^2 / 2 is x
    assert value.shape == (() if replicas is None else (replicas,))
    assert torch.allclose(value, expected, rtol=1e-12)


def test_wasserstein_critic_loss_is_minus_the_mean_gap_plus_the_penalty():
    critic = Critic(dim=2, distance="wasserstein", penalty=3.0)
    critic.net = _HalfSquaredNorm()
    x, y = torch.randn(50, 2, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64) + 1
    gmlib.seed_everything(5)
    loss = critic.critic_loss(x, y)
    gmlib.seed_everything(5)
    penalty = critic.gradient_penalty(x, y)
    gap = (x**2).sum(-1).mean() / 2 - (y**2).sum(-1).mean() / 2
    assert loss.item() == pytest.approx((-gap + penalty).item(), rel=1e-12)
    clipped = Critic(dim=2, distance="wasserstein", lipschitz="clip")
    clipped.net = _HalfSquaredNorm()
    assert clipped.critic_loss(x, y).item() == pytest.approx(-gap.item(), rel=1e-12)  # no penalty when clipping


@pytest.mark.parametrize("distance", ["kl", "reverse_kl", "pearson", "hellinger", "js", "gan"])
def test_f_gan_bound_is_nowozins_variational_estimate(distance):
    # E_P[g_f(V)] - E_Q[f*(g_f(V))], with g_f and f* written out from Nowozin et al. 2016, Tables 2 and 6
    rows = {
        "kl": (lambda v: v, lambda t: torch.exp(t - 1)),
        "reverse_kl": (lambda v: -torch.exp(-v), lambda t: -1 - torch.log(-t)),
        "pearson": (lambda v: v, lambda t: t**2 / 4 + t),
        "hellinger": (lambda v: 1 - torch.exp(-v), lambda t: t / (1 - t)),
        "js": (lambda v: math.log(2) - torch.log1p(torch.exp(-v)), lambda t: -torch.log(2 - torch.exp(t))),
        "gan": (lambda v: -torch.log1p(torch.exp(-v)), lambda t: -torch.log(1 - torch.exp(t))),
    }
    activation, conjugate = rows[distance]
    critic = Critic(dim=2, distance=distance, hidden=8).double()
    x, y = torch.randn(40, 2, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64) + 0.5
    with torch.no_grad():
        v_real, v_fake = critic(x), critic(y)
        expected = activation(v_real).mean() - conjugate(activation(v_fake)).mean()
        assert critic.bound(x, y).item() == pytest.approx(expected.item(), rel=1e-9)


def test_a_dcgan_meets_the_protocol_and_refuses_what_it_cannot_do():
    gmlib.seed_everything(0)
    model = GAN(dim=64, latent=8, hidden=4, architecture="dcgan")
    x = torch.rand(16, 64) * 2 - 1
    assert model.sample(6).shape == (6, 64) and model.sample(6).abs().max() <= 1
    model.discriminator_loss(x).backward()
    assert all(p.grad is not None for p in model.discriminator.parameters())
    model.zero_grad()
    model.generator_loss(x).backward()
    assert all(p.grad is not None for p in model.generator.parameters())
    for kwargs, message in [
        (dict(dim=60), "side"),
        (dict(dim=64, replicas=2), "replicas"),
        (dict(dim=64, distance="wasserstein"), "f-divergence"),
        (dict(dim=64, architecture="resnet"), "architecture"),
    ]:
        with pytest.raises(ValueError, match=message):
            GAN(**{"architecture": "dcgan", **kwargs})


def test_deal_splits_a_batch_in_order_and_refuses_uneven_or_empty_batches():
    from gmlib.models.gan import deal

    x = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(deal(x, 3), x.reshape(3, 2, 2))  # replica r gets rows 2r, 2r + 1
    assert torch.equal(deal(torch.arange(6.0), 3), torch.arange(6.0).reshape(3, 2))
    assert torch.equal(deal(x[:1], 1), x[:1].reshape(1, 1, 2))
    assert deal(x, None) is x
    for bad in (x[:5], torch.zeros(0, 2)):
        with pytest.raises(ValueError, match="dealt out"):
            deal(bad, 3)


def test_the_smallest_models_work():
    critic = Critic(dim=1, distance="wasserstein", hidden=4)
    assert critic.bound(torch.zeros(1, 1), torch.ones(1, 1)).shape == ()
    with pytest.raises(ValueError, match="at least one sample"):
        critic.bound(torch.zeros(0, 1), torch.ones(1, 1))
    gan = GAN(dim=1, latent=1, hidden=4)
    assert gan.sample(1).shape == (1, 1)


@pytest.mark.parametrize("distance", ["mmd", "sliced_wasserstein"])
def test_moment_matching_loss_is_its_distance_to_the_real_batch(distance):
    from gmlib.divergences import mmd, sliced_wasserstein

    model = MomentMatchingGenerator(dim=2, distance=distance, hidden=8, bandwidths=(0.5, 2.0), projections=16)
    x = torch.randn(32, 2)
    gmlib.seed_everything(2)
    loss = model.loss(x)
    gmlib.seed_everything(2)
    fake = model.sample(32)
    if distance == "mmd":
        expected = mmd(fake, x, bandwidths=(0.5, 2.0))
    else:
        expected = sliced_wasserstein(fake, x, projections=16)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_gradient_penalty_trains_the_critic():
    # the penalty depends on the critic's weights through grad_x V = W3 D2 W2 D1 W1 (D: LeakyReLU slopes):
    # its gradient must reach every weight matrix (the biases only move the kinks, a.e. no gradient)
    critic = Critic(dim=2, distance="wasserstein", hidden=8)
    critic.gradient_penalty(torch.randn(16, 2), torch.randn(16, 2) + 1).backward()
    weights = [p for name, p in critic.named_parameters() if name.endswith("weight")]
    assert len(weights) == 3 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)

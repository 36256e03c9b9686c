"""Tests of gmlib.models.flows: every transform inverts, its log-determinant is the autograd Jacobian's,
the reparameterisations keep it invertible, and every flow's density integrates to 1."""

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from torch.autograd.functional import jacobian
from torch.distributions import ComposeTransform, Independent, Normal, TransformedDistribution

import gmlib
from gmlib.data import dequantize
from gmlib.models.flows import (
    AffineCoupling,
    Dequantized,
    ElementwiseAffine,
    ElementwiseSpline,
    Flow,
    HistogramGaussianize,
    Inverse,
    Permute,
    Planar,
    PlanarTransform,
    Radial,
    RadialTransform,
    ReverseKLFit,
    SplineCoupling,
    digits_flow,
    planar_flow,
    radial_flow,
    rational_quadratic_spline,
    realnvp,
    spline_flow,
    spline_knots,
    standard_normal,
)

DIM = 3  # D = 3 so that (D - 1) != 1 and couplings have unequal halves
BOUND = 2.0  # the spline's [-B, B]; test inputs reach well outside it

LAYERS = {
    "planar": lambda dim: Planar(dim),
    "planar-inverse": lambda dim: Inverse(Planar(dim)),
    "radial": lambda dim: Radial(dim),
    "radial-inverse": lambda dim: Inverse(Radial(dim)),
    "affine-coupling": lambda dim: AffineCoupling(dim, hidden=16),
    "affine-coupling-flipped": lambda dim: AffineCoupling(dim, hidden=16, flip=True),
    "spline-coupling": lambda dim: SplineCoupling(dim, bins=5, bound=BOUND, hidden=16),
    "spline-coupling-flipped": lambda dim: SplineCoupling(dim, bins=5, bound=BOUND, hidden=16, flip=True),
    "permute": lambda dim: Permute(dim, order=torch.roll(torch.arange(dim), 1)),
    "elementwise-affine": lambda dim: ElementwiseAffine(dim),
    "elementwise-spline": lambda dim: ElementwiseSpline(dim, bins=5, bound=BOUND),
    # levels 0..3 on [0, 4), exponential tails outside: the tests' inputs cover both
    "histogram-gaussianize": lambda dim: HistogramGaussianize(
        torch.softmax(torch.linspace(-2, 2, 4 * dim).view(dim, 4), -1)
    ),
}


def randomized(layer: torch.nn.Module, dtype: torch.dtype = torch.float64, scale: float = 0.7) -> torch.nn.Module:
    """The layer in ``dtype`` with every parameter redrawn from N(0, scale^2): far from any identity init."""
    layer = layer.to(dtype)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(scale * torch.randn_like(p))
    return layer


def log_abs_det_autograd(t, x: torch.Tensor) -> torch.Tensor:
    """log |det dT/dx| (batch,) from the full autograd Jacobian (D, D) of each sample."""
    return torch.stack([torch.linalg.slogdet(jacobian(lambda v: t(v), xi)).logabsdet for xi in x])


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_inverse_undoes_forward_inside_and_outside_the_spline_interval(name, dtype, tol):
    # A round trip loses about eps / (smallest slope): random parameters at scale 0.2 keep every slope above
    # ~1e-2, so 1e-5 and 1e-10 are honest; the log-det test below uses wilder parameters.
    t = randomized(LAYERS[name](DIM), dtype, scale=0.2)()
    x = (2 * torch.rand(256, DIM, dtype=dtype) - 1) * 2 * BOUND  # uniform on [-2B, 2B]: half the entries outside
    torch.testing.assert_close(t.inv(t(x)), x, atol=tol, rtol=tol)
    torch.testing.assert_close(t(t.inv(x)), x, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_log_det_equals_the_autograd_jacobian(name):
    t = randomized(LAYERS[name](DIM))()
    x = 1.5 * BOUND * torch.randn(8, DIM, dtype=torch.float64)
    y = t(x)
    reference = log_abs_det_autograd(t, x)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), reference, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(t.log_abs_det_jacobian(x.clone(), y), reference, atol=1e-9, rtol=1e-9)  # uncached
    x_back = t.inv(y)  # the inverse's own log-det, from the inverse pass
    torch.testing.assert_close(t.inv.log_abs_det_jacobian(y, x_back), -reference, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_inverse_refuses_non_finite_input_naming_the_transform(name):
    t = LAYERS[name](DIM)()
    inverse = t if name.endswith("-inverse") else t.inv  # Inverse(layer)'s forward is the layer's inverse
    y = torch.zeros(4, DIM)
    y[1, 0] = float("nan")
    with pytest.raises(ValueError, match=type(inverse.inv).__name__ + r"\.inverse"):
        inverse(y)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_transform_refuses_the_wrong_dimension(name):
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        LAYERS[name](DIM)()(torch.zeros(4, DIM + 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("factor", [-10.0, -1e3, -1.0, 0.5])
def test_planar_u_hat_keeps_w_u_above_minus_one_for_adversarial_u(factor, dtype):
    for _ in range(20):
        layer = Planar(DIM).to(dtype)
        with torch.no_grad():
            layer.w.copy_(2 * torch.randn(DIM))
            layer.u.copy_(factor * layer.w)  # w^T u = factor |w|^2, far below -1 for the negative factors
        slack = 1e-12 if dtype == torch.float64 else 1e-5  # rounding of the cancelling sum u + (m - w^T u) w / |w|^2
        assert (layer.w @ layer.u_hat()).item() >= -1 - slack
        layer()  # and the transform accepts it


def test_planar_transform_refuses_parameters_that_break_invertibility():
    w = torch.tensor([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="w\\^T u >= -1"):
        PlanarTransform(w, -1.5 * w, torch.tensor(0.0))


@pytest.mark.parametrize("alpha_hat", [-20.0, 0.0, 5.0])
@pytest.mark.parametrize("beta_hat", [-60.0, -5.0, 0.0, 5.0])
def test_radial_beta_is_at_least_minus_alpha(alpha_hat, beta_hat):
    layer = Radial(DIM).double()
    with torch.no_grad():
        layer.alpha_hat.fill_(alpha_hat)
        layer.beta_hat.fill_(beta_hat)
    alpha, beta = layer.alpha(), layer.beta()
    assert alpha.item() > 0 and beta.item() >= -alpha.item()
    layer()  # the transform accepts it


def test_radial_transform_refuses_parameters_that_break_invertibility():
    z0 = torch.zeros(DIM)
    with pytest.raises(ValueError, match="alpha > 0"):
        RadialTransform(z0, torch.tensor(-1.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="beta >= -alpha"):
        RadialTransform(z0, torch.tensor(1.0), torch.tensor(-1.5))


def test_matrix_determinant_lemma_and_the_planar_jacobian():
    u, psi = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(torch.linalg.det(torch.eye(5, dtype=torch.float64) + torch.outer(u, psi)), 1 + u @ psi)
    # the planar Jacobian is that rank-one update: I + u psi^T with psi = h'(w^T z + b) w
    t = randomized(Planar(5))()
    z = torch.randn(5, dtype=torch.float64)
    psi = (1 - torch.tanh(z @ t.w + t.b) ** 2) * t.w
    torch.testing.assert_close(jacobian(t, z), torch.eye(5, dtype=torch.float64) + torch.outer(t.u, psi))
    torch.testing.assert_close(t.log_abs_det_jacobian(z, t(z)), torch.log(torch.abs(torch.linalg.det(jacobian(t, z)))))


@pytest.mark.parametrize("w_u", [2.0, 0.0, -0.5, -0.999])
def test_planar_inverse_matches_a_brute_force_root_finder(w_u):
    w = torch.tensor([1.2, -0.7, 0.4], dtype=torch.float64)
    u = torch.randn(3, dtype=torch.float64)
    u = u + (w_u - w @ u) * w / (w @ w)  # w^T u = w_u, down to the edge of invertibility
    t = PlanarTransform(w, u, torch.tensor(0.3, dtype=torch.float64))
    y = 2 * torch.randn(16, 3, dtype=torch.float64)
    x = t.inv(y)

    def f(z: np.ndarray, target: np.ndarray) -> np.ndarray:  # the D-dimensional equation f(z) = y itself
        return z + u.numpy() * np.tanh(z @ w.numpy() + 0.3) - target

    for yi, xi in zip(y.numpy(), x.numpy(), strict=True):
        solution = scipy.optimize.root(f, yi, args=(yi,), method="lm", options={"xtol": 1e-15, "ftol": 1e-15})
        assert np.abs(f(solution.x, yi)).max() < 1e-12
        np.testing.assert_allclose(xi, solution.x, atol=1e-8 if w_u > -0.9 else 1e-5)


def test_planar_inverse_gradient_is_the_implicit_function_gradient():
    def inverse(w, u, b, y):
        return PlanarTransform(w, u, b).inv(y)

    w = torch.tensor([0.9, -0.4], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([-0.3, 0.8], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(inverse, (w, u, b, y), eps=1e-6, atol=1e-6)


def test_spline_is_monotone_continuous_at_the_knots_and_the_identity_outside():
    K = 6
    widths, heights = 1.5 * torch.randn(K, dtype=torch.float64), 1.5 * torch.randn(K, dtype=torch.float64)
    derivatives = 1.5 * torch.randn(K - 1, dtype=torch.float64)
    knots_x, knots_y, delta = spline_knots(widths, heights, derivatives, bound=BOUND)
    assert knots_x[0] == -BOUND and knots_x[-1] == BOUND and knots_y[0] == -BOUND and knots_y[-1] == BOUND

    def spline(x: torch.Tensor) -> torch.Tensor:
        return rational_quadratic_spline(x, widths, heights, derivatives, bound=BOUND)[0]

    grid = torch.linspace(-2 * BOUND, 2 * BOUND, 20001, dtype=torch.float64)
    assert (spline(grid).diff() > 0).all()  # strictly increasing
    torch.testing.assert_close(spline(knots_x), knots_y, atol=1e-12, rtol=0)  # interpolates the knots
    h = 1e-8  # no jump and no kink at any knot: both one-sided slopes equal delta_k (1 at +-B, the tails' slope)
    at = spline(knots_x)
    torch.testing.assert_close((at - spline(knots_x - h)) / h, delta, atol=1e-4, rtol=1e-4, msg="left slope")
    torch.testing.assert_close((spline(knots_x + h) - at) / h, delta, atol=1e-4, rtol=1e-4, msg="right slope")
    outside = torch.cat([torch.linspace(-10, -BOUND, 50), torch.linspace(BOUND, 10, 50)]).double()
    y, ladj = rational_quadratic_spline(outside, widths, heights, derivatives, bound=BOUND)
    assert torch.equal(y, outside) and torch.equal(ladj, torch.zeros_like(ladj))


FLOWS = {
    "planar": lambda: planar_flow(layers=4),
    "planar-generative": lambda: planar_flow(layers=4, direction="generative"),
    "radial": lambda: radial_flow(layers=4),
    "radial-generative": lambda: radial_flow(layers=4, direction="generative"),
    "realnvp": lambda: realnvp(layers=4, hidden=16),
    "spline": lambda: spline_flow(layers=2, bins=5, hidden=16),
    "mixed": lambda: Flow(
        base=standard_normal(2),
        transforms=[ElementwiseAffine(2), SplineCoupling(2, hidden=16), Permute(2), AffineCoupling(2, hidden=16)],
    ),
    "elementwise-spline": lambda: Flow(
        base=standard_normal(2), transforms=[ElementwiseSpline(2, bins=5), SplineCoupling(2, bins=5, hidden=16)]
    ),
}


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_flow_density_integrates_to_one(kind):
    flow = randomized(FLOWS[kind](), scale=0.25)  # wilder spline layers need a finer grid than 301^2
    n, half = 301, 9.0  # midpoint rule on [-9, 9]^2; the base's mass outside is < 1e-17
    centres = -half + (torch.arange(n, dtype=torch.float64) + 0.5) * (2 * half / n)
    grid = torch.cartesian_prod(centres, centres)  # (n^2, 2)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum().item() * (2 * half / n) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_both_directions_give_the_same_density(kind):
    flow = randomized(FLOWS[kind](), scale=0.4)
    x, log_q = flow.rsample_and_log_prob(64)
    torch.testing.assert_close(log_q, flow.log_prob(x), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_gradients_reach_every_parameter_both_ways(kind):
    flow = FLOWS[kind]()
    flow.loss(torch.randn(32, 2)).backward()  # forward KL: the normalizing direction
    flow.reverse_kl(lambda x: -0.5 * (x**2).sum(-1), 32).backward()  # reverse KL: the generative direction
    for name, parameter in flow.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_flow_agrees_with_torch_transformed_distribution(kind):
    flow = randomized(FLOWS[kind](), scale=0.4)
    transform = ComposeTransform([layer() for layer in flow.transforms])  # x -> z, a plain torch Transform
    x = 2 * torch.randn(16, 2, dtype=torch.float64)
    reference = TransformedDistribution(flow.base(), [transform.inv]).log_prob(x)
    torch.testing.assert_close(flow.log_prob(x), reference, atol=1e-10, rtol=1e-10)


def test_base_follows_the_module_dtype():
    flow = planar_flow().double()
    assert flow.sample(3).dtype == torch.float64 and flow.base().mean.dtype == torch.float64


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: SplineCoupling(2, bins=1), "bins"),
        (lambda: SplineCoupling(2, bound=0.0), "bound"),
        (lambda: SplineCoupling(2, bound=-1.0), "bound"),
        (lambda: SplineCoupling(2, bins=2, min_width=0.6), "min_width"),
        (lambda: SplineCoupling(1), "dim"),
        (lambda: AffineCoupling(1), "dim"),
        (lambda: AffineCoupling(2, scale_bound=0.0), "scale_bound"),
        (lambda: Planar(0), "dim"),
        (lambda: Radial(0), "dim"),
        (lambda: Permute(3, order=torch.tensor([0, 0, 1])), "order"),
        (lambda: Flow(base=standard_normal(2), transforms=[Planar(2)], direction="backwards"), "direction"),
        (lambda: Flow(base=torch.distributions.Uniform(0.0, 1.0), transforms=[Planar(2)]), "base"),
        (lambda: Flow(base=standard_normal(2), transforms=[Planar(3)]), "transforms"),
        (lambda: planar_flow(layers=0), "layers"),
    ],
)
def test_bad_hyper_parameters_are_refused_by_name(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_flow_refuses_bad_input_by_name():
    flow = realnvp(hidden=16)
    with pytest.raises(ValueError, match="x must have shape"):
        flow.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="x must be finite"):
        flow.log_prob(torch.tensor([[0.0, math.inf]]))
    with pytest.raises(ValueError, match="n must be"):
        flow.sample(0)


def test_planar_inverse_converges_where_newton_alone_oscillates():
    """w^T u = 15: plain Newton on a + 15 tanh(a) = t bounces between the two sides for t near -13.8."""
    w = torch.tensor([1.0, 0.0], dtype=torch.float64)
    u = torch.tensor([15.0, 2.0], dtype=torch.float64)
    t = PlanarTransform(w, u, torch.tensor(0.0, dtype=torch.float64))
    y = torch.stack([torch.linspace(-40, 40, 20001, dtype=torch.float64), torch.zeros(20001, dtype=torch.float64)], 1)
    x = t.inv(y)
    assert torch.allclose(t(x), y, atol=1e-9)


# --- element-wise layers, dequantisation and the digits flow --------------------------------------------


def test_elementwise_spline_starts_as_the_identity_and_acts_on_each_coordinate_alone():
    layer = ElementwiseSpline(4, bins=6, bound=BOUND).double()
    x = 2 * BOUND * torch.randn(32, 4, dtype=torch.float64)
    y, ladj = layer().call_and_ladj(x)  # exactly the identity up to the float32 rounding of its initial values
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(ladj, torch.zeros(32, dtype=torch.float64), atol=1e-6, rtol=0)
    t = randomized(layer)()
    jac = jacobian(t, x[0])
    torch.testing.assert_close(jac, torch.diag(torch.diagonal(jac)))  # diagonal: no coordinate sees another
    for d in range(4):  # coordinate d is the one-dimensional spline with parameters row d
        alone = rational_quadratic_spline(x[:, d], t.widths[d], t.heights[d], t.derivatives[d], bound=BOUND)[0]
        torch.testing.assert_close(t(x)[:, d], alone)


def histogram_layer(probs: torch.Tensor) -> Flow:
    """The histogram layer alone on a standard normal base: the independent-coordinate histogram model."""
    return Flow(base=standard_normal(probs.shape[0]), transforms=[HistogramGaussianize(probs)]).double()


def test_histogram_gaussianize_alone_is_the_histogram_model():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (300, 3), generator=gen)
    layer = HistogramGaussianize.from_levels(x, levels=5, alpha=0.5)
    counts = torch.stack([(x == k).sum(0) for k in range(5)], 1).double() + 0.5  # (D, L) by a loop
    torch.testing.assert_close(layer.probs, counts / counts.sum(1, keepdim=True))
    flow = histogram_layer(layer.probs)
    y = dequantize(x, generator=gen, dtype=torch.float64)  # anywhere inside each level's cube
    expected = torch.log((1 - 2e-6) * layer.probs[torch.arange(3), x]).sum(-1)  # sum_d log f_d(level)
    torch.testing.assert_close(flow.log_prob(y), expected, atol=1e-9, rtol=0)
    z = flow.forward_and_log_det(y)[0]  # each marginal is mapped onto N(0, 1): its quantiles, level by level
    upper = torch.special.ndtri(1e-6 + (1 - 2e-6) * layer.probs.cumsum(1))[torch.arange(3), x]
    assert (z <= upper + 1e-9).all()


def test_histogram_gaussianize_integrates_to_one_on_the_line():
    probs = torch.tensor([[0.6, 0.1, 0.3]], dtype=torch.float64)
    flow = histogram_layer(probs)
    # piecewise constant on each level (the midpoint rule is exact there), exponential tails of mass 1e-6 outside
    edges = torch.tensor([-40.0, 0.0, 1.0, 2.0, 3.0, 40.0], dtype=torch.float64)
    mass = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        h = (b - a) / 4000
        grid = a + h * (torch.arange(4000, dtype=torch.float64) + 0.5)
        mass += flow.log_prob(grid[:, None]).exp().sum().item() * h.item()
    assert mass == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: ElementwiseSpline(2, bins=1), "bins"),
        (lambda: ElementwiseSpline(0), "dim"),
        (lambda: HistogramGaussianize(torch.tensor([[0.5, 0.5, 0.0]])), "probs must all be > 0"),
        (lambda: HistogramGaussianize(torch.tensor([[0.5, 0.6]])), "probs must sum to 1"),
        (lambda: HistogramGaussianize(torch.zeros(2)), "probs must have shape"),
        (lambda: HistogramGaussianize(torch.full((2, 2), 0.5), tail=0.5), "tail"),
        (lambda: HistogramGaussianize.from_levels(torch.tensor([[0, 3]]), levels=3), "x must hold pixel levels"),
        (lambda: HistogramGaussianize.from_levels(torch.tensor([[0, 1]]), levels=3, alpha=0.0), "alpha"),
        (lambda: SplineCoupling(2, dropout=1.0), "dropout"),
        (lambda: AffineCoupling(2, dropout=-0.1), "dropout"),
        (lambda: Dequantized(torch.nn.Linear(2, 2), levels=3), "flow"),
        (lambda: Dequantized(realnvp(hidden=4), levels=0), "levels"),
        (lambda: digits_flow(torch.zeros(4, 3, dtype=torch.long), layers=0), "layers"),
        (lambda: digits_flow(torch.zeros(4, dtype=torch.long)), "data"),
    ],
)
def test_new_layers_refuse_bad_hyper_parameters_by_name(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_dequantized_model_bounds_the_discrete_likelihood_and_samples_levels():
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]], dtype=torch.float64)
    model = Dequantized(histogram_layer(probs), levels=3)
    x = torch.tensor([[0, 1], [2, 0], [1, 2]])
    exact = torch.log(probs[torch.arange(2), x]).sum(-1)  # log P(x) of the histogram model
    # a density that is constant on each level's cube makes Jensen's bound tight: elbo = log P(x) + 2 log(1 - 2 tail)
    torch.testing.assert_close(model.elbo(x), exact + 2 * math.log(1 - 2e-6), atol=1e-9, rtol=0)
    assert model.loss(x).item() == pytest.approx(-model.elbo(x).mean().item(), abs=1e-9)
    torch.manual_seed(0)
    samples = model.sample(20000)
    assert samples.dtype == torch.long and samples.min() >= 0 and samples.max() <= 2
    frequencies = torch.stack([(samples == k).double().mean(0) for k in range(3)], 1)  # (D, L)
    torch.testing.assert_close(frequencies, probs, atol=0.015, rtol=0)  # 4.5 binomial s.e. at n = 20000
    for bad in (torch.tensor([[0, 3]]), torch.tensor([[0.5, 1.0]]), torch.tensor([[0, 1, 2]])):
        with pytest.raises(ValueError, match="x must"):
            model.elbo(bad)


def test_digits_flow_shapes_density_and_inverse_on_the_digits():
    from gmlib.data import load_digits

    train = load_digits("train")[0]
    torch.manual_seed(0)
    flow = digits_flow(train)
    flow.eval()
    assert flow.dim == 64 and len(flow.transforms) == 1 + 2 * 6
    y = dequantize(train[:64], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        log_p = flow.log_prob(y)
        z, _ = flow.forward_and_log_det(y)
        back, _ = flow.inverse_and_log_det(z)
    assert log_p.shape == (64,) and torch.isfinite(log_p).all()
    # float32 round trip: z carries ~6e-8 relative error, stretched by 1 / density on the rarest levels
    torch.testing.assert_close(back, y, atol=2e-4, rtol=0)
    assert torch.equal(back.floor().long(), train[:64])
    samples = Dequantized(flow, levels=17).sample(8)
    assert samples.shape == (8, 64) and samples.min() >= 0 and samples.max() <= 16


def test_a_short_run_of_the_digits_flow_lowers_the_held_out_nll():
    import gmlib
    from gmlib.data import load_digits
    from gmlib.metrics import dequantized_nll

    train, test = load_digits("train")[0], load_digits("test")[0][:200]
    gmlib.seed_everything(0)
    flow = digits_flow(train, layers=2, hidden=32)
    flow.eval()
    before, _ = dequantized_nll(flow.log_prob, test, draws=2, generator=torch.Generator().manual_seed(0))
    gmlib.train(Dequantized(flow, levels=17), train, steps=150, batch_size=128, lr=1e-3, progress=False)
    after, se = dequantized_nll(flow.log_prob, test, draws=2, generator=torch.Generator().manual_seed(0))
    assert after < before - 5 and after < 106.4  # below the independent-pixel histogram model


# --- reverse-KL fitting (flows chapter, eq-flow-reverse-kl) ---------------------------------------------


def gaussian_log_target(mean: torch.Tensor, std: torch.Tensor):
    """log p~ of N(mean, diag std^2) without its normaliser: log Z = sum log(sqrt(2 pi) std)."""
    return lambda x: (-0.5 * ((x - mean) / std) ** 2).sum(-1)


def test_reverse_kl_fit_recovers_a_gaussian_target_and_its_log_normaliser():
    """q = an elementwise affine map of N(0, I) can equal N(m, diag s^2): the fit must find it, KL -> 0."""
    torch.manual_seed(0)
    mean, std = torch.tensor([1.5, -2.0]), torch.tensor([0.5, 2.0])
    flow = Flow(base=standard_normal(2), transforms=[ElementwiseAffine(2)], direction="generative")
    fit = ReverseKLFit(flow, gaussian_log_target(mean, std))
    gmlib.train(fit, flow.base(), steps=1000, batch_size=256, lr=0.02, progress=False)
    x = flow.sample(20000)  # Adam's last steps jitter the parameters: a tenth of a standard deviation
    assert ((x.mean(0) - mean).abs() < 0.1 * std).all()
    assert ((x.std(0) / std).log().abs() < 0.1).all()
    log_z = torch.log(math.sqrt(2 * math.pi) * std).sum()
    with torch.no_grad():
        loss = fit.loss(flow.base().sample((20000,)))  # eval mode after train: beta = 1
    assert abs(loss.item() + log_z.item()) < 0.03  # E_q[log q - log p~] = KL - log Z = -log Z


def test_reverse_kl_fit_anneals_the_inverse_temperature_in_training_calls_only():
    torch.manual_seed(1)
    flow = Flow(base=standard_normal(2), transforms=[ElementwiseAffine(2)], direction="generative")
    target = gaussian_log_target(torch.zeros(2), torch.ones(2))
    fit = ReverseKLFit(flow, target, anneal_steps=10)
    z0 = torch.randn(64, 2)
    x, log_q = flow.push_and_log_prob(z0)
    assert fit.beta() == pytest.approx(0.01)
    fit.train()
    first = fit.loss(z0)
    torch.testing.assert_close(first, (log_q - 0.01 * target(x)).mean())
    for _ in range(4):
        fit.loss(z0)
    assert int(fit.calls) == 5 and fit.beta() == pytest.approx(0.01 + 0.99 * 0.5)
    fit.eval()
    torch.testing.assert_close(fit.loss(z0), (log_q - target(x)).mean())  # evaluation: the true objective
    assert int(fit.calls) == 5
    fit.train()
    for _ in range(10):
        fit.loss(z0)
    assert fit.beta() == 1.0
    assert ReverseKLFit(flow, target).beta() == 1.0  # no annealing


def test_flow_reverse_kl_is_the_monte_carlo_objective():
    flow = planar_flow(layers=3, direction="generative")
    target = gaussian_log_target(torch.ones(2), torch.ones(2))
    torch.manual_seed(2)
    value = flow.reverse_kl(target, 500)
    torch.manual_seed(2)
    x, log_q = flow.rsample_and_log_prob(500)
    torch.testing.assert_close(value, (log_q - target(x)).mean())
    assert flow.sample(1).shape == (1, 2) and flow.rsample_and_log_prob(1)[1].shape == (1,)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ReverseKLFit(torch.nn.Linear(2, 2), lambda x: x.sum(-1)), "flow"),
        (lambda: ReverseKLFit(planar_flow(layers=1), "not callable"), "log_target"),
        (lambda: ReverseKLFit(planar_flow(layers=1), lambda x: x.sum(-1), anneal_steps=-1), "anneal_steps"),
    ],
)
def test_reverse_kl_fit_refuses_bad_arguments_by_name(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_replicated_planar_layers_are_independent_flows():
    """planar_flow(replicas=R) on (n, R, D) equals R separate flows, one per replica's parameters."""
    torch.manual_seed(3)
    together = planar_flow(layers=3, direction="generative", replicas=4).double()
    x = torch.randn(5, 4, 2, dtype=torch.float64)
    joint = together.log_prob(x)  # (5, 4)
    assert joint.shape == (5, 4)
    for r in range(4):
        alone = planar_flow(layers=3, direction="generative").double()
        with torch.no_grad():
            for one, many in zip(alone.parameters(), together.parameters(), strict=True):
                one.copy_(many[r])
        torch.testing.assert_close(joint[:, r], alone.log_prob(x[:, r]))
    with pytest.raises(ValueError, match="x must have shape"):
        together.log_prob(x[None])  # (1, n, R, D): not a batch of vectors


def test_flow_loss_is_the_mean_negative_log_likelihood():
    """A permutation keeps N(0, I): the loss must be the mean of -log N(x; 0, I) (scipy's)."""
    flow = Flow(base=standard_normal(3), transforms=[Permute(3)])
    x = torch.randn(50, 3)
    expected = -scipy.stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(x.numpy()).mean()
    assert flow.loss(x).item() == pytest.approx(expected, rel=1e-5)


def test_dequantized_samples_are_clamped_into_the_levels():
    """Mass the flow puts beyond [0, L) lands on the end levels, never outside 0..L-1."""
    layer = ElementwiseAffine(2)
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
    flow = Flow(base=standard_normal(2), transforms=[layer])  # p = N(0, I): half the mass below 0
    samples = Dequantized(flow, levels=3).sample(4000)
    assert samples.min() == 0 and samples.max() == 2
    assert samples.dtype == torch.int64


@pytest.mark.parametrize(
    ("base", "match"),
    [
        (Normal(torch.zeros(2), torch.zeros(2), validate_args=False), "base scale"),
        (Normal(torch.zeros(2), torch.full((2,), math.inf), validate_args=False), "base scale"),
        (Independent(Normal(torch.zeros(3, 2), torch.ones(3, 2)), 1), "base must be"),  # a batch of 3 bases
    ],
)
def test_flow_refuses_a_degenerate_or_batched_base(base, match):
    with pytest.raises(ValueError, match=match):
        Flow(base=base, transforms=[Permute(2)])


def test_replicated_flow_samples_one_vector_per_replica():
    flow = planar_flow(layers=2, direction="generative", replicas=3)
    x, log_q = flow.push_and_log_prob(torch.randn(7, 3, 2))
    assert x.shape == (7, 3, 2) and log_q.shape == (7, 3)
    z, ladj = flow.forward_and_log_det(x)
    assert ladj.shape == (7, 3)
    back, _ = flow.inverse_and_log_det(z)
    torch.testing.assert_close(back, x, atol=1e-4, rtol=0)

"""Tests of gmlib.models.flows: every transform inverts, its log-determinant is the autograd Jacobian's,
the reparameterisations keep it invertible, and every flow's density integrates to 1."""

import math

import numpy as np
import pytest
import scipy.optimize
import torch
from torch.autograd.functional import jacobian
from torch.distributions import ComposeTransform, TransformedDistribution

from gmlib.models.flows import (
    AffineCoupling,
    ElementwiseAffine,
    Flow,
    Inverse,
    Permute,
    Planar,
    PlanarTransform,
    Radial,
    RadialTransform,
    SplineCoupling,
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

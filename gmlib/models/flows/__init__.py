"""Normalizing flows (book chapter "Normalizing flows", the flows chapter).

The package's modules, one job each: ``transform`` (the base class of every
layer, and ``Inverse``), ``planar_radial``, ``coupling`` (affine and spline
couplings), ``elementwise`` (permutation, elementwise affine and spline, the
histogram layer), ``flow`` (``Flow`` and its reverse-KL and dequantised fits)
and ``factories`` (ready-made flows); every name is re-exported here.

A flow is a bijection T: x -> z from data space onto the space of a simple base
density p_Z. The change of variables (eq-change-of-variables)

    log p_X(x) = log p_Z(T(x)) + log |det dT/dx (x)|

gives an exact log-likelihood, and for a composition T = T_K o ... o T_1 the
log-determinants of the parts add up (eq-flow-composition).

Design (zuko's, on ``torch.distributions``):

* Every bijection is a ``torch.distributions.Transform`` on vectors (..., D):
  domain and codomain ``independent(real, 1)``, ``log_abs_det_jacobian(x, y)
  -> (...,)``. ``PlanarTransform`` (eq-planar), ``RadialTransform``
  (eq-radial), ``AffineCouplingTransform`` (eq-affine-coupling),
  ``SplineCouplingTransform`` (eq-spline), ``PermutationTransform``,
  ``ElementwiseAffineTransform``, ``ElementwiseSplineTransform`` (eq-spline per
  coordinate) and ``HistogramGaussianizeTransform`` (eq-histogram-gaussianize).
  A Transform owns no parameters; it refuses parameters that break
  invertibility and, as an inverse, non-finite input.
* Parameters live in one small ``nn.Module`` per layer (``Planar``, ``Radial``,
  ``AffineCoupling``, ``SplineCoupling``, ``Permute``, ``ElementwiseAffine``,
  ``ElementwiseSpline``, and the fixed ``HistogramGaussianize``)
  whose ``forward()`` builds the Transform from the current parameter values
  (zuko's "lazy transform"), so an optimiser trains the module and every call
  sees the updated bijection. The reparameterisations that keep a layer
  invertible whatever the raw parameters are (planar u_hat, radial
  beta >= -alpha, the spline's softmax and softplus) live in these modules.
* ``Flow(base=..., transforms=[...])`` lists its layers in the *normalizing*
  direction x -> z, as zuko's ``NormalizingFlow`` does: ``log_prob`` runs them
  forward, ``sample`` inverts them.
* Direction. Rezende & Mohamed (2015) write planar and radial layers in the
  *generative* direction, x = f_K o ... o f_1 (z0), and fit them by reverse KL,
  which needs only f_k forward. Rather than a second model class, the layer
  ``Inverse(layer)`` builds ``layer().inv`` (torch's own inverse transform),
  and ``Flow(..., direction="generative")`` reads its list as f_1, ..., f_K and
  stores ``Inverse(f_K), ..., Inverse(f_1)``. One ``Flow`` then serves both
  uses: ``rsample_and_log_prob`` evaluates the f_k forward (closed form, cheap,
  reparameterised) and ``log_prob`` their inverses (for planar layers a
  safeguarded Newton solve). The direction only decides which way is cheap;
  the density is the same formula.

* Integer data (pixel levels) meet a density through dequantisation:
  ``Dequantized(flow, levels=L)`` trains the flow on y = x + u, u ~ U[0, 1)^D,
  whose -log p(y) bounds the discrete NLL from above (eq-dequantization);
  ``digits_flow`` is the flows chapter's flow for the 8x8 digits.

Each Transform computes its log-determinant with its output (``call_and_ladj``,
as in zuko) and remembers it for the ``log_abs_det_jacobian(x, y)`` call that
follows, so a coupling layer runs its conditioner once per pass.
"""

from gmlib.models.flows.coupling import (
    AffineCoupling,
    AffineCouplingTransform,
    SplineCoupling,
    SplineCouplingTransform,
    coupling_mask,
    rational_quadratic_spline,
    spline_knots,
)
from gmlib.models.flows.elementwise import (
    ElementwiseAffine,
    ElementwiseAffineTransform,
    ElementwiseSpline,
    ElementwiseSplineTransform,
    HistogramGaussianize,
    HistogramGaussianizeTransform,
    PermutationTransform,
    Permute,
)
from gmlib.models.flows.factories import digits_flow, planar_flow, radial_flow, realnvp, spline_flow
from gmlib.models.flows.flow import DIRECTIONS, Dequantized, Direction, Flow, ReverseKLFit, standard_normal
from gmlib.models.flows.planar_radial import Planar, PlanarTransform, Radial, RadialTransform, planar_u_hat
from gmlib.models.flows.transform import Inverse

__all__ = [
    "AffineCoupling",
    "AffineCouplingTransform",
    "DIRECTIONS",
    "Dequantized",
    "Direction",
    "ElementwiseAffine",
    "ElementwiseAffineTransform",
    "ElementwiseSpline",
    "ElementwiseSplineTransform",
    "Flow",
    "HistogramGaussianize",
    "HistogramGaussianizeTransform",
    "Inverse",
    "PermutationTransform",
    "Permute",
    "Planar",
    "PlanarTransform",
    "Radial",
    "RadialTransform",
    "ReverseKLFit",
    "SplineCoupling",
    "SplineCouplingTransform",
    "coupling_mask",
    "digits_flow",
    "planar_flow",
    "planar_u_hat",
    "radial_flow",
    "rational_quadratic_spline",
    "realnvp",
    "spline_flow",
    "spline_knots",
    "standard_normal",
]

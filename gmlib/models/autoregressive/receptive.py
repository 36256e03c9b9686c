"""Which pixels a conditional reads: the receptive field, measured by gradients (chapter "Autoregressive models")."""

import copy

import torch
from torch.nn.functional import one_hot

from gmlib.models.autoregressive.base import AutoregressiveModel
from gmlib.validation import require_int, require_positive

#: A dependence counts when its gradient exceeds this fraction of the largest one (see ``receptive_field``).
RECEPTIVE_TOLERANCE = 1e-10


@torch.enable_grad()
def receptive_field(
    model: AutoregressiveModel,
    pixel: int,
    *,
    x: torch.Tensor | None = None,
    samples: int = 16,
    tolerance: float = RECEPTIVE_TOLERANCE,
    seed: int = 0,
) -> torch.Tensor:
    """The input pixels that the logits of ``pixel`` depend on: -> (D,) bool.

    The logits are differentiated with respect to the one-hot code of the
    input, a continuous relaxation of the levels (``logits_from_onehot``),
    at the images ``x`` (S, D), or, when it is None, at ``samples`` random
    images (levels uniform, seeded by ``seed``), after a random projection of
    the L logits onto one number (so that no dependence cancels). Pixel j is in
    the field when its largest absolute gradient, over the images and its L
    one-hot entries, exceeds ``tolerance`` times the largest over all pixels.

    The model is copied and evaluated in float64 and eval mode (no dropout), so
    a dependence that the architecture forbids gives a gradient that is exactly
    zero (a masked weight, a masked attention score) or at rounding level (about
    1e-16 relative), while a dependence that a random or trained network has
    is orders of magnitude above the tolerance 1e-10. The gradient at a finite
    set of points misses a dependence only where every image turns all its
    paths off (every ReLU on them inactive): the field is that of the function
    the network computes near those images, which for a ReLU network with few
    units per path can be smaller than its architecture allows (pass data
    images as ``x`` to measure it where the model is used). A pixel whose
    logits depend on no input (the first in the order) has an empty field.
    """
    if not isinstance(model, AutoregressiveModel):
        raise ValueError(f"model must be an AutoregressiveModel, got {type(model).__name__}")
    require_int("pixel", pixel, low=0)
    if pixel >= model.dim:
        raise ValueError(f"pixel must be in 0..{model.dim - 1}, got {pixel}")
    require_int("samples", samples, low=1)
    require_positive("tolerance", tolerance)
    probe = copy.deepcopy(model).double().eval()
    generator = torch.Generator().manual_seed(seed)
    if x is None:
        x = torch.randint(model.levels, (samples, model.dim), generator=generator)
    x = model.checked_input(x).cpu()
    weights = torch.randn(model.levels, generator=generator, dtype=torch.float64)
    device = model.order.device
    onehot = one_hot(x, model.levels).double().to(device).requires_grad_(True)  # (S, D, L)
    projected = probe.logits_from_onehot(onehot)[:, pixel] @ weights.to(device)  # (S,)
    (gradient,) = torch.autograd.grad(projected.sum(), onehot)
    sensitivity = gradient.abs().amax(dim=(0, 2))  # (D,)
    largest = sensitivity.max()
    if largest == 0:
        return torch.zeros(model.dim, dtype=torch.bool, device=device)
    return sensitivity > tolerance * largest

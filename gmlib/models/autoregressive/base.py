"""The part every autoregressive model shares (chapter "Autoregressive models").

A model of D pixels with L levels each is a categorical distribution per pixel
given the pixels before it in an ordering (``order``): pixel ``order[k]`` is
generated k-th. By the chain rule (eq-ar-chain-rule)

    log p(x) = sum_k log p(x_{order[k]} | x_{order[0]}, ..., x_{order[k-1]}),

exact and normalised whatever the network, as long as the logits of pixel
``order[k]`` depend only on the pixels of positions < k (the autoregressive
property). A subclass supplies the network as ``logits_from_onehot``: a float
one-hot code of the image (batch, D, L) -> logits (batch, D, L). Reading the
levels through a one-hot code gives every model a continuous input, so the
gradients that ``receptive_field`` measures exist for all of them.
"""

import torch
from torch import nn
from torch.nn.functional import log_softmax, one_hot

from gmlib.validation import require_int, require_levels, require_nonempty, require_shape


def checked_order(order: object, dim: int) -> torch.Tensor:
    """``order`` as an int64 tensor (D,), checked to be a permutation of 0..D-1; None gives raster order."""
    if order is None:
        return torch.arange(dim)
    try:
        values = torch.as_tensor(order)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"order must be a permutation of 0..{dim - 1}, got {order!r}") from None
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool or values.shape != (dim,):
        raise ValueError(f"order must be a permutation of 0..{dim - 1} (D = {dim} integers), got {order!r}")
    values = values.long()
    if not torch.equal(values.sort().values, torch.arange(dim)):
        raise ValueError(f"order must be a permutation of 0..{dim - 1}, got {values.tolist()}")
    return values


class AutoregressiveModel(nn.Module):
    """A categorical distribution over images x (batch, D) with levels 0..L-1, one pixel at a time.

    Args:
        dim: D, the number of pixels (64 for the 8x8 digits).
        levels: L >= 2, the levels of each pixel (17 for the digits).
        order: a permutation of range(D), the generation order (pixel
            ``order[k]`` comes k-th), or None for raster order 0..D-1. Only
            models that support other orderings pass it.

    Subclasses implement ``logits_from_onehot(onehot (batch, D, L)) -> (batch, D, L)``
    whose output for pixel ``order[k]`` depends only on the inputs of pixels
    ``order[:k]``. This class provides ``logits``, ``conditionals``,
    ``log_prob`` (exact, eq-ar-chain-rule), ``loss`` (eq-ar-cross-entropy:
    the mean negative log-likelihood, nats per image) and ``sample``.
    """

    def __init__(self, *, dim: int, levels: int, order: object = None) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        require_int("levels", levels, low=2)
        self.dim, self.levels = dim, levels
        self.register_buffer("order", checked_order(order, dim))
        self.register_buffer("rank", torch.argsort(self.order))  # rank[i]: the position at which pixel i comes

    # ----- the network ------------------------------------------------------------------------------------------

    def logits_from_onehot(self, onehot: torch.Tensor) -> torch.Tensor:
        """The network: float one-hot code (batch, D, L) -> logits (batch, D, L); subclasses implement it."""
        raise NotImplementedError

    def onehot(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, D) levels, checked -> its one-hot code (batch, D, L) in the model's float dtype."""
        x = self.checked_input(x)
        return one_hot(x, self.levels).to(self._dtype())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, D) integer levels (floats holding integers accepted) -> logits (batch, D, L).

        Logits of pixel ``order[k]`` depend only on x at pixels ``order[:k]``.
        """
        return self.logits_from_onehot(self.onehot(x))

    def conditionals(self, x: torch.Tensor) -> torch.Tensor:
        """p(x_i = l | x_<i) for every pixel i and level l: x (batch, D) -> (batch, D, L), rows summing to 1."""
        return self.logits(x).softmax(-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = sum_i log p(x_i | x_<i) (eq-ar-chain-rule), exact: x (batch, D) -> (batch,)."""
        x = self.checked_input(x)
        log_conditionals = log_softmax(self.logits_from_onehot(one_hot(x, self.levels).to(self._dtype())), dim=-1)
        return log_conditionals.gather(-1, x[..., None]).squeeze(-1).sum(-1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The mean negative log-likelihood in nats per image (eq-ar-cross-entropy): x (batch, D) -> scalar."""
        return -self.log_prob(x).mean()

    # ----- sampling ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n images by the chain rule, pixel ``order[0]`` first: -> (n, D) int64.

        D network passes, each reading the logits of the next pixel in the
        order (subclasses may override it with a faster pass). Runs in eval
        mode (no dropout) and restores the module's mode afterwards; each
        pixel takes one uniform draw from ``generator`` (inverse CDF), so a
        seeded generator reproduces the samples.
        """
        require_int("n", n, low=1)
        with evaluating(self):
            x = torch.zeros(n, self.dim, dtype=torch.long, device=self.order.device)
            onehot = one_hot(x, self.levels).to(self._dtype())  # (n, D, L)
            for i in self.order.tolist():
                logits = self.logits_from_onehot(onehot)[:, i]  # (n, L)
                x[:, i] = draw_levels(logits, generator)
                onehot[:, i] = one_hot(x[:, i], self.levels).to(onehot.dtype)
        return x

    # ----- helpers ----------------------------------------------------------------------------------------------

    def _dtype(self) -> torch.dtype:
        parameter = next(self.parameters(), None)
        return parameter.dtype if parameter is not None else torch.get_default_dtype()

    def checked_input(self, x: torch.Tensor) -> torch.Tensor:
        """x (batch, D) checked (shape, non-empty, levels 0..L-1) -> int64 on the model's device."""
        require_shape("x", x, (None, self.dim))
        require_nonempty("x", x)
        require_levels("x", x, self.levels)
        return x.long().to(self.order.device)


class evaluating:
    """A context in which ``module`` is in eval mode; its former mode (train or eval) is restored on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.was_training = module, module.training

    def __enter__(self) -> nn.Module:
        self.module.eval()
        return self.module

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)


def draw_levels(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One level per row of logits (n, L) -> (n,) int64, by the inverse CDF of one uniform draw per row.

    The CDF is accumulated in float64, and a level of probability zero is never
    drawn; the uniform draws come from ``generator`` (on its own device), or
    from the global generator of the logits' device when it is None.
    """
    probs = logits.double().softmax(-1)  # (n, L)
    cdf = probs.cumsum(-1)
    device = generator.device if generator is not None else logits.device
    u = torch.rand(logits.shape[0], 1, generator=generator, dtype=torch.float64, device=device)
    u = u.to(logits.device) * cdf[:, -1:]
    level = (cdf <= u).sum(-1)  # the first level whose CDF exceeds u
    return level.clamp(max=logits.shape[-1] - 1)

"""The two contracts every gmlib model meets; the one trainer relies on nothing else.

A *likelihood-style* model (VAE, flow, diffusion, autoregressive, EBM, mixture)
minimises one scalar ``loss(x)``. An *adversarial* model (the GAN family) has a
generator and a discriminator with a loss each, and the trainer alternates them.

The contracts live beside the trainer (``gmlib.train``), not among the models,
so that the trainer imports nothing model-specific. ``is_generative`` and
``is_adversarial`` are the checks the trainer makes: they look attributes up
with ``getattr``, which sees an ``nn.Module``'s submodules, whereas
``isinstance`` against a runtime-checkable protocol does not from Python 3.12
on (it uses ``inspect.getattr_static``, and ``generator`` and ``discriminator``
live in ``Module._modules``).
"""

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class GenerativeModel(Protocol):
    """A model trained by minimising one objective.

    ``loss(x)``: x (batch, *event) -> scalar, the quantity training minimises
    (for example the mean negative log-likelihood or negative ELBO).
    ``sample(n)``: -> (n, *event), draws from the model.
    Models with an exact density add ``log_prob(x) -> (batch,)``; models with a
    bound add ``elbo(x) -> (batch,)``, as ``torch.distributions`` does.
    """

    def loss(self, x: torch.Tensor) -> torch.Tensor: ...

    def sample(self, n: int) -> torch.Tensor: ...


@runtime_checkable
class AdversarialModel(Protocol):
    """A generator/discriminator pair (book chapter "GANs").

    ``discriminator_loss(x)`` and ``generator_loss(x)`` each take a real batch
    x (batch, *event) and return the scalar that *their own* player minimises;
    the trainer steps ``discriminator`` parameters on the first and
    ``generator`` parameters on the second.
    """

    generator: nn.Module
    discriminator: nn.Module

    def discriminator_loss(self, x: torch.Tensor) -> torch.Tensor: ...

    def generator_loss(self, x: torch.Tensor) -> torch.Tensor: ...

    def sample(self, n: int) -> torch.Tensor: ...


def is_generative(model: object) -> bool:
    """True when ``model`` has callable ``loss`` and ``sample`` (the ``GenerativeModel`` contract)."""
    return all(callable(getattr(model, name, None)) for name in ("loss", "sample"))


def is_adversarial(model: object) -> bool:
    """True when ``model`` meets the ``AdversarialModel`` contract: two player modules and a loss for each."""
    players = all(isinstance(getattr(model, name, None), nn.Module) for name in ("generator", "discriminator"))
    losses = ("discriminator_loss", "generator_loss", "sample")
    return players and all(callable(getattr(model, name, None)) for name in losses)

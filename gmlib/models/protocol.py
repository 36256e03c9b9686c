"""The two contracts every gmlib model meets; the one trainer relies on nothing else.

A *likelihood-style* model (VAE, flow, diffusion, autoregressive, EBM, mixture)
minimises one scalar ``loss(x)``. An *adversarial* model (the GAN family) has a
generator and a discriminator with a loss each, and the trainer alternates them.
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

"""A network energy on a box, trained by contrastive divergence (chapter "Energy-based models").

p_theta(x) = exp(-E_theta(x)) / Z_theta on the box [-box, box]^d. Training
follows the likelihood gradient (eq-ebm-gradient),
E_data[grad E] - E_model[grad E], estimating the model's expectation with
short-run Langevin chains that persist between steps (Tieleman 2008; Du &
Mordatch 2019), a small L2 penalty on the energies keeping them in range.
"""

import math

import torch
from torch import nn

from gmlib.mcmc import langevin
from gmlib.metrics import grid_2d
from gmlib.models.nets import mlp
from gmlib.validation import (
    require_finite,
    require_fraction,
    require_int,
    require_nonnegative,
    require_positive,
    require_shape,
)


class EnergyModel(nn.Module):
    """An energy E_theta: R^d -> R and its Gibbs density on the box [-box, box]^d.

    ``loss(x)`` is the contrastive-divergence surrogate
    mean E(x_data) - mean E(x_model) + regularization * (mean E(x_data)^2 + mean E(x_model)^2),
    whose parameter gradient is the likelihood gradient with the model's
    expectation replaced by ``chain_steps`` Langevin steps of size
    ``step_size`` from a persistent buffer of ``buffer`` chains (a fraction
    ``reinit`` of them restarted uniformly in the box each step).
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        hidden: int = 64,
        layers: int = 2,
        box: float = 4.0,
        buffer: int = 1000,
        chain_steps: int = 20,
        step_size: float = 0.01,
        reinit: float = 0.05,
        regularization: float = 0.1,
    ) -> None:
        super().__init__()
        require_int("dim", dim, low=1)
        require_int("buffer", buffer, low=1)
        require_int("chain_steps", chain_steps, low=1)
        require_positive("box", box)
        require_positive("step_size", step_size)
        require_fraction("reinit", reinit)
        require_nonnegative("regularization", regularization)
        self.dim, self.box = dim, float(box)
        self.chain_steps, self.step_size = chain_steps, float(step_size)
        self.reinit, self.regularization = float(reinit), float(regularization)
        self.net = mlp(inputs=dim, outputs=1, hidden=hidden, layers=layers, smooth=True)
        self.register_buffer("chains", self._uniform(buffer, torch.device("cpu")))

    def _uniform(self, n: int, device: torch.device) -> torch.Tensor:
        return (torch.rand(n, self.dim, device=device) * 2 - 1) * self.box

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E_theta(x): x (batch, dim) -> (batch,)."""
        require_shape("x", x, (None, self.dim))
        return self.net(x).squeeze(-1)

    def negatives(self, n: int) -> torch.Tensor:
        """Advance n chains of the persistent buffer and return their states (n, dim), detached."""
        require_int("n", n, low=1)
        index = torch.randint(self.chains.shape[0], (n,), device=self.chains.device)
        start = self.chains[index]
        fresh = torch.rand(n, 1, device=start.device) < self.reinit
        start = torch.where(fresh, self._uniform(n, start.device), start)
        x = langevin(start, energy=self.energy, step_size=self.step_size, steps=self.chain_steps).x
        x = x.clamp(-self.box, self.box)  # the model lives on the box
        self.chains[index] = x
        return x

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Contrastive divergence on a batch x (batch, dim): a scalar whose gradient estimates the NLL's."""
        require_shape("x", x, (None, self.dim))
        require_finite("x", x)
        negatives = self.negatives(x.shape[0])
        e_data, e_model = self.energy(x), self.energy(negatives)
        penalty = self.regularization * (e_data**2 + e_model**2).mean()
        return e_data.mean() - e_model.mean() + penalty

    def log_partition(self, *, n: int = 200) -> float:
        """log Z_theta by the midpoint rule on an n x n grid of the box (dim 2 only), in float64."""
        if self.dim != 2:
            raise ValueError(f"log_partition integrates on a 2D grid; this model has dim={self.dim}")
        grid, cell = grid_2d(lim=self.box, n=n)
        param = next(self.parameters())
        with torch.no_grad():
            energies = torch.cat([self.energy(chunk.to(param)) for chunk in grid.split(8192)]).double()
        return (torch.logsumexp(-energies, 0) + math.log(cell)).item()

    def log_prob(self, x: torch.Tensor, *, n: int = 200) -> torch.Tensor:
        """log p_theta(x) = -E(x) - log Z: x (batch, 2) -> (batch,), -inf outside the box; Z from ``log_partition``."""
        require_shape("x", x, (None, 2))
        require_finite("x", x)
        log_z = self.log_partition(n=n)
        with torch.no_grad():
            inside = (x.abs() <= self.box).all(1)
            value = -self.energy(x).double() - log_z
        return torch.where(inside, value, torch.full_like(value, -math.inf))

    def sample(self, n: int, *, steps: int = 500, step_size: float | None = None) -> torch.Tensor:
        """n draws (n, dim) from ``steps`` Langevin steps started uniformly in the box."""
        require_int("n", n, low=1)
        start = self._uniform(n, self.chains.device)
        eta = self.step_size if step_size is None else step_size
        chains = langevin(start, energy=self.energy, step_size=eta, steps=steps)
        return chains.x.clamp(-self.box, self.box).detach()

"""Restricted Boltzmann machines on binary data (chapter "Energy-based models", eq-rbm-energy).

E(v, h) = -b.v - c.h - v.W h over visible v in {0,1}^V and hidden h in
{0,1}^H (Smolensky 1986; Hinton 2002). Summing out h gives the free energy
F(v) = -b.v - sum_j softplus(c_j + v.W_j), and summing out v instead gives
Z = sum_h exp(c.h) prod_i (1 + exp(b_i + W_i.h)): 2^H terms, exact for a
few hidden units. Training follows the likelihood gradient with the model's
expectation from k Gibbs steps started at the data (CD-k), from persistent
chains (PCD, Tieleman 2008), or exactly (``estimator="exact"``).
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gmlib.validation import require_finite, require_int, require_positive, require_shape

RbmEstimator = Literal["cd", "pcd", "exact"]
RBM_ESTIMATORS: tuple[str, ...] = ("cd", "pcd", "exact")
MAX_EXACT_HIDDEN = 20  # 2^20 hidden states: the largest sum the exact methods attempt


class RBM(nn.Module):
    """Binary RBM with ``visible`` x ``hidden`` weights W, visible biases b, hidden biases c.

    ``loss(v)``: for "cd" and "pcd", mean F(v) - mean F(v_model), whose
    gradient is the CD / PCD estimate of the NLL gradient; for "exact", the
    mean NLL F(v) + log Z itself. ``log_prob`` and ``sample`` are exact (the
    hidden states are enumerated), so they need hidden <= 20.
    """

    def __init__(
        self,
        *,
        visible: int = 64,
        hidden: int = 12,
        estimator: RbmEstimator = "cd",
        gibbs_steps: int = 1,
        chains: int = 256,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        require_int("visible", visible, low=1)
        require_int("hidden", hidden, low=1)
        require_int("gibbs_steps", gibbs_steps, low=1)
        require_int("chains", chains, low=1)
        require_positive("init_std", init_std)
        if estimator not in RBM_ESTIMATORS:
            raise ValueError(f"estimator must be one of {RBM_ESTIMATORS}, got {estimator!r}")
        if estimator == "exact" and hidden > MAX_EXACT_HIDDEN:
            raise ValueError(f"estimator='exact' sums over 2^hidden states: hidden must be <= {MAX_EXACT_HIDDEN}")
        self.estimator, self.gibbs_steps = estimator, gibbs_steps
        self.W = nn.Parameter(init_std * torch.randn(visible, hidden))
        self.b = nn.Parameter(torch.zeros(visible))
        self.c = nn.Parameter(torch.zeros(hidden))
        self.register_buffer("chains", torch.bernoulli(torch.full((chains, visible), 0.5)))

    @property
    def visible(self) -> int:
        return self.W.shape[0]

    @property
    def hidden(self) -> int:
        return self.W.shape[1]

    def _checked(self, v: torch.Tensor) -> torch.Tensor:
        require_shape("v", v, (None, self.visible))
        require_finite("v", v)
        if not ((v == 0) | (v == 1)).all():
            raise ValueError("v must hold binary visible units, every entry 0 or 1")
        return v.to(self.W.dtype)

    def init_visible_bias(self, v: torch.Tensor) -> None:
        """Set b to the log-odds of each pixel's frequency in v (Hinton 2012, section 8.1): the independent model."""
        p = self._checked(v).mean(0).clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            self.b.copy_(torch.log(p) - torch.log1p(-p))

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)): v (batch, visible) -> (batch,)."""
        v = self._checked(v)
        return -v @ self.b - F.softplus(v @ self.W + self.c).sum(1)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """p(h_j = 1 | v) = sigmoid(c_j + v.W_j): (batch, visible) -> (batch, hidden)."""
        return torch.sigmoid(v @ self.W + self.c)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        """p(v_i = 1 | h) = sigmoid(b_i + W_i.h): (batch, hidden) -> (batch, visible)."""
        return torch.sigmoid(h @ self.W.T + self.b)

    def gibbs(self, v: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` rounds of block Gibbs sampling v -> h -> v from v (batch, visible); detached."""
        require_int("steps", steps, low=1)
        v = self._checked(v).detach()
        with torch.no_grad():
            for _ in range(steps):
                h = torch.bernoulli(self.hidden_probs(v))
                v = torch.bernoulli(self.visible_probs(h))
        return v

    def _hidden_states(self) -> torch.Tensor:
        """All 2^H hidden configurations (2^H, H), in the dtype of W."""
        if self.hidden > MAX_EXACT_HIDDEN:
            raise ValueError(f"summing over 2^hidden states needs hidden <= {MAX_EXACT_HIDDEN}, got {self.hidden}")
        codes = torch.arange(2**self.hidden, device=self.W.device)
        bits = 2 ** torch.arange(self.hidden, device=self.W.device)
        return (codes[:, None] & bits > 0).to(self.W.dtype)

    def hidden_log_weights(self) -> torch.Tensor:
        """log of exp(c.h) prod_i (1 + exp(b_i + W_i.h)) for every hidden state: (2^H,), eq. (eq-rbm-partition)."""
        h = self._hidden_states()
        return h @ self.c + F.softplus(h @ self.W.T + self.b).sum(1)

    def log_partition(self) -> torch.Tensor:
        """log Z, exact: a logsumexp over the 2^H hidden states (differentiable)."""
        return torch.logsumexp(self.hidden_log_weights(), 0)

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """Exact log p(v) = -F(v) - log Z: (batch, visible) -> (batch,)."""
        return -self.free_energy(v) - self.log_partition()

    def loss(self, v: torch.Tensor) -> torch.Tensor:
        """The training objective on a binary batch v (batch, visible): a scalar (see the class docstring)."""
        data_term = self.free_energy(v).mean()
        if self.estimator == "exact":
            return data_term + self.log_partition()
        if self.estimator == "cd":
            negatives = self.gibbs(v, self.gibbs_steps)
        else:
            negatives = self.gibbs(self.chains, self.gibbs_steps)
            self.chains.copy_(negatives)
        return data_term - self.free_energy(negatives).mean()

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws (n, visible): h from its marginal p(h) by enumeration, then v ~ p(v | h)."""
        require_int("n", n, low=1)
        with torch.no_grad():
            index = torch.distributions.Categorical(logits=self.hidden_log_weights()).sample((n,))
            h = self._hidden_states()[index]
            return torch.bernoulli(self.visible_probs(h))


def binarize(levels: torch.Tensor, *, threshold: int = 8) -> torch.Tensor:
    """Digits' gray levels 0..16 (batch, 64) -> float {0, 1}: 1 where level >= threshold."""
    return (levels >= threshold).float()

"""Markov chain Monte Carlo for unnormalised densities p(x) = exp(-E(x)) / Z (chapter "Energy-based models").

``langevin`` runs unadjusted Langevin dynamics (ULA, eq-ebm-langevin) or, with
``metropolis=True``, its Metropolis-adjusted version (MALA, Roberts & Tweedie
1996), on a batch of independent chains; it needs the energy (or only its
gradient, the negative *score*, for ULA) and never the partition function.
``r_hat`` is the split potential scale reduction of Gelman et al. (2013,
BDA3 section 11.4), the between-chain diagnostic; ``mode_switches`` counts
the crossings of a chain between two wells.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gmlib.validation import require_finite, require_int, require_nonempty, require_positive, require_shape

EnergyFn = Callable[[torch.Tensor], torch.Tensor]  # x (batch, d) -> E(x) (batch,)
ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # x (batch, d) -> grad log p(x) (batch, d)


class SamplingDiverged(RuntimeError):
    """An energy or a state became NaN or infinite during sampling; the message names the step."""


@dataclass(frozen=True)
class Chains:
    """What ``langevin`` returns.

    ``x``: (batch, d) the states after the last step. ``trace``: (kept, batch, d)
    the states at steps 0, k, 2k, ... for ``record_every=k`` (step 0 is the
    start), or None. ``acceptance``: (batch,) the fraction of proposals each
    chain accepted (all ones for ULA, which accepts every move).
    """

    x: torch.Tensor
    trace: torch.Tensor | None
    acceptance: torch.Tensor


def _energy_and_grad(energy: EnergyFn, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) (batch,) and grad_x E(x) (batch, d) by autograd, touching no parameter's ``.grad``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = energy(x)
        if e.shape != x.shape[:1]:
            raise ValueError(f"energy(x) must have shape ({x.shape[0]},), got {tuple(e.shape)}")
        if not torch.isfinite(e).all():
            raise SamplingDiverged(f"the energy became NaN or infinite at step {step}")
        (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), grad


def langevin(
    x0: torch.Tensor,
    *,
    step_size: float,
    steps: int,
    energy: EnergyFn | None = None,
    score: ScoreFn | None = None,
    metropolis: bool = False,
    record_every: int = 0,
) -> Chains:
    """Run ``steps`` Langevin moves from ``x0`` (batch, d), one independent chain per row.

    Chapter "Energy-based models", eq. (eq-ebm-langevin): with step size eta,
    x' = x - eta grad E(x) + sqrt(2 eta) xi, xi ~ N(0, I). Pass ``energy``
    (gradients by autograd) or ``score`` = -grad E directly (a score network);
    ULA then samples p only up to an O(eta) bias. ``metropolis=True`` (MALA,
    needs ``energy``) accepts x' with probability
    min(1, p(x') q(x | x') / (p(x) q(x' | x))), q(x'|x) = N(x - eta grad E(x), 2 eta I),
    which makes p exactly stationary.

    Raises:
        ValueError: step_size <= 0, steps < 1, a wrong ``x0``, or not exactly
            one of ``energy`` and ``score`` (``energy`` for MALA).
        SamplingDiverged: a non-finite energy or state, naming the step.
    """
    require_positive("step_size", step_size)
    require_int("steps", steps, low=1)
    require_int("record_every", record_every, low=0)
    require_shape("x0", x0, (None, None))
    require_nonempty("x0", x0)
    if not x0.is_floating_point():
        raise ValueError(f"x0 must be a floating-point tensor, got {x0.dtype}")
    require_finite("x0", x0)
    if (energy is None) == (score is None):
        raise ValueError("pass exactly one of energy (an energy function) and score (its negative gradient)")
    if metropolis and energy is None:
        raise ValueError("metropolis=True needs energy: the acceptance ratio compares energies")

    def gradient(x: torch.Tensor, step: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        if energy is not None:
            return _energy_and_grad(energy, x, step)
        with torch.no_grad():
            grad = -score(x)
        if grad.shape != x.shape:
            raise ValueError(f"score(x) must have the shape of x, {tuple(x.shape)}, got {tuple(grad.shape)}")
        return None, grad

    noise_scale = math.sqrt(2 * step_size)
    x = x0.detach().clone()
    e, grad = gradient(x, 0)
    if not torch.isfinite(grad).all():
        raise SamplingDiverged("the gradient of the energy is NaN or infinite at step 0, the start")
    accepted = torch.zeros(x.shape[0], device=x.device)
    trace = [x.clone()] if record_every else []
    for step in range(1, steps + 1):
        mean = x - step_size * grad
        proposal = mean + noise_scale * torch.randn_like(x)
        e_new, grad_new = gradient(proposal, step)
        if not torch.isfinite(grad_new).all():
            raise SamplingDiverged(f"the gradient of the energy became NaN or infinite at step {step}")
        if metropolis:
            mean_back = proposal - step_size * grad_new
            log_q_forward = -((proposal - mean) ** 2).sum(1) / (4 * step_size)  # log q(x' | x) + const
            log_q_back = -((x - mean_back) ** 2).sum(1) / (4 * step_size)  # log q(x | x') + const
            log_ratio = e - e_new + log_q_back - log_q_forward
            accept = torch.rand_like(log_ratio).log() < log_ratio
            keep = accept[:, None]
            x = torch.where(keep, proposal, x)
            grad = torch.where(keep, grad_new, grad)
            e = torch.where(accept, e_new, e)
            accepted += accept.to(accepted.dtype)
        else:
            x, e, grad = proposal, e_new, grad_new
            accepted += 1
        if record_every and step % record_every == 0:
            trace.append(x.clone())
    if not torch.isfinite(x).all():
        raise SamplingDiverged(f"a state became NaN or infinite by step {steps}")
    return Chains(x=x, trace=torch.stack(trace) if trace else None, acceptance=accepted / steps)


def r_hat(chains: torch.Tensor) -> torch.Tensor:
    """Split R-hat of ``chains`` (m, n) or (m, n, d): one value, or one per coordinate (d,).

    Gelman et al. (2013, eq. 11.4): each of the m chains is split into halves
    of n // 2 draws (2m sequences); W is the mean within-sequence variance,
    B/n' the variance of the sequence means, and
    R-hat = sqrt(((n' - 1)/n' W + B/n') / W). Values near 1 say the sequences
    agree; the book flags R-hat > 1.01 (Vehtari et al. 2021).
    """
    require_finite("chains", chains)
    if chains.dim() not in (2, 3):
        raise ValueError(f"chains must have shape (chains, draws) or (chains, draws, d), got {tuple(chains.shape)}")
    if chains.shape[1] < 4:
        raise ValueError(f"chains must hold at least 4 draws each to split, got {chains.shape[1]}")
    half = chains.shape[1] // 2
    sequences = torch.cat([chains[:, :half], chains[:, -half:]], dim=0).double()  # (2m, n', ...)
    within = sequences.var(dim=1).mean(0)  # W
    between_over_n = sequences.mean(1).var(dim=0)  # B / n'
    pooled = (half - 1) / half * within + between_over_n
    if (within <= 0).any():
        raise ValueError("chains must vary within each half: a constant sequence has no variance to compare")
    return (pooled / within).sqrt()


def mode_switches(trace: torch.Tensor, *, threshold: float) -> torch.Tensor:
    """Crossings of each chain between x < -threshold and x > threshold: (batch,) counts.

    ``trace`` (steps, batch) holds one coordinate of every chain over time. A
    crossing is counted when a chain last seen beyond one threshold is next
    seen beyond the other (the band between them is hysteresis, so jitter
    around 0 is not a switch).
    """
    require_shape("trace", trace, (None, None))
    require_finite("trace", trace)
    require_positive("threshold", threshold)
    side = torch.where(trace > threshold, 1, torch.where(trace < -threshold, -1, 0))  # (steps, batch)
    switches = torch.zeros(trace.shape[1], dtype=torch.long, device=trace.device)
    last = torch.zeros_like(switches)
    for row in side:
        seen = row != 0
        switches += (seen & (last != 0) & (row != last)).long()
        last = torch.where(seen, row, last)
    return switches

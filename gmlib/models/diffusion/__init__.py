"""Diffusion models (book chapter "Diffusion").

The package's modules, one job each: ``schedule`` (``NoiseSchedule``, the frozen
float64 constants of the forward process and the Gaussians they define),
``denoisers`` (the networks that read x_t), ``gaussian``
(``GaussianDiffusion``: 1D Gaussian data, where every term is exact) and ``ddpm`` (``DDPM``: the bound
term by term, Algorithms 1 and 2, DDIM and classifier-free guidance); every
name is re-exported here.
"""

from gmlib.models.diffusion.ddpm import (
    DDPM,
    OBJECTIVES,
    PREDICTIONS,
    VARIANCES,
    ddim_timesteps,
    discretized_gaussian_log_prob,
    gaussian_kl,
    timestep_blocks,
)
from gmlib.models.diffusion.denoisers import Denoiser, level_posterior_logits, time_features
from gmlib.models.diffusion.gaussian import GaussianDiffusion
from gmlib.models.diffusion.schedule import NoiseSchedule

__all__ = [
    "DDPM",
    "OBJECTIVES",
    "PREDICTIONS",
    "VARIANCES",
    "Denoiser",
    "GaussianDiffusion",
    "NoiseSchedule",
    "ddim_timesteps",
    "discretized_gaussian_log_prob",
    "gaussian_kl",
    "level_posterior_logits",
    "time_features",
    "timestep_blocks",
]

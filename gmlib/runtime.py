"""Where computation runs and how it is made reproducible."""

import random

import numpy as np
import torch


def device() -> torch.device:
    """The device gmlib trains on: CUDA when present, otherwise the CPU.

    The library itself never calls ``.cuda()``: modules move with
    ``model.to(gmlib.device())`` and every tensor they create follows the
    device of their inputs and buffers.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way.

    CPU runs are bit-for-bit reproducible after this call; CUDA runs are
    reproducible up to the nondeterminism of cuBLAS/cuDNN kernels.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)

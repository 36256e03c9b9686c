"""Where computation runs and how it is made reproducible.

Every seed the book uses passes through ``replicate_seed``, which shifts it by
the environment variable ``GMLIB_SEED`` (an integer, default 0): a build with
``GMLIB_SEED=k`` is an independent replicate of the whole book, which is what
the seed sweep (``make sweep``) runs to check that each assertion holds for the
method, not for one run.
"""

import hashlib
import os
import random

import numpy as np
import torch

SEED_VARIABLE = "GMLIB_SEED"


def device() -> torch.device:
    """The device gmlib trains on: CUDA when present, otherwise the CPU.

    The library itself never calls ``.cuda()``: modules move with
    ``model.to(gmlib.device())`` and every tensor they create follows the
    device of their inputs and buffers.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def replicate() -> int:
    """The replicate number k that ``GMLIB_SEED`` selects (default 0)."""
    raw = os.environ.get(SEED_VARIABLE, "0").strip() or "0"
    try:
        k = int(raw)
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE} must be a non-negative integer, got {raw!r}") from None
    if k < 0:
        raise ValueError(f"{SEED_VARIABLE} must be a non-negative integer, got {raw!r}")
    return k


def replicate_seed(seed: int) -> int:
    """The seed actually used for ``seed`` in replicate ``GMLIB_SEED``.

    Replicate 0 uses ``seed`` itself; replicate k > 0 uses a 63-bit hash of
    (k, seed), so distinct (k, seed) pairs give unrelated random streams.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    k = replicate()
    if k == 0:
        return seed
    digest = hashlib.sha256(f"gmlib replicate {k} seed {seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``replicate_seed(seed)``, for draws that must not touch the global RNG."""
    return torch.Generator().manual_seed(replicate_seed(seed))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch with ``replicate_seed(seed)``; return ``generator(seed)``.

    CPU runs are bit-for-bit reproducible after this call (for one number of
    threads and one set of CPU kernels); CUDA runs are reproducible up to the
    nondeterminism of cuBLAS/cuDNN kernels.
    """
    effective = replicate_seed(seed)
    random.seed(effective)
    np.random.seed(effective % 2**32)
    torch.manual_seed(effective)
    return torch.Generator().manual_seed(effective)

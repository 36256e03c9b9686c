"""Data the chapters train on: toy densities known exactly, sklearn digits, MNIST.

Toy distributions are ``torch.distributions.Distribution`` objects, so every
chapter can evaluate the *true* ``log_prob`` and compare a trained model with
it. Nothing here downloads: digits ship inside scikit-learn, MNIST is read from
a folder the user provides.
"""

import gzip
import math
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal, constraints

from gmlib.validation import (
    require_finite,
    require_int,
    require_positive,
    require_probability_vector,
    require_shape,
    require_tensor,
)

Split = Literal["train", "val", "test"]

#: The split of sklearn's 1797 digits used by the best-known digits notebooks:
#: the first 1000 images train, the next 350 validate, the last 447 test.
DIGITS_SPLITS: dict[str, slice] = {"train": slice(0, 1000), "val": slice(1000, 1350), "test": slice(1350, 1797)}
DIGITS_LEVELS = 17  # pixel values 0..16
DIGITS_UNIFORM_NATS = 64 * math.log(DIGITS_LEVELS)  # 181.3 nats per image: the uniform baseline


def gaussian_mixture_1d(weights, means, stds) -> MixtureSameFamily:
    """A 1D Gaussian mixture with K components; samples and log_prob have event shape ()."""
    weights, means, stds = (torch.as_tensor(v, dtype=torch.float32) for v in (weights, means, stds))
    for name, v in (("weights", weights), ("means", means), ("stds", stds)):
        require_shape(name, v, (None,))
    if not weights.shape == means.shape == stds.shape:
        sizes = f"{weights.shape[0]}, {means.shape[0]}, {stds.shape[0]}"
        raise ValueError(f"weights, means and stds must have one entry per component, got {sizes}")
    require_probability_vector("weights", weights)
    if not (stds > 0).all():
        raise ValueError(f"stds must all be > 0, got {stds.tolist()}")
    return MixtureSameFamily(Categorical(probs=weights), Normal(means, stds))


def gaussian_ring(*, n_modes: int = 8, radius: float = 2.0, std: float = 0.05) -> MixtureSameFamily:
    """Equal-weight isotropic Gaussians on a circle, the GAN literature's 2D toy.

    Event shape (2,). ``log_prob`` is exact; ``mode_centers`` gives the means.
    """
    require_int("n_modes", n_modes, low=1)
    require_positive("radius", radius)
    require_positive("std", std)
    centers = ring_centers(n_modes=n_modes, radius=radius)
    components = Independent(Normal(centers, torch.full_like(centers, std)), 1)
    return MixtureSameFamily(Categorical(logits=torch.zeros(n_modes)), components)


def ring_centers(*, n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The (n_modes, 2) means of ``gaussian_ring``."""
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


ENERGY_NAMES: tuple[str, ...] = ("U1", "U2", "U3", "U4")


def rezende_energy(name: str, z: torch.Tensor, *, confine: bool = True) -> torch.Tensor:
    """The energy U(z) of Rezende & Mohamed (2015, Table 1) for z (..., 2) -> (...,); p(z) is exp(-U) / Z.

    U1 is a ring cut by two vertical modes; U2 a sine wave; U3 and U4 a sine
    wave split in two by a bump and by a step. As printed, U2..U4 constrain z2
    given z1 but not z1, so exp(-U) has infinite mass (the flows chapter proves
    it); ``confine=True`` adds the wall (z1 / 4)^8, nearly 0 on the paper's plotting
    box |z1| < 4 and steep outside, which makes Z finite. Z has no closed form:
    the flows chapter computes it by quadrature on a grid.
    """
    if name not in ENERGY_NAMES:
        raise ValueError(f"name must be one of {ENERGY_NAMES}, got {name!r}")
    if not isinstance(z, torch.Tensor) or z.shape[-1:] != (2,):
        raise ValueError(f"z must be a tensor of shape (..., 2), got {getattr(z, 'shape', type(z).__name__)}")
    z1, z2 = z[..., 0], z[..., 1]
    w1 = torch.sin(2 * math.pi * z1 / 4)
    if name == "U1":
        ring = 0.5 * ((z.norm(dim=-1) - 2) / 0.4) ** 2
        sides = torch.stack([-0.5 * ((z1 - 2) / 0.6) ** 2, -0.5 * ((z1 + 2) / 0.6) ** 2])
        return ring - torch.logsumexp(sides, dim=0)
    wall = (z1 / 4) ** 8 if confine else torch.zeros_like(z1)
    if name == "U2":
        return 0.5 * ((z2 - w1) / 0.4) ** 2 + wall
    if name == "U3":
        w2 = 3 * torch.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
        branches = torch.stack([-0.5 * ((z2 - w1) / 0.35) ** 2, -0.5 * ((z2 - w1 + w2) / 0.35) ** 2])
        return wall - torch.logsumexp(branches, dim=0)
    w3 = 3 * torch.sigmoid((z1 - 1) / 0.3)
    branches = torch.stack([-0.5 * ((z2 - w1) / 0.4) ** 2, -0.5 * ((z2 - w1 + w3) / 0.4) ** 2])
    return wall - torch.logsumexp(branches, dim=0)


class Checkerboard(Distribution):
    """Uniform density on the dark squares of a ``cells`` x ``cells`` board on [-side/2, side/2]^2.

    Event shape (2,). The density is ``2 / side^2`` on half the board and 0
    elsewhere, so the entropy is exactly ``log(side^2 / 2)`` nats.
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = False

    def __init__(self, *, cells: int = 4, side: float = 4.0, validate_args: bool | None = None) -> None:
        if not isinstance(cells, int) or cells < 2 or cells % 2:
            raise ValueError(f"cells must be an even int >= 2, got {cells!r}")
        require_positive("side", side)
        self.cells, self.side = cells, float(side)
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([2]), validate_args=validate_args)

    def _cell_index(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ij = torch.floor((x / self.side + 0.5) * self.cells).long()
        return ij[..., 0], ij[..., 1]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log density at ``value`` (..., 2): ``log(2 / side^2)`` on dark squares, ``-inf`` elsewhere.

        Cell (i, j) counts columns i and rows j from the corner (-side/2, -side/2);
        it is dark when i + j is even. The result has ``value``'s floating dtype
        and device; NaN is refused (it lies in no square), +-inf is outside the board.
        """
        require_tensor("value", value)
        if value.shape[-1:] != (2,):
            raise ValueError(f"value must have shape (..., 2), got {tuple(value.shape)}")
        if torch.isnan(value).any():
            raise ValueError(f"value must not be NaN, but {torch.isnan(value).sum().item()} of its entries are")
        dtype = value.dtype if value.is_floating_point() else torch.get_default_dtype()
        i, j = self._cell_index(value.to(dtype))
        inside = (i >= 0) & (i < self.cells) & (j >= 0) & (j < self.cells) & ((i + j) % 2 == 0)
        log_density = torch.tensor(math.log(2 / self.side**2), dtype=dtype, device=value.device)
        return torch.where(inside, log_density, torch.tensor(-math.inf, dtype=dtype, device=value.device))

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        """Draw (*sample_shape, 2): pick a dark square uniformly, then a point in it."""
        shape = torch.Size(sample_shape)
        n = math.prod(shape)
        dark = torch.tensor([(i, j) for i in range(self.cells) for j in range(self.cells) if (i + j) % 2 == 0])
        cell = dark[torch.randint(len(dark), (n,))]
        x = (cell + torch.rand(n, 2)) / self.cells * self.side - self.side / 2
        return x.reshape(*shape, 2)

    def entropy(self) -> torch.Tensor:
        """Exactly ``log(side^2 / 2)`` nats."""
        return torch.tensor(math.log(self.side**2 / 2))


def load_digits(split: Split = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's bundled 8x8 digits: images (n, 64) int64 in 0..16 and labels (n,).

    ``split`` is "train" (first 1000), "val" (next 350) or "test" (last 447),
    the split of the best-known digits notebooks, so numbers compare with theirs.
    """
    if split not in DIGITS_SPLITS:
        raise ValueError(f"split must be one of {sorted(DIGITS_SPLITS)}, got {split!r}")
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    part = DIGITS_SPLITS[split]
    images = torch.from_numpy(bunch.data[part].astype(np.int64))
    labels = torch.from_numpy(bunch.target[part].astype(np.int64))
    return images, labels


def dequantize(
    x: torch.Tensor, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """y = x + u with u ~ U[0, 1)^shape: integer levels x (...) made continuous (eq-dequantization), same shape.

    Level k then occupies the unit interval [k, k + 1), so a density p on the
    y's gives the levels the probability P(x) = int_{[0,1)^D} p(x + u) du, and by
    Jensen's inequality -log P(x) <= -E_u log p(x + u): the negative
    log-density of dequantised data is an upper bound on the discrete negative
    log-likelihood, in the same units and with no added constant
    (``gmlib.metrics.dequantized_nll``). ``dtype`` defaults to x's own when it
    is floating, to torch's default otherwise; ``generator`` (CPU or on x's
    device) makes the draw reproducible without touching the global RNG.
    """
    require_tensor("x", x)
    if x.is_floating_point():
        require_finite("x", x)
    dtype = dtype or (x.dtype if x.is_floating_point() else torch.get_default_dtype())
    device = x.device if generator is None else generator.device
    u = torch.rand(x.shape, generator=generator, dtype=dtype, device=device)
    return x.to(dtype) + u.to(x.device)


_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), plain or gzipped, into an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"{path} holds {len(body)} data bytes, but its header announces shape {shape}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


MNIST_FILES = {  # the IDX files of each split, plain or with ".gz"
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_mnist(root: str | Path, split: Literal["train", "test"] = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from the IDX files in ``root`` (plain or ``.gz``): images (n, 28, 28) uint8, labels (n,).

    Nothing is downloaded: put the four IDX files from the MNIST distribution in ``root``.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    arrays = []
    for stem in MNIST_FILES[split]:
        candidates = [Path(root) / stem, Path(root) / f"{stem}.gz"]
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            raise FileNotFoundError(
                f"MNIST file {stem} (or {stem}.gz) not found in {Path(root).resolve()}; gmlib never downloads data: "
                "copy the four MNIST IDX files into that folder, or use gmlib.data.load_digits()"
            )
        arrays.append(read_idx(found))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST {split} files disagree: images {images.shape}, labels {labels.shape}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))

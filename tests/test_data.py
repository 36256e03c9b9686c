import gzip
import math
import struct

import numpy as np
import pytest
import torch

from gmlib.data import (
    DIGITS_UNIFORM_NATS,
    Checkerboard,
    gaussian_mixture_1d,
    gaussian_ring,
    load_digits,
    load_mnist,
    read_idx,
    ring_centers,
)
from gmlib.metrics import grid_2d


def test_ring_density_integrates_to_one_and_samples_sit_on_the_modes():
    ring = gaussian_ring(n_modes=8, radius=2.0, std=0.1)
    points, area = grid_2d(lim=3.0, n=500)
    assert ring.log_prob(points.float()).exp().sum().item() * area == pytest.approx(1.0, abs=1e-3)
    x = ring.sample((4000,))
    nearest = torch.cdist(x, ring_centers()).min(1).values
    assert (nearest < 0.5).all()
    counts = torch.cdist(x, ring_centers()).argmin(1).bincount(minlength=8).float() / len(x)
    assert torch.allclose(counts, torch.full((8,), 1 / 8), atol=0.03)


def test_checkerboard_entropy_is_exact_and_density_normalised():
    board = Checkerboard(cells=4, side=4.0)
    assert board.entropy().item() == pytest.approx(math.log(8.0))
    points, area = grid_2d(lim=2.0, n=400)
    assert board.log_prob(points.float()).exp().sum().item() * area == pytest.approx(1.0, abs=1e-6)
    x = board.sample((5000,))
    assert torch.isfinite(board.log_prob(x)).all()
    assert (-board.log_prob(x)).mean().item() == pytest.approx(board.entropy().item())
    assert board.log_prob(torch.tensor([[0.5, -0.5]])).item() == -math.inf  # a light square


def test_one_dimensional_mixture_matches_its_definition():
    mixture = gaussian_mixture_1d([0.3, 0.7], [-1.0, 2.0], [0.5, 1.0])
    x = torch.linspace(-3, 4, 11)
    by_hand = (
        0.3 * torch.distributions.Normal(-1.0, 0.5).log_prob(x).exp()
        + 0.7 * torch.distributions.Normal(2.0, 1.0).log_prob(x).exp()
    )
    assert torch.allclose(mixture.log_prob(x).exp(), by_hand, atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "stds", "message"),
    [([0.5, 0.6], [1.0, 1.0], "sum to 1"), ([-0.5, 1.5], [1.0, 1.0], "non-negative"), ([0.5, 0.5], [1.0, 0.0], "stds")],
)
def test_bad_mixtures_are_refused(weights, stds, message):
    with pytest.raises(ValueError, match=message):
        gaussian_mixture_1d(weights, [0.0, 1.0], stds)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"n_modes": 0}, "n_modes"), ({"std": -1.0}, "std"), ({"radius": float("nan")}, "radius")]
)
def test_bad_ring_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gaussian_ring(**kwargs)


def test_digits_split_is_the_standard_one():
    sizes = {split: load_digits(split)[0].shape for split in ("train", "val", "test")}
    assert sizes == {"train": (1000, 64), "val": (350, 64), "test": (447, 64)}
    test_images, test_labels = load_digits("test")
    assert test_images.dtype == torch.int64 and test_images.min() >= 0 and test_images.max() <= 16
    assert set(test_labels.tolist()) == set(range(10))
    assert DIGITS_UNIFORM_NATS == pytest.approx(181.33, abs=0.01)
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")


def _write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reader_reads_small_idx_files(tmp_path, compress):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    labels = np.array([7, 0, 4])
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = load_mnist(tmp_path, "test")
    assert x.shape == (3, 28, 28) and torch.equal(x, torch.from_numpy(images.astype(np.uint8)))
    assert y.tolist() == [7, 0, 4]


def test_missing_mnist_says_where_and_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_mnist(tmp_path, "train")


def test_corrupt_idx_files_are_refused(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((2, 3)))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="announces shape"):
        read_idx(tmp_path / "short")

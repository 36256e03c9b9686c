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
    with (gzip.open if compress else open)(path, "wb") as file:
        file.write(payload)


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


# --- pinned against independent references (issue 17) ------------------------------------------------------


def test_digits_splits_are_the_first_1000_the_next_350_and_the_last_447_of_sklearn():
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    data, target = torch.from_numpy(bunch.data.astype(np.int64)), torch.from_numpy(bunch.target.astype(np.int64))
    assert len(data) == 1797
    parts = {split: load_digits(split) for split in ("train", "val", "test")}
    expected = {"train": (0, 1000), "val": (1000, 1350), "test": (1350, 1797)}
    for split, (start, stop) in expected.items():
        images, labels = parts[split]
        assert torch.equal(images, data[start:stop]), split
        assert torch.equal(labels, target[start:stop]), split
    # disjoint and exhaustive: concatenated in order they are sklearn's array, image for image
    assert torch.equal(torch.cat([parts[s][0] for s in ("train", "val", "test")]), data)


@pytest.mark.parametrize(("n_modes", "radius", "std"), [(8, 2.0, 0.05), (5, 3.5, 0.3), (1, 1.0, 1.0)])
def test_ring_modes_lie_on_the_circle_at_equal_angles_and_the_density_is_the_mixture(n_modes, radius, std):
    from scipy.stats import multivariate_normal

    angles = [2 * math.pi * k / n_modes for k in range(n_modes)]  # mode k at angle 2 pi k / K, from the x axis
    centers = torch.tensor([[radius * math.cos(a), radius * math.sin(a)] for a in angles])
    assert torch.allclose(ring_centers(n_modes=n_modes, radius=radius), centers, atol=1e-6)
    ring = gaussian_ring(n_modes=n_modes, radius=radius, std=std)
    points = torch.randn(50, 2, dtype=torch.float64) * radius
    oracle = sum(
        multivariate_normal(c.double().numpy(), std**2 * np.eye(2)).pdf(points.numpy()) / n_modes for c in centers
    )
    assert torch.allclose(ring.log_prob(points.float()).exp().double(), torch.from_numpy(oracle), rtol=1e-4, atol=1e-30)
    # samples: each mode's share is 1/K, and around its center the spread is std in each coordinate
    x = ring.sample((20_000,))
    nearest = torch.cdist(x, centers).argmin(1)
    share = nearest.bincount(minlength=n_modes).double() / len(x)
    assert ((share - 1 / n_modes).abs() <= 4 * math.sqrt((1 / n_modes) * (1 - 1 / n_modes) / len(x)) + 1e-12).all()
    if std < radius * math.sin(math.pi / max(n_modes, 2)) / 4:  # modes well apart: nearest center = own mode
        offsets = x - centers[nearest]
        assert offsets.mean(0).abs().max().item() < 4 * std / math.sqrt(len(x) / n_modes)
        assert offsets.std(0).tolist() == pytest.approx([std, std], rel=0.05)


@pytest.mark.parametrize(("cells", "side"), [(4, 4.0), (6, 3.0), (2, 10.0)])
def test_checkerboard_density_is_the_indicator_of_the_dark_squares(cells, side):
    # dark squares: cell (i, j), counted from the corner (-side/2, -side/2) along x and y, with i + j even
    board = Checkerboard(cells=cells, side=side)
    points = (torch.rand(4000, 2, dtype=torch.float64) - 0.5) * side * 1.2  # also outside the board
    width = side / cells
    expected = []
    for px, py in points.tolist():
        i, j = math.floor((px + side / 2) / width), math.floor((py + side / 2) / width)
        dark = 0 <= i < cells and 0 <= j < cells and (i + j) % 2 == 0
        expected.append(math.log(2 / side**2) if dark else -math.inf)
    assert board.log_prob(points).tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("cells", "side"), [(4, 4.0), (6, 3.0)])
def test_checkerboard_samples_fill_every_dark_square_uniformly(cells, side):
    from scipy.stats import chisquare, kstest

    board = Checkerboard(cells=cells, side=side)
    x = board.sample((12_000,)).double()
    width = side / cells
    scaled = (x + side / 2) / width  # cell coordinates: integer part is the cell, fractional part the position in it
    ij = scaled.floor().long()
    assert ((ij >= 0) & (ij < cells)).all() and ((ij.sum(1) % 2) == 0).all(), "a sample left the dark squares"
    counts = torch.bincount(ij[:, 0] * cells + ij[:, 1], minlength=cells * cells)
    dark = [i * cells + j for i in range(cells) for j in range(cells) if (i + j) % 2 == 0]
    assert chisquare(counts[dark].numpy()).pvalue > 1e-4  # every dark square equally likely
    within = scaled - ij
    for axis in range(2):  # and uniform inside its square, in each coordinate
        assert kstest(within[:, axis].numpy(), "uniform").pvalue > 1e-4
    assert abs(np.corrcoef(within[:, 0].numpy(), within[:, 1].numpy())[0, 1]) < 4 / math.sqrt(len(x))


def test_checkerboard_refuses_nan_and_keeps_the_dtype():
    board = Checkerboard()
    with pytest.raises(ValueError, match="value must not be NaN"):
        board.log_prob(torch.tensor([[math.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"value must be a torch\.Tensor"):
        board.log_prob([[0.5, 0.5]])
    for dtype in (torch.float32, torch.float64):
        out = board.log_prob(torch.tensor([[-1.5, -1.5], [0.5, -0.5], [math.inf, 0.0]], dtype=dtype))
        assert out.dtype == dtype
        assert out.tolist() == pytest.approx([math.log(2 / 16), -math.inf, -math.inf], rel=1e-6)


def test_checkerboard_is_a_distribution_on_the_plane_of_any_batch_shape():
    board = Checkerboard()
    assert board.event_shape == (2,) and board.batch_shape == ()
    assert board.support.event_dim == 1 and not board.has_rsample  # samples are drawn, not reparameterised
    assert board.log_prob(torch.tensor([-1.5, -1.5])).shape == ()
    assert board.log_prob(torch.zeros(3, 4, 2)).shape == (3, 4)
    assert board.sample((3, 4)).shape == (3, 4, 2)


@pytest.mark.parametrize("cells", [0, 1, 3, 4.0, "4"])
def test_checkerboard_needs_an_even_number_of_cells(cells):
    with pytest.raises(ValueError, match="cells must be an even int >= 2"):
        Checkerboard(cells=cells)


#: The IDX format (LeCun and Cortes, "THE MNIST DATABASE"): type byte -> big-endian element type.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@pytest.mark.parametrize("code", sorted(IDX_TYPES))
def test_idx_reader_reads_every_element_type_of_the_format(tmp_path, code):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(IDX_TYPES[code])
    if code == 0x08:
        array = np.arange(24, dtype=">u1").reshape(2, 3, 4)
    header = bytes([0, 0, code, 3]) + struct.pack(">3I", 2, 3, 4)
    (tmp_path / "x.idx").write_bytes(header + array.tobytes())
    read = read_idx(tmp_path / "x.idx")
    assert read.shape == (2, 3, 4) and np.array_equal(read, array) and read.dtype == np.dtype(IDX_TYPES[code])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes([1, 0, 0x08, 1, 0, 0, 0, 1, 7]), "magic"),  # the first byte must be 0
        (bytes([0, 1, 0x08, 1, 0, 0, 0, 1, 7]), "magic"),  # and the second
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 7]), "magic"),  # an unknown type byte
        (bytes([0, 0, 0x08]), "magic"),  # shorter than the magic number
        (bytes([0, 0, 0x08, 0]), "announces shape"),  # a 0-dimensional array whose one element is missing
    ],
)
def test_idx_reader_refuses_what_is_not_idx(tmp_path, raw, message):
    (tmp_path / "bad").write_bytes(raw)
    with pytest.raises(ValueError, match=message):
        read_idx(tmp_path / "bad")


def test_mnist_files_that_disagree_are_refused(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2))
    with pytest.raises(ValueError, match="disagree"):
        load_mnist(tmp_path, "test")


def test_dequantize_fills_each_level_cube_uniformly_and_reproducibly():
    from gmlib.data import dequantize

    x = torch.randint(0, 17, (4000, 3))
    y = dequantize(x, generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.get_default_dtype() and y.shape == x.shape
    assert torch.equal(y.floor().long(), x)  # level k lands in [k, k + 1)
    u = (y - x).flatten().double()
    assert u.mean().item() == pytest.approx(0.5, abs=0.02) and u.var().item() == pytest.approx(1 / 12, abs=0.005)
    assert torch.equal(dequantize(x, generator=torch.Generator().manual_seed(0)), y)
    assert dequantize(x.double()).dtype == torch.float64
    assert dequantize(x, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="x must be finite"):
        dequantize(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="x must be a torch.Tensor"):
        dequantize([0, 1])

"""gmlib.baselines: both reference models are normalised and reproduce their digits figures."""

import itertools
import math

import pytest
import torch

from gmlib.baselines import histogram_nll, linear_autoregressive_nll
from gmlib.data import DIGITS_UNIFORM_NATS, load_digits


def all_images(pixels: int, levels: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(levels), repeat=pixels)))


@pytest.mark.parametrize("nll", [histogram_nll, linear_autoregressive_nll])
def test_each_model_is_a_distribution_over_all_images(nll):
    torch.manual_seed(0)
    train = torch.randint(0, 3, (60, 3))
    train[:, 2] = (train[:, 0] + train[:, 1]) % 3  # a dependence only the autoregressive model can use
    every = all_images(3, 3)
    total = torch.exp(-nll(train, every, levels=3)).sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


def test_histogram_is_the_smoothed_level_frequency():
    train = torch.tensor([[0, 2], [0, 1], [1, 1]])
    got = histogram_nll(train, torch.tensor([[0, 1]]), levels=3, pseudocount=0.5)
    expected = -math.log((2 + 0.5) / 4.5) - math.log((2 + 0.5) / 4.5)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_linear_autoregressive_model_learns_a_linear_dependence():
    torch.manual_seed(1)
    train = torch.randint(0, 2, (400, 2))
    train[:, 1] = train[:, 0]  # the second pixel copies the first
    copies, flips = torch.tensor([[0, 0], [1, 1]]), torch.tensor([[0, 1], [1, 0]])
    ar = linear_autoregressive_nll(train, copies, levels=2)
    assert (ar < math.log(2) + 0.2).all()  # ~log 2 for the first pixel, near 0 for the second
    assert (linear_autoregressive_nll(train, flips, levels=2) > ar + 2).all()
    assert histogram_nll(train, copies, levels=2).mean() > ar.mean() + 0.5  # pixels alone cannot see the copy


def test_digits_figures():
    train, _ = load_digits("train")
    test, _ = load_digits("test")
    histogram = histogram_nll(train, test, levels=17).mean().item()
    linear = linear_autoregressive_nll(train, test, levels=17).mean().item()
    assert histogram == pytest.approx(106.4, abs=0.05)
    assert linear == pytest.approx(90.8, abs=0.05)
    assert linear < histogram < DIGITS_UNIFORM_NATS


@pytest.mark.parametrize("nll", [histogram_nll, linear_autoregressive_nll])
@pytest.mark.parametrize(
    "train,test,kwargs,match",
    [
        (torch.zeros(3, 2, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), {}, "test"),
        (torch.zeros(3, 2, dtype=torch.long), torch.full((1, 2), 5), {}, "test"),
        (torch.full((3, 2), -1), torch.zeros(1, 2, dtype=torch.long), {}, "train"),
        (torch.zeros(0, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long), {}, "at least one"),
        (torch.zeros(3, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long), {"levels": 1}, "levels"),
    ],
)
def test_bad_input_is_refused(nll, train, test, kwargs, match):
    with pytest.raises(ValueError, match=match):
        nll(train, test, **{"levels": 3, **kwargs})


def test_bad_smoothing_is_refused():
    x = torch.zeros(2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="pseudocount"):
        histogram_nll(x, x, levels=3, pseudocount=0.0)
    with pytest.raises(ValueError, match="regularization"):
        linear_autoregressive_nll(x, x, levels=3, regularization=-1.0)

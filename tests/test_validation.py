"""gmlib.validation: each check refuses exactly what it names, with a message that says what was wrong."""

import math

import pytest
import torch

from gmlib.validation import (
    require_finite,
    require_fraction,
    require_int,
    require_levels,
    require_nonempty,
    require_nonnegative,
    require_positive,
    require_probability_vector,
    require_shape,
    require_tensor,
    sum_tolerance,
)


@pytest.mark.parametrize("check", [require_tensor, require_finite, require_nonempty, require_probability_vector])
@pytest.mark.parametrize("value", [[0.5, 0.5], (1.0,), 3.0, None])
def test_non_tensors_are_refused_by_name(check, value):
    with pytest.raises(ValueError, match=r"^weights must be a torch\.Tensor, got"):
        check("weights", value)


def test_shape_check_names_the_argument_and_the_shape():
    require_shape("x", torch.zeros(3, 2), (None, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 2\), got \(3, 3\)"):
        require_shape("x", torch.zeros(3, 3), (None, 2))
    with pytest.raises(ValueError, match=r"x must be a torch\.Tensor"):
        require_shape("x", [[0.0, 0.0]], (None, 2))


def test_finite_check_counts_the_bad_entries():
    require_finite("x", torch.zeros(4))
    with pytest.raises(ValueError, match="3 of its 4 entries"):
        require_finite("x", torch.tensor([-math.inf, math.nan, math.inf, 1.0]))


def test_nonempty_check():
    require_nonempty("x", torch.zeros(1, 3))
    for empty in (torch.zeros(0, 3), torch.tensor(1.0)):
        with pytest.raises(ValueError, match="x must hold at least one sample"):
            require_nonempty("x", empty)


@pytest.mark.parametrize(("value", "low", "ok"), [(1, 1, True), (0, 1, False), (5, 5, True), (True, 0, False)])
def test_int_check_is_inclusive_at_its_bound(value, low, ok):
    if ok:
        require_int("n", value, low=low)
    else:
        with pytest.raises(ValueError, match=f"n must be an int >= {low}"):
            require_int("n", value, low=low)


@pytest.mark.parametrize(("value", "ok"), [(1e-300, True), (2, True), (0, False), (-1.0, False), (math.inf, False)])
def test_positive_check(value, ok):
    if ok:
        require_positive("h", value)
    else:
        with pytest.raises(ValueError, match="h must be a finite number > 0"):
            require_positive("h", value)


def test_sum_tolerance_scales_with_the_precision_and_the_length():
    assert sum_tolerance(torch.float64, 10) == 1e-6
    assert sum_tolerance(torch.float64, 10**8) == 1e-6
    assert sum_tolerance(torch.float32, 10**6) == pytest.approx(4 * torch.finfo(torch.float32).eps * 1000)
    assert sum_tolerance(torch.int64, 4) == sum_tolerance(torch.float32, 4)
    assert sum_tolerance(torch.float32, 16, atol=1e-3) == 1e-3


def test_probability_vectors_normalised_in_float32_are_accepted_at_any_length():
    for n in (10, 10**4, 10**6):
        p = torch.rand(n)
        require_probability_vector("p", p / p.sum())
        q = p.numpy()  # a plain left-to-right float32 loop, the least accurate normalisation
        q = torch.from_numpy(q / q.cumsum()[-1])
        require_probability_vector("p", q)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_sum_off_by_more_than_the_tolerance_is_refused_and_printed(dtype):
    p = torch.full((4,), 0.25, dtype=dtype)
    require_probability_vector("p", p)
    require_probability_vector("p", p + 0.9e-6 / 4)
    with pytest.raises(ValueError, match=r"p must sum to 1 .* but one sums to 1\.00001\d* \(off by 1e-05\)"):
        require_probability_vector("p", p + 1e-5 / 4)
    batch = torch.stack([p, p - 0.125 / 4])  # exact in binary: the message shows the sum itself
    with pytest.raises(ValueError, match=r"one sums to 0\.875 \(off by 0\.12\)"):
        require_probability_vector("p", batch)


def test_negative_and_empty_probability_vectors_are_refused():
    with pytest.raises(ValueError, match="non-negative, but its smallest entry is -0.5"):
        require_probability_vector("p", torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="non-empty"):
        require_probability_vector("p", torch.zeros(3, 0))


def test_every_row_of_a_batch_is_checked_whichever_way_it_is_off():
    good = torch.full((4,), 0.25, dtype=torch.float64)
    for bad in (good + 0.125 / 4, good - 0.125 / 4):  # sums 1.125 and 0.875, next to a row summing to 1
        with pytest.raises(ValueError, match=r"off by 0\.12"):
            require_probability_vector("p", torch.stack([good, bad, good]))


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.tensor([[0.0, 16.5]]), "integer pixel levels 0..16"),
        (torch.tensor([[0, 17]]), "pixel levels in 0..16, got values in 0..17"),
        (torch.tensor([[-1.0, 3.0]]), "pixel levels in 0..16, got values in -1..3"),
        (torch.tensor([[float("nan"), 1.0]]), "must be finite"),
    ],
)
def test_require_levels_names_the_argument_and_the_range(x, message):
    with pytest.raises(ValueError, match=message):
        require_levels("x", x, 17)
    require_levels("x", torch.tensor([[0, 16]]), 17)  # the two ends are levels


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 0.999])
def test_require_fraction_accepts_numbers_in_zero_one(value):
    require_fraction("dropout", value)


@pytest.mark.parametrize("value", [1, 1.0, -0.1, True, "0.5", None, float("nan")])
def test_require_fraction_names_the_argument(value):
    with pytest.raises(ValueError, match="rate must be a number in"):
        require_fraction("rate", value)


@pytest.mark.parametrize("value", [0, 0.0, 2, 1e-3, 1e9])
def test_require_nonnegative_accepts_finite_numbers_from_zero(value):
    require_nonnegative("weight_decay", value)


@pytest.mark.parametrize("value", [-1e-9, -1, math.inf, math.nan, True, "0.1", None])
def test_require_nonnegative_names_the_argument(value):
    with pytest.raises(ValueError, match="penalty must be a finite number >= 0"):
        require_nonnegative("penalty", value)

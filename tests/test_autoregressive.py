"""gmlib.models.autoregressive: the autoregressive property, normalisation, sampling, receptive fields, bad input."""

import itertools

import pytest
import torch

from gmlib.data import DIGITS_LEVELS, DIGITS_UNIFORM_NATS, load_digits
from gmlib.models.autoregressive import (
    MADE,
    AutoregressiveModel,
    CausalTransformer,
    PixelCNN,
    draw_levels,
    receptive_field,
)
from gmlib.train import train

KINDS = [
    "made",
    "made-order",
    "made-scaled",
    "pixelcnn",
    "pixelcnn-scaled",
    "gated-pixelcnn",
    "gated-scaled",
    "transformer",
]


def build(kind: str, *, side: int, levels: int, **options) -> AutoregressiveModel:
    """A small model of each kind on side x side images (D = side^2), raster order unless the kind says otherwise."""
    dim = side * side
    if kind == "made":
        return MADE(dim=dim, levels=levels, **{"hidden": 64, **options})
    if kind == "made-order":
        order = torch.randperm(dim, generator=torch.Generator().manual_seed(3))
        return MADE(dim=dim, levels=levels, order=order, **{"hidden": 64, **options})
    if kind == "made-scaled":
        return MADE(dim=dim, levels=levels, inputs="scaled", direct=True, **{"hidden": 64, **options})
    if "pixelcnn" in kind or kind == "gated-scaled":
        settings = {"channels": 16, "layers": 3, "dropout": 0.1, **options}
        inputs = "scaled" if kind.endswith("scaled") else "onehot"
        return PixelCNN(side=side, levels=levels, gated=kind.startswith("gated"), inputs=inputs, **settings)
    return CausalTransformer(dim=dim, levels=levels, **{"d_model": 32, "heads": 4, "layers": 2, **options})


def greedy(model: AutoregressiveModel, n: int) -> torch.Tensor:
    """The mode sequence: each pixel, in the model's order, set to the argmax of its logits given the earlier ones."""
    x = torch.zeros(n, model.dim, dtype=torch.long)
    with torch.no_grad():
        for i in model.order.tolist():
            x[:, i] = model.logits(x)[:, i].argmax(-1)
    return x


# ----- the autoregressive property and the exact likelihood ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_logits_of_a_pixel_ignore_it_and_every_later_pixel(kind):
    """Changing the pixel at position k leaves the logits of positions <= k bit for bit, and changes later ones."""
    model = build(kind, side=4, levels=5).eval()
    x = torch.randint(5, (8, 16))
    with torch.no_grad():
        before = model.logits(x)
        for k, pixel in enumerate(model.order.tolist()):
            changed = x.clone()
            changed[:, pixel] = (changed[:, pixel] + torch.randint(1, 5, (8,))) % 5  # a different level everywhere
            after = model.logits(changed)
            past, future = model.order[: k + 1], model.order[k + 1 :]
            assert torch.equal(before[:, past], after[:, past]), (kind, k)
            if len(future):  # not vacuous: the pixel is read by some later conditional
                assert not torch.equal(before[:, future], after[:, future]), (kind, k)


@pytest.mark.parametrize("kind", KINDS)
def test_probabilities_of_all_images_sum_to_one(kind):
    """2x2 images with 3 levels: the 81 probabilities exp(log_prob) sum to 1 (eq-ar-chain-rule's converse)."""
    model = build(kind, side=2, levels=3).eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)  # far from uniform, so the sum is a real test
    images = torch.tensor(list(itertools.product(range(3), repeat=4)))
    with torch.no_grad():
        log_probs = model.log_prob(images).double()
    # float32 log-probabilities carry ~1e-7 relative error each; 81 of them cannot move the sum by 1e-5
    assert abs(torch.logsumexp(log_probs, 0).exp().item() - 1) < 1e-5
    assert log_probs.std() > 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_log_prob_is_the_sum_of_log_conditionals_and_loss_its_mean(kind):
    model = build(kind, side=3, levels=4).eval()
    x = torch.randint(4, (6, 9))
    probs = model.conditionals(x)
    assert probs.shape == (6, 9, 4)
    assert torch.allclose(probs.sum(-1), torch.ones(6, 9), atol=1e-6)
    expected = probs.gather(-1, x[..., None]).squeeze(-1).log().sum(-1)
    log_prob = model.log_prob(x)
    assert log_prob.shape == (6,) and log_prob.dtype == torch.float32
    assert torch.allclose(log_prob, expected, atol=1e-5)
    assert torch.allclose(model.loss(x), -log_prob.mean())
    assert torch.equal(model.log_prob(x.float()), log_prob)  # floats holding integer levels are accepted


@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_gets_a_gradient(kind):
    model = build(kind, side=3, levels=4)
    model.loss(torch.randint(4, (5, 9))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("kind", KINDS)
def test_training_on_digits_beats_the_uniform_model(kind):
    images, _ = load_digits("train")
    test_images, _ = load_digits("test")
    model = build(kind, side=8, levels=DIGITS_LEVELS, **({"dropout": 0.0} if kind == "transformer" else {}))
    result = train(model, images, steps=150, batch_size=64, lr=3e-3, progress=False)
    with torch.no_grad():
        test_nll = -model.log_prob(test_images).mean().item()
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert test_nll < DIGITS_UNIFORM_NATS - 40, test_nll  # uniform: 64 ln 17 = 181.3 nats


# ----- sampling -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_samples_have_the_right_shape_levels_and_reproduce(kind):
    model = build(kind, side=3, levels=4).train()
    first = model.sample(7, generator=torch.Generator().manual_seed(1))
    assert first.shape == (7, 9) and first.dtype == torch.int64
    assert first.min() >= 0 and first.max() <= 3
    assert torch.equal(first, model.sample(7, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(first, model.sample(7, generator=torch.Generator().manual_seed(2)))
    assert model.training  # sampling ran in eval mode and gave the mode back


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_conditionals_give_the_mode_sequence(kind):
    """With huge logits each conditional is a point mass: a sampler that ignores the model cannot match."""
    torch.manual_seed(0)
    model = build(kind, side=3, levels=5).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:  # larger weights: the logits vary more with the context
                parameter.mul_(6)
        model.head.weight.mul_(1e4)  # then the network's own logits scaled up: point masses
        model.head.bias.mul_(1e4)
    mode = greedy(model, 6)
    with torch.no_grad():  # the mode depends on the earlier pixels: each pixel's argmax given zeros is not it
        assert not torch.equal(mode[0], model.logits(torch.zeros(1, 9, dtype=torch.long))[0].argmax(-1))
    assert torch.equal(model.sample(6, generator=torch.Generator().manual_seed(0)), mode)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_frequencies_match_the_probabilities(kind):
    """2x2 images, 3 levels: the frequencies of 20000 samples are within 0.05 in total variation of exp(log_prob).

    The expected total variation of 81 cells from 20000 draws is at most
    0.5 * 9 * sqrt(2 / (pi * 20000)) = 0.025, so 0.05 is twice it.
    """
    model = build(kind, side=2, levels=3).eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)
    images = torch.tensor(list(itertools.product(range(3), repeat=4)))
    with torch.no_grad():
        probs = model.log_prob(images).double().exp()
    draws = model.sample(20000, generator=torch.Generator().manual_seed(0))
    index = (draws * torch.tensor([27, 9, 3, 1])).sum(1)  # the row of each draw in `images`
    frequencies = torch.bincount(index, minlength=81).double() / 20000
    assert 0.5 * (frequencies - probs).abs().sum() < 0.05


def test_draw_levels_follows_the_softmax_and_skips_impossible_levels():
    logits = torch.tensor([[0.0, float("-inf"), 1.0, 2.0]]).expand(40000, 4)
    levels = draw_levels(logits, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(levels, minlength=4).double() / 40000
    assert frequencies[1] == 0
    assert torch.allclose(frequencies, logits[0].softmax(-1).double(), atol=0.01)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_transformer_cached_and_uncached_samplers_agree(dropout):
    model = CausalTransformer(dim=16, levels=5, d_model=32, heads=4, layers=2, dropout=dropout).train()
    torch.nn.init.normal_(model.head.weight, std=0.5)  # conditionals far from uniform and from each other
    cached = model.sample(50, generator=torch.Generator().manual_seed(4), cache=True)
    uncached = model.sample(50, generator=torch.Generator().manual_seed(4), cache=False)
    assert torch.equal(cached, uncached)
    generic = AutoregressiveModel.sample(model, 50, generator=torch.Generator().manual_seed(4))  # the base sampler
    assert torch.equal(cached, generic)


# ----- receptive fields ---------------------------------------------------------------------------------------


def past(pixel: int, dim: int) -> torch.Tensor:
    return torch.arange(dim) < pixel


@pytest.mark.parametrize("kind", ["made", "made-scaled", "transformer"])
def test_sequence_models_see_exactly_the_earlier_pixels(kind):
    model = build(kind, side=4, levels=5, **({"hidden": 256} if kind.startswith("made") else {}))
    for pixel in range(16):
        assert torch.equal(receptive_field(model, pixel), past(pixel, 16)), (kind, pixel)


def test_made_with_an_order_sees_the_pixels_earlier_in_that_order():
    model = build("made-order", side=4, levels=5, hidden=256)
    for k, pixel in enumerate(model.order.tolist()):
        expected = torch.zeros(16, dtype=torch.bool)
        expected[model.order[:k]] = True
        assert torch.equal(receptive_field(model, pixel), expected), k


def pixelcnn_field(row: int, col: int, *, side: int, layers: int, half: int, gated: bool) -> torch.Tensor:
    """The field of pixel (row, col) that the PixelCNN docstring states, as a (side * side,) bool mask.

    Plain: row - j (1 <= j <= layers * half) sees columns col - layers * half .. col + half * min(layers, j);
    gated: rows row - 1 - layers * half .. row - 1, columns col - layers * half .. col + layers * half;
    both: in the pixel's own row, columns col - layers * half .. col - 1.
    """
    reach = layers * half
    field = torch.zeros(side, side, dtype=torch.bool)
    for r, c in itertools.product(range(side), repeat=2):
        j = row - r
        if j == 0:
            field[r, c] = col - reach <= c < col
        elif gated:
            field[r, c] = 1 <= j <= reach + 1 and abs(c - col) <= reach
        else:
            field[r, c] = 1 <= j <= reach and col - reach <= c <= col + half * min(layers, j)
    return field.flatten()


@pytest.mark.parametrize("gated", [False, True])
def test_pixelcnn_fields_and_the_blind_spot(gated):
    """8x8, 3x3 kernels, 4 layers: every pixel's field is the docstring's, computed above.

    For pixel (4, 3) = 35 the plain stack misses (3, 5), (3, 6), (3, 7), (2, 6), (2, 7) and (1, 7): past pixels up and
    to the right (the blind spot), which the gated stack sees; its field is then every pixel before 35.
    """
    model = PixelCNN(side=8, levels=5, channels=16, layers=4, kernel=3, gated=gated)
    for pixel in range(64):
        expected = pixelcnn_field(pixel // 8, pixel % 8, side=8, layers=4, half=1, gated=gated)
        assert torch.equal(receptive_field(model, pixel), expected), pixel
    field = receptive_field(model, 35)
    blind = [29, 30, 31, 22, 23, 15]  # (3, 5), (3, 6), (3, 7), (2, 6), (2, 7), (1, 7)
    assert torch.equal(field, past(35, 64)) if gated else not field[blind].any() and field[past(35, 64)].sum() == 29


def test_pixelcnn_field_with_a_5x5_kernel_grows_by_two_per_layer():
    for gated in (False, True):
        model = PixelCNN(side=8, levels=3, channels=12, layers=2, kernel=5, gated=gated)
        for pixel in (27, 45, 63):
            expected = pixelcnn_field(pixel // 8, pixel % 8, side=8, layers=2, half=2, gated=gated)
            assert torch.equal(receptive_field(model, pixel), expected), (gated, pixel)


def test_receptive_field_of_the_first_pixel_is_empty_and_measured_where_asked():
    model = build("made", side=2, levels=3)
    assert not receptive_field(model, 0).any()
    x = torch.randint(3, (4, 4))
    assert torch.equal(receptive_field(model, 3, x=x), past(3, 4))


# ----- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "x,match",
    [
        (torch.full((2, 4), 3), "levels in 0..2"),
        (torch.full((2, 4), -1), "levels in 0..2"),
        (torch.full((2, 4), 0.5), "integer pixel levels"),
        (torch.full((2, 4), float("nan")), "finite"),
        (torch.zeros(2, 5, dtype=torch.long), r"shape \(\*, 4\)"),
        (torch.zeros(4, dtype=torch.long), r"shape \(\*, 4\)"),
        (torch.zeros(0, 4, dtype=torch.long), "non-empty"),
        ([[0, 1, 2, 0]], "torch.Tensor"),
    ],
)
def test_bad_images_are_refused(kind, x, match):
    model = build(kind, side=2, levels=3)
    for method in (model.log_prob, model.loss, model.logits, model.conditionals):
        with pytest.raises(ValueError, match=match):
            method(x)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: MADE(dim=4, levels=1), "levels"),
        (lambda: MADE(dim=0, levels=3), "dim"),
        (lambda: MADE(dim=4, levels=3, order=[0, 1, 1, 2]), "order"),
        (lambda: MADE(dim=4, levels=3, order=[0, 1, 2]), "order"),
        (lambda: MADE(dim=4, levels=3, order=[0.0, 1.0, 2.0, 3.0]), "order"),
        (lambda: MADE(dim=4, levels=3, order="raster"), "order"),
        (lambda: MADE(dim=4, levels=3, hidden=0), "hidden"),
        (lambda: MADE(dim=4, levels=3, layers=0), "layers"),
        (lambda: MADE(dim=4, levels=3, dropout=1.0), "dropout"),
        (lambda: MADE(dim=4, levels=3, inputs="binary"), "inputs"),
        (lambda: PixelCNN(side=2, levels=1), "levels"),
        (lambda: PixelCNN(side=0, levels=3), "side"),
        (lambda: PixelCNN(side=4, levels=3, kernel=4), "kernel"),
        (lambda: PixelCNN(side=4, levels=3, channels=0), "channels"),
        (lambda: PixelCNN(side=4, levels=3, layers=0), "layers"),
        (lambda: PixelCNN(side=4, levels=3, gated="yes"), "gated"),
        (lambda: CausalTransformer(dim=4, levels=1), "levels"),
        (lambda: CausalTransformer(dim=4, levels=3, d_model=30, heads=4), "heads"),
        (lambda: CausalTransformer(dim=4, levels=3, heads=0), "heads"),
        (lambda: CausalTransformer(dim=4, levels=3, dropout=-0.1), "dropout"),
    ],
)
def test_bad_constructor_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_sampling_and_field_arguments_are_refused():
    model = build("transformer", side=2, levels=3)
    for n in (0, 2.0, True):
        with pytest.raises(ValueError, match="n must"):
            model.sample(n)
    with pytest.raises(ValueError, match="n must"):
        build("made", side=2, levels=3).sample(0)
    with pytest.raises(ValueError, match="cache"):
        model.sample(2, cache="yes")
    with pytest.raises(ValueError, match="pixel"):
        receptive_field(model, 4)
    with pytest.raises(ValueError, match="pixel"):
        receptive_field(model, -1)
    with pytest.raises(ValueError, match="tolerance"):
        receptive_field(model, 1, tolerance=0.0)
    with pytest.raises(ValueError, match="model"):
        receptive_field(torch.nn.Linear(2, 2), 0)
    with pytest.raises(ValueError, match="x must"):
        receptive_field(model, 1, x=torch.full((2, 4), 5))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gmlib.plots import density_2d, image_grid, samples_2d, training_curves  # noqa: E402


def test_image_grid_tiles_flat_square_images():
    fig, ax = plt.subplots()
    image_grid(ax, torch.arange(12 * 64).reshape(12, 64) % 17, columns=5)
    canvas = ax.images[0].get_array()
    assert canvas.shape == (3 * 9 - 1, 5 * 9 - 1)


def test_image_grid_refuses_non_square_pixels():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="square"):
        image_grid(ax, torch.zeros(2, 10))


def test_density_samples_and_curves_draw():
    fig, axes = plt.subplots(1, 3)
    gaussian = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    density_2d(axes[0], gaussian.log_prob, n=50)
    assert axes[0].images[0].get_array().shape == (50, 50)
    samples_2d(axes[1], gaussian.sample((100,)))
    assert len(axes[1].collections[0].get_offsets()) == 100
    training_curves(axes[2], {"loss": [3.0, 2.0, 1.0] * 20}, window=10)
    assert len(axes[2].lines) == 1


def test_book_style_sets_one_house_style():
    from gmlib.plots import STYLE, book_style

    book_style()
    assert all(matplotlib.rcParams[key] == value for key, value in STYLE.items() if key != "axes.prop_cycle")
    assert matplotlib.rcParams["savefig.dpi"] >= 2 * matplotlib.rcParams["figure.dpi"]


def test_show_glues_the_figure_under_its_name_and_closes_it(monkeypatch):
    from gmlib import plots

    glued = {}
    monkeypatch.setattr("gmlib.report._glue", lambda name, value: glued.__setitem__(name, value))
    fig, _ = plt.subplots()
    plots.show(fig, "fig-test")
    assert glued == {"fig-test": fig}
    assert not plt.fignum_exists(fig.number)
    with pytest.raises(ValueError, match="name"):
        plots.show(plt.figure(), "a figure")

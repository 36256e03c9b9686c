"""Figures the chapters share: one house style, image grids, 2D densities and samples, training curves.

A chapter calls ``book_style()`` once and hands each finished figure to
``show(fig, name)``: the figure is glued under ``name`` and the prose places
it with a numbered, captioned ``{glue:figure}`` (myst-nb).
"""

import math
from collections.abc import Callable

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gmlib.metrics import grid_2d

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,  # 2x: sharp on high-density screens
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]),
}


def book_style() -> None:
    """Set the house style for every figure (sizes, fonts, colours) and PNG at twice the resolution."""
    mpl.rcParams.update(STYLE)
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - ships with the book's requirements
        return
    set_matplotlib_formats("retina")


def show(fig: Figure, name: str) -> None:
    """Glue ``fig`` under ``name`` for a numbered, captioned ``{glue:figure}`` in the prose, then close it."""
    from gmlib.report import _glue

    if not (isinstance(name, str) and name.replace("-", "_").isidentifier()):
        raise ValueError(f"name must be letters, digits, '-' and '_', got {name!r}")
    _glue(name, fig)
    plt.close(fig)


def image_grid(
    ax: Axes, images: torch.Tensor, *, columns: int = 10, vmax: float | None = None, title: str = ""
) -> None:
    """Tile images (n, h, w) -- or (n, h*w) square images -- into one panel on ``ax``."""
    images = images.detach().cpu().float()
    if images.dim() == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise ValueError(f"images of {images.shape[1]} pixels are not square; pass them as (n, h, w)")
        images = images.reshape(-1, side, side)
    if images.dim() != 3 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (n, h, w) or (n, h*w) with n >= 1, got {tuple(images.shape)}")
    n, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = torch.full((rows * (h + 1) - 1, columns * (w + 1) - 1), float("nan"))
    for k in range(n):
        r, c = divmod(k, columns)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[k]
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=vmax if vmax is not None else images.max().item())
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)


@torch.no_grad()
def density_2d(
    ax: Axes, log_prob: Callable[[torch.Tensor], torch.Tensor], *, lim: float = 4.0, n: int = 200, title: str = ""
) -> None:
    """Show exp(log_prob) on [-lim, lim]^2; ``log_prob`` maps (m, 2) float32 -> (m,)."""
    points, _ = grid_2d(lim=lim, n=n)
    density = log_prob(points.float()).exp().reshape(n, n).cpu().numpy()
    ax.imshow(density, origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title)


def samples_2d(ax: Axes, x: torch.Tensor, *, lim: float = 4.0, title: str = "", **scatter) -> None:
    """Scatter samples x (n, 2) on [-lim, lim]^2."""
    x = x.detach().cpu().numpy()
    ax.scatter(x[:, 0], x[:, 1], s=scatter.pop("s", 2), alpha=scatter.pop("alpha", 0.5), **scatter)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    ax.set_title(title, fontsize=10)


def training_curves(ax: Axes, history: dict[str, list[float]], *, window: int = 50, title: str = "") -> None:
    """Plot each loss in a ``TrainResult.history`` smoothed by a moving average of ``window`` steps."""
    for name, values in history.items():
        values = torch.tensor(values)
        k = max(1, min(window, len(values)))
        smoothed = values.unfold(0, k, 1).mean(1)
        ax.plot(range(k - 1, len(values)), smoothed.numpy(), label=name)
    ax.set(xlabel="step", title=title)
    ax.legend(fontsize=8)

"""Training beyond the book: any family's digits model on full MNIST, in one process or under ``torchrun``.

    python -m gmlib.mnist --family flow --root ~/data/mnist --steps 2000
    torchrun --nproc_per_node=2 -m gmlib.mnist --family flow --root ~/data/mnist --steps 2000

Each family is built with the recipe of its book chapter (the comparison
chapter lists them: architecture, optimiser options, seed), with the
dimension D = 28 * 28 = 784 in place of the digits' 64. Every gmlib model is
shape-generic, so nothing else changes: the VAE, flow, DDPM and GAN take
flattened images (n, 784); the PixelCNN runs its masked convolutions on the
28 x 28 grid. MNIST's 256 gray levels are quantised to ``--levels`` (17 by
default, the digits' 0..16, so every recipe applies unchanged and the
likelihoods count nats per image as in the book): level = round(v (L - 1) / 255).

Writes ``<out>/<family>.ckpt`` (``gmlib.train``'s checkpoint: running the same
command again resumes from it, or trains on with a larger ``--steps``) and
``<out>/<family>-samples.png``, a grid of ``--samples`` draws. The device is
``gmlib.device()`` unless ``--device`` says otherwise (under ``torchrun`` with
CUDA each rank takes GPU ``LOCAL_RANK``); ``--bf16`` computes the losses in
bfloat16 autocast. ``GMLIB_TRAIN_SCALE`` scales ``--steps`` as for the book.
"""

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import gmlib
from gmlib import distributed
from gmlib.data import MNIST_FILES, load_mnist
from gmlib.train import scaled_steps

SIDE = 28
FAMILIES = ("vae", "gan", "flow", "diffusion", "pixelcnn")


@dataclass(frozen=True)
class Recipe:
    """How a chapter builds and trains its digits model, for images of ``levels`` levels.

    ``build(levels, train_x)`` -> the model, where ``train_x`` (n, 784) holds
    the training levels (the flow's first layer is fitted to them);
    ``data(x, y)`` -> what ``gmlib.train`` is given; ``options``: the
    chapter's training options (``--batch-size`` and ``--lr`` override them).
    """

    build: Callable[[int, torch.Tensor], nn.Module]
    options: dict[str, Any] = field(default_factory=dict)
    conditional: bool = False  # trained on (images, labels), sampled one class per column
    signed: bool = False  # trained on levels scaled to [-1, 1] (the GAN's tanh output)


def _vae(levels: int, train_x: torch.Tensor) -> nn.Module:
    from gmlib.models import VAE

    return VAE(data_dim=SIDE * SIDE, latent_dim=16, hidden=400, level_rank=4, dropout=0.3, levels=levels)


def _gan(levels: int, train_x: torch.Tensor) -> nn.Module:
    from gmlib.models import GAN

    return GAN(dim=SIDE * SIDE, latent=16, hidden=256, tanh=True)


def _flow(levels: int, train_x: torch.Tensor) -> nn.Module:
    from gmlib.models.flows import Dequantized, digits_flow

    return Dequantized(digits_flow(train_x, levels=levels), levels=levels)


def _diffusion(levels: int, train_x: torch.Tensor) -> nn.Module:
    from gmlib.models.diffusion import DDPM, NoiseSchedule

    return DDPM(
        dim=SIDE * SIDE,
        levels=levels,
        hidden=256,
        layers=3,
        schedule=NoiseSchedule.log_snr_linear(250, snr_max=1e4, snr_min=1e-4),
        prediction="levels",
        variance="x0_posterior",
        dropout=0.5,
        classes=10,
        label_dropout=0.3,
    )


def _pixelcnn(levels: int, train_x: torch.Tensor) -> nn.Module:
    from gmlib.models import PixelCNN

    return PixelCNN(side=SIDE, levels=levels, channels=32, layers=3, kernel=5, inputs="scaled", dropout=0.1)


RECIPES: dict[str, Recipe] = {
    "vae": Recipe(_vae, dict(batch_size=128, lr=1e-3)),
    "gan": Recipe(_gan, dict(batch_size=128, lr=2e-3, betas=(0.0, 0.9)), signed=True),
    "flow": Recipe(_flow, dict(batch_size=128, lr=1e-3)),
    "diffusion": Recipe(_diffusion, dict(batch_size=256, lr=2e-3, lr_schedule="cosine"), conditional=True),
    "pixelcnn": Recipe(_pixelcnn, dict(batch_size=64, lr=2e-3)),
}


def quantise(images: torch.Tensor, levels: int) -> torch.Tensor:
    """MNIST images (n, 28, 28) uint8 in 0..255 -> levels (n, 784) int64 in 0..levels-1, round(v (L-1) / 255)."""
    return ((images.long() * (levels - 1) * 2 + 255) // 510).reshape(len(images), -1)  # (n, 784)


def parser() -> argparse.ArgumentParser:
    """The command's options."""
    names = ", ".join(MNIST_FILES["train"])
    command = argparse.ArgumentParser(
        prog="python -m gmlib.mnist",
        description="Train a family's digits model from the book on MNIST (one process, or several under torchrun).",
    )
    command.add_argument("--family", required=True, choices=FAMILIES, help="which chapter's model")
    command.add_argument("--root", required=True, type=Path, help=f"the folder holding {names} (plain or .gz)")
    command.add_argument("--steps", type=int, default=2000, help="training steps (times GMLIB_TRAIN_SCALE)")
    command.add_argument("--batch-size", type=int, help="global batch, split over the processes (default: recipe)")
    command.add_argument("--lr", type=float, help="learning rate (default: the chapter's)")
    command.add_argument("--levels", type=int, default=17, help="gray levels images are quantised to (2..256)")
    command.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: gmlib.device())")
    command.add_argument("--bf16", action="store_true", help="compute the losses in bfloat16 autocast")
    command.add_argument("--backend", choices=distributed.BACKENDS, help="under torchrun (default: nccl on CUDA)")
    command.add_argument("--seed", type=int, default=0, help="seeds the model and the order of the examples")
    command.add_argument("--samples", type=int, default=100, help="images in the sample grid")
    command.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    command.add_argument("--out", type=Path, default=Path("mnist-runs"), help="folder for the checkpoint and grid")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    return command


def load(command: argparse.ArgumentParser, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's training split from ``root``; a missing folder or file ends the command with a clear message."""
    expected = " and ".join(f"{name}[.gz]" for name in MNIST_FILES["train"])
    if not root.is_dir():
        command.error(f"--root {root} is not a folder; it must hold the MNIST training files {expected}")
    try:
        return load_mnist(root, "train")
    except FileNotFoundError as error:
        command.error(f"{error}\n--root {root} must hold {expected}")
    except ValueError as error:
        command.error(f"MNIST in --root {root} is unreadable: {error}")


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status (argparse exits with 2 on a bad option or missing data)."""
    command = parser()
    args = command.parse_args(argv)
    if not 2 <= args.levels <= 256:
        command.error(f"--levels must be in 2..256, got {args.levels}")
    for name in ("samples", "checkpoint_every"):
        if getattr(args, name) < 1:
            command.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    images, labels = load(command, args.root)
    try:
        total = scaled_steps(args.steps)
        device = distributed.local_device(torch.device(args.device) if args.device else gmlib.device())
        rank, size = distributed.start(args.backend or ("nccl" if device.type == "cuda" else "gloo"))
    except (ValueError, RuntimeError) as error:  # an unknown --device is torch's RuntimeError
        command.error(str(error))
    say = print if rank == 0 else (lambda *_, **__: None)
    recipe = RECIPES[args.family]
    x = quantise(images, args.levels)
    data: Any = x.float() / (args.levels - 1) * 2 - 1 if recipe.signed else x
    if recipe.conditional:
        data = (data, labels)
    options = recipe.options | {"steps": args.steps, "seed": args.seed}
    options |= {k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr)) if v is not None}

    gmlib.seed_everything(args.seed)
    model = recipe.build(args.levels, x).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    batch = options["batch_size"]
    how = "1 process" if size == 1 else f"{size} processes ({batch // size} images each per step)"
    say(f"MNIST: {len(x)} training images {SIDE}x{SIDE}, quantised to {args.levels} levels ({args.root})")
    say(f"{args.family}: {parameters:,} parameters on {device}, {how}, batch {batch}, {total} steps")
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / f"{args.family}.ckpt"
    start = torch.load(checkpoint, weights_only=True)["step"] if checkpoint.exists() else 0
    if start > total:
        command.error(f"--steps {total} is behind the checkpoint {checkpoint}, at step {start}: give more steps")
    if start:
        say(f"resuming from {checkpoint} at step {start}")
    began = time.perf_counter()
    try:
        result = gmlib.train(
            model,
            tuple(t.to(device) for t in data) if isinstance(data, tuple) else data.to(device),
            checkpoint=checkpoint,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
            autocast=args.bf16,
            **options,
        )
    except ValueError as error:  # a bad --steps or --batch-size, a checkpoint of another world size, ...
        command.error(str(error))
    seconds = time.perf_counter() - began
    distributed.stop()
    if rank != 0:
        return 0
    losses = "  ".join(f"{name} {values[-1]:.3f}" for name, values in result.history.items() if values)
    if result.steps > start:
        rate = (result.steps - start) * batch / seconds
        say(f"trained to step {result.steps} in {seconds:.1f} s ({rate:.0f} images/s); last loss: {losses}")
    else:
        say(f"nothing to train: the checkpoint is at step {start} already (a larger --steps trains on)")
    say(f"checkpoint: {checkpoint}")
    say(f"samples:    {_write_grid(model, recipe, args, device)}")
    return 0


@torch.no_grad()
def _write_grid(model: nn.Module, recipe: Recipe, args: argparse.Namespace, device: torch.device) -> Path:
    """Draw ``args.samples`` images and save them as a PNG grid, ten per row; return its path."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    from gmlib.plots import book_style, image_grid

    n = args.samples
    if recipe.conditional:  # column k shows class k
        samples = model.sample(n, y=torch.arange(n, device=device) % 10)
    else:
        samples = model.sample(n)
    samples = samples.float().cpu()
    if recipe.signed:
        samples = (samples.clamp(-1, 1) + 1) / 2 * (args.levels - 1)
    book_style()
    rows = -(-n // 10)
    fig, ax = plt.subplots(figsize=(6, 0.6 * rows + 0.4))
    title = f"{args.family} on MNIST"
    image_grid(ax, samples.reshape(n, SIDE, SIDE), columns=min(n, 10), vmax=args.levels - 1, title=title)
    path = args.out / f"{args.family}-samples.png"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())

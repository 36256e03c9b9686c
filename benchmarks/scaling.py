"""How does gmlib.train scale from one process to two under torchrun (gloo, CPU)?

One invocation trains the same MNIST-sized model (a family's recipe from
``gmlib.mnist``, on random 28x28 levels: throughput does not depend on the
pixels) on the same global batches three ways, one after the other, and
prints the throughput of each in images per second and their ratios:

- 1 process, 1 thread (``torchrun --nproc_per_node=1``: the plain loop);
- 2 processes, 1 thread each (``torchrun --nproc_per_node=2``: data-parallel,
  each rank on half of every batch, gradients averaged by DDP over gloo);
- 1 process, 2 threads (the other way to use two cores, for reference).

Each run times ``--steps`` steps after ``--warmup`` steps that are not
counted (the first steps build DDP's buckets and warm the allocator). Run:

    .venv/bin/python benchmarks/scaling.py                 # the flow; --family vae|gan|diffusion|pixelcnn
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import gmlib
from gmlib import distributed
from gmlib.mnist import RECIPES, SIDE


def worker(args: argparse.Namespace) -> None:
    """One rank of a run: warm up, time ``args.steps`` steps, and (rank 0) write images per second."""
    rank, size = distributed.start("gloo")
    recipe = RECIPES[args.family]
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, args.levels, (4096, SIDE * SIDE), generator=generator)
    data = x.float() / (args.levels - 1) * 2 - 1 if recipe.signed else x
    if recipe.conditional:
        data = (data, torch.randint(0, 10, (len(x),), generator=generator))
    gmlib.seed_everything(0)
    model = recipe.build(args.levels, x)
    options = recipe.options | {"batch_size": args.batch_size, "progress": False}
    gmlib.train(model, data, steps=args.warmup, **options)
    result = gmlib.train(model, data, steps=args.steps, **options)
    if rank == 0:
        rate = args.steps * args.batch_size / result.seconds
        Path(args.worker).write_text(json.dumps({"processes": size, "images_per_second": rate}))
    distributed.stop()


def launch(args: argparse.Namespace, processes: int, threads: int) -> float:
    """Run ``processes`` workers of ``threads`` threads each under torchrun; return their images per second."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command += [__file__, "--worker", str(out), "--family", args.family, "--steps", str(args.steps)]
        command += ["--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--levels", str(args.levels)]
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        subprocess.run(command, env=env, check=True)
        return json.loads(out.read_text())["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="flow", choices=sorted(RECIPES))
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch")
    parser.add_argument("--levels", type=int, default=17)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # set by launch(): this process is one rank
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    runs = {"1 process x 1 thread": (1, 1), "2 processes x 1 thread": (2, 1), "1 process x 2 threads": (1, 2)}
    rates = {name: launch(args, *how) for name, how in runs.items()}
    cores = os.cpu_count()
    print(f"{args.family} recipe of gmlib.mnist, {SIDE}x{SIDE} images, global batch {args.batch_size}, ", end="")
    print(f"{args.steps} timed steps after {args.warmup}; gloo on {cores} CPU cores, torch {torch.__version__}")
    for name, rate in rates.items():
        print(f"{name:24s} {rate:8.1f} images/s")
    one, two, threads = rates.values()
    print(f"ratio 2 processes / 1 process:   {two / one:.2f}  (ideal 2)")
    print(f"ratio 2 processes / 2 threads:   {two / threads:.2f}")


if __name__ == "__main__":
    main()

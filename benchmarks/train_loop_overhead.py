"""How much does gmlib.train cost over a hand-written PyTorch loop?

Both loops train the same model on the same data for the same number of Adam
steps; the peer is the five-line loop every tutorial writes. The ratio of
their wall-clock times is the overhead of the one training loop (progress bar,
NaN guard, epoch sampler, history). Run:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_loop_overhead.py
"""

import statistics
import time

import torch

import gmlib
from gmlib.data import gaussian_ring
from gmlib.models import GaussianMixture

STEPS, BATCH, REPEATS = 2000, 256, 5


def model_and_data() -> tuple[GaussianMixture, torch.Tensor]:
    gmlib.seed_everything(0)
    data = gaussian_ring(std=0.2).sample((5000,))
    return GaussianMixture(components=16, means=data[:16].clone(), scale=0.3), data


def plain_loop() -> float:
    model, data = model_and_data()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    began = time.perf_counter()
    for _ in range(STEPS):
        batch = data[torch.randint(len(data), (BATCH,))]
        loss = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - began


def gmlib_loop() -> float:
    model, data = model_and_data()
    began = time.perf_counter()
    gmlib.train(model, data, steps=STEPS, batch_size=BATCH, lr=0.02, progress=True)
    return time.perf_counter() - began


if __name__ == "__main__":
    torch.set_num_threads(1)
    plain = [plain_loop() for _ in range(REPEATS)]
    ours = [gmlib_loop() for _ in range(REPEATS)]
    print(f"{STEPS} Adam steps, batch {BATCH}, 16-component mixture, median of {REPEATS} runs")
    print(f"plain PyTorch loop: {statistics.median(plain):.3f} s")
    print(f"gmlib.train:        {statistics.median(ours):.3f} s")
    print(f"ratio gmlib / plain: {statistics.median(ours) / statistics.median(plain):.3f}")

"""Flows on the 8x8 digits at equal wall-clock time: gmlib's digits flow against zuko's MAF and NSF.

zuko (https://github.com/probabilists/zuko) is a peer normalizing-flow library
on PyTorch; it is a dependency of this benchmark only. Each model trains on one
CPU thread for the same number of seconds, in one loop shared by all three
(Adam, lr 1e-3, batch 128 drawn from the first 1000 digits, a fresh uniform
dequantisation y = x + u, u ~ U[0, 1)^64, for every batch), then is scored on
the 447 test digits by one estimator, ``gmlib.metrics.dequantized_nll`` (10
dequantisation draws): -E_u log p(x + u), an upper bound on the discrete NLL
in nats per image (Jensen), and the same in bits per dimension. zuko's flows
see the pixels standardised by the mean and standard deviation of all
dequantised training pixels (one scalar each: per-pixel scaling would blow up
the rare test values of pixels that are nearly constant in training), an affine
bijection whose log-determinant is added back, so all three densities are in
level units. Run:

    .venv/bin/python -m pip install -r benchmarks/requirements.txt -c constraints.txt
    .venv/bin/python benchmarks/flows_vs_zuko.py --seconds 25
"""

import argparse
import math
import time
from collections.abc import Callable

import torch
import zuko
from torch import nn

import gmlib
from gmlib.data import DIGITS_LEVELS, load_digits
from gmlib.metrics import dequantized_nll
from gmlib.models.flows import digits_flow

BATCH, LR, DRAWS = 128, 1e-3, 10
LogProb = Callable[[torch.Tensor], torch.Tensor]


def zuko_log_prob(flow: nn.Module, train: torch.Tensor) -> LogProb:
    """log p(y) in level units for a zuko flow fitted to standardised pixels s = (y - mean) / std."""
    y = train.double() + 0.5  # the mean and variance of all dequantised training pixels, in closed form
    mean, std = y.mean().item(), math.sqrt(y.var().item() + 1 / 12)
    log_det = -train.shape[1] * math.log(std)

    def log_prob(y: torch.Tensor) -> torch.Tensor:
        return flow().log_prob((y - mean) / std) + log_det

    return log_prob


def train_for(seconds: float, model: nn.Module, log_prob: LogProb, train: torch.Tensor) -> tuple[int, float]:
    """Adam on -log p(x + u) for ``seconds`` of wall-clock time; returns (steps, seconds)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    batches = torch.Generator().manual_seed(0)
    model.train()
    steps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        x = train[torch.randint(len(train), (BATCH,), generator=batches)]
        loss = -log_prob(x + torch.rand(x.shape, generator=batches)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    model.eval()
    return steps, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="training time per model (default 25)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = load_digits("train")[0], load_digits("test")[0]

    def gmlib_model() -> tuple[nn.Module, LogProb]:
        flow = digits_flow(train)
        return flow, flow.log_prob

    def zuko_model(kind: type) -> Callable[[], tuple[nn.Module, LogProb]]:
        def build() -> tuple[nn.Module, LogProb]:
            flow = kind(features=64, transforms=5, hidden_features=(256, 256))
            return flow, zuko_log_prob(flow, train)

        return build

    models = {
        "gmlib digits_flow": gmlib_model,
        "zuko MAF (5 x 256-256)": zuko_model(zuko.flows.MAF),
        "zuko NSF (5 x 256-256)": zuko_model(zuko.flows.NSF),
    }
    results = {}
    print(f"{'model':24s} {'steps':>6s} {'s':>6s} {'test NLL (nats/image)':>18s} {'bits/dim':>8s} {'train NLL':>10s}")
    for name, build in models.items():
        gmlib.seed_everything(0)
        model, log_prob = build()
        steps, seconds = train_for(args.seconds, model, log_prob, train)
        with torch.no_grad():
            mean, se = dequantized_nll(log_prob, test, draws=DRAWS, generator=torch.Generator().manual_seed(1))
            seen, _ = dequantized_nll(log_prob, train[: len(test)], draws=DRAWS, generator=torch.Generator())
        results[name] = mean
        bits = mean / (test.shape[1] * math.log(2))
        print(f"{name:24s} {steps:6d} {seconds:6.1f} {mean:8.2f} +- {se:6.2f} {bits:8.3f} {seen:10.2f}", flush=True)
    print(
        f"(one thread each; train NLL on {len(test)} training images, same estimator; "
        f"uniform over the {DIGITS_LEVELS} levels: {64 * math.log(DIGITS_LEVELS):.1f} nats/image)"
    )
    ours = results["gmlib digits_flow"]
    for name, theirs in results.items():
        if name != "gmlib digits_flow":
            print(f"ratio gmlib / {name}: {ours / theirs:.3f} ({ours - theirs:+.1f} nats/image)")


if __name__ == "__main__":
    main()

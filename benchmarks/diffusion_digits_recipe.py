"""What each change of the diffusion chapter's digits recipe does to the bound, one change at a time.

Starts from Ho et al.'s recipe (a noise-predicting perceptron, the linear
schedule 1e-4..0.02, sigma_t^2 = beta_t, L_simple) and adds, in order, the
changes the chapter "Diffusion" makes: the level-aware denoiser
(``prediction="levels"``), dropout 0.5 (1000 training images overfit), the
log-SNR-linear schedule with T = 250, training on the bound
(``objective="bound"``) and the variance from the model's own posterior over
x_0 (``variance="x0_posterior"``); then the chapter's model with T = 1000, and
trained on L_simple. Every configuration trains the
same perceptron (3 hidden layers of 256) for the same number of steps with
the same optimiser (Adam, lr 2e-3, cosine decay, batch 256) through
``gmlib.train``, and is scored by the stratified estimate of the bound on the
447 test digits (``DDPM.stratified_terms``, 100 strata), in nats per image.
Reference points: the per-pixel histogram 106.4, a linear autoregressive model
90.8, the uniform 181.3. Run (about 40 s per configuration and seed on one
thread):

    .venv/bin/python benchmarks/diffusion_digits_recipe.py --seeds 0 1
"""

import argparse
import time

import torch

import gmlib
from gmlib.data import load_digits
from gmlib.metrics import nll
from gmlib.models.diffusion import DDPM, NoiseSchedule

LINEAR = dict(schedule=NoiseSchedule.linear(1000))
LOG_SNR = dict(schedule=NoiseSchedule.log_snr_linear(250, snr_max=1e4, snr_min=1e-4))
LOG_SNR_1000 = dict(schedule=NoiseSchedule.log_snr_linear(1000, snr_max=1e4, snr_min=1e-4))
LEVELS = dict(prediction="levels", dropout=0.5)
CONFIGURATIONS = {
    "Ho et al.: eps, linear, beta, L_simple": dict(**LINEAR, prediction="eps", variance="beta"),
    "+ levels denoiser": dict(**LINEAR, prediction="levels", variance="beta"),
    "+ dropout 0.5": dict(**LINEAR, **LEVELS, variance="beta"),
    "+ log-SNR schedule, T = 250": dict(**LOG_SNR, **LEVELS, variance="beta"),
    "+ trained on the bound": dict(**LOG_SNR, **LEVELS, variance="beta", objective="bound"),
    "+ x0-posterior variance (the chapter's)": dict(**LOG_SNR, **LEVELS, variance="x0_posterior", objective="bound"),
    "the chapter's with T = 1000": dict(**LOG_SNR_1000, **LEVELS, variance="x0_posterior", objective="bound"),
    "the chapter's on L_simple": dict(**LOG_SNR, **LEVELS, variance="x0_posterior"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_x, _ = load_digits("train")
    test_x, _ = load_digits("test")
    print(f"{'configuration':42s} {'seed':>4s} {'bound':>8s} {'s.e.':>5s} {'train s':>8s}")
    for name, options in CONFIGURATIONS.items():
        for seed in args.seeds:
            gmlib.seed_everything(seed)
            model = DDPM(dim=64, levels=17, hidden=256, layers=3, **options)
            began = time.perf_counter()
            gmlib.train(model, train_x, steps=args.steps, batch_size=256, lr=2e-3, lr_schedule="cosine", progress=False)
            seconds = time.perf_counter() - began
            bound, se = nll(-model.stratified_terms(test_x, strata=100).sum(1))
            print(f"{name:42s} {seed:4d} {bound:8.2f} {se:5.2f} {seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()

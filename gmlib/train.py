"""The one training loop for every model in the book.

``train`` minimises ``model.loss`` with Adam, or, for an adversarial model,
alternates ``discriminator_steps`` discriminator updates with one generator
update (Goodfellow et al. 2014, Algorithm 1) -- the only branch in the loop.

The training length of every chapter scales with one knob, the environment
variable ``GMLIB_TRAIN_SCALE`` (default 1): ``GMLIB_TRAIN_SCALE=4 jupyter-book
build .`` trains every model four times longer. ``GMLIB_SEED`` shifts every
seed (``gmlib.runtime``), so a run with ``GMLIB_SEED=k`` is a replicate.

Under ``torchrun`` (a process group of several processes) the same loop
trains data-parallel, each rank on its part of every batch, with gradients
averaged by DistributedDataParallel; ``gmlib.distributed`` says how.
"""

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from tqdm import tqdm

from gmlib import distributed
from gmlib.protocol import is_adversarial, is_generative
from gmlib.runtime import replicate_seed
from gmlib.validation import require_finite, require_int, require_nonnegative, require_positive

Data = torch.Tensor | tuple[torch.Tensor, ...] | torch.distributions.Distribution | Callable[[int], torch.Tensor]

SCALE_VARIABLE = "GMLIB_TRAIN_SCALE"
LrSchedule = Literal["constant", "cosine"]
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the loss."""


@dataclass
class TrainResult:
    """What a run of ``train`` leaves behind.

    ``history`` maps each loss name ("loss", or "discriminator" and "generator")
    to its value at every step; ``seconds`` is the wall-clock training time of
    this call (a resumed run counts only its own steps). ``cached`` is True when
    ``gmlib.trained`` loaded the model from its cache instead of training it;
    ``steps``, ``seconds`` and ``history`` are then those of the original run.
    """

    steps: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    cached: bool = False


def training_scale() -> float:
    """The factor ``GMLIB_TRAIN_SCALE`` applies to every default training length."""
    raw = os.environ.get(SCALE_VARIABLE, "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE} must be a number > 0, got {raw!r}") from None
    require_positive(SCALE_VARIABLE, scale)
    return scale


def scaled_steps(steps: int) -> int:
    """``steps`` times the training scale, at least one."""
    require_int("steps", steps, low=1)
    return max(1, round(steps * training_scale()))


def train(
    model: nn.Module,
    data: Data,
    *,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-3,
    discriminator_lr: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    discriminator_steps: int = 1,
    lr_schedule: LrSchedule = "constant",
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 500,
    progress: bool = True,
    autocast: bool = False,
) -> TrainResult:
    """Train ``model`` on ``data`` for ``steps`` x ``GMLIB_TRAIN_SCALE`` steps.

    Args:
        model: a ``GenerativeModel`` or an ``AdversarialModel`` (see
            ``gmlib.protocol``), already on its device.
        data: a tensor (N, *event) to draw minibatches from, a tuple of
            tensors with the same N (examples and their labels: the model's
            ``loss(x, y)`` receives one minibatch of each), a
            ``torch.distributions.Distribution``, or a callable ``n -> (n, *event)``
            that draws fresh samples (toy densities).
        steps: the default training length, before scaling.
        weight_decay: an L2 penalty (weight_decay / 2) ||theta||^2 on every
            parameter, added to the loss's gradient by Adam (not decoupled).
        discriminator_steps: k in Algorithm 1; adversarial models only.
        lr_schedule: "constant", or "cosine": every learning rate decays as
            lr (1 + cos(pi s / S)) / 2 from lr at step s = 0 towards 0 at the
            last step S (Loshchilov & Hutter 2017). A function of the step
            alone, so a resumed run follows the same rates.
        seed: seeds the order in which a tensor's examples are drawn, shifted
            by ``GMLIB_SEED`` like every seed (``gmlib.runtime.replicate_seed``).
        checkpoint: a file to save to every ``checkpoint_every`` steps and at
            the end (atomically); if it exists, training resumes from it.
        autocast: compute each loss under ``torch.autocast`` in bfloat16 on the
            model's device (matrix products and convolutions in bfloat16; the
            backward pass and Adam in the parameters' own dtype). Off by default.

    Under ``torchrun`` (``gmlib.distributed``) each of the P processes takes
    batch_size / P examples of every batch of ``batch_size``; the history
    holds the losses averaged over the processes; rank 0 alone shows progress
    and writes the checkpoint, which every rank resumes from.

    Raises:
        TrainingDiverged: when a loss is NaN or infinite, naming the step.
        ValueError: naming ``batch_size`` when the number of processes does not
            divide it, or ``checkpoint`` when it was written by another number
            of processes.
    """
    total = scaled_steps(steps)
    require_int("batch_size", batch_size, low=1)
    require_int("discriminator_steps", discriminator_steps, low=1)
    require_positive("lr", lr)
    require_nonnegative("weight_decay", weight_decay)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if not isinstance(autocast, bool):
        raise ValueError(f"autocast must be True or False, got {autocast!r}")
    adversarial = is_adversarial(model)
    if not adversarial and not is_generative(model):
        raise ValueError(
            f"model must define loss(x) and sample(n), or the adversarial pair, got {type(model).__name__}"
        )
    device = next(model.parameters()).device
    group = distributed.current()  # None for one process: the plain loop
    shard = None if group is None else group.shard(batch_size)
    draw = _Batches(data, batch_size, replicate_seed(seed), device, shard=shard)

    if adversarial:
        optimizers = {
            "discriminator": torch.optim.Adam(
                model.discriminator.parameters(), lr=discriminator_lr or lr, betas=betas, weight_decay=weight_decay
            ),
            "generator": torch.optim.Adam(model.generator.parameters(), lr=lr, betas=betas, weight_decay=weight_decay),
        }
    else:
        optimizers = {"loss": torch.optim.Adam(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)}
    history: dict[str, list[float]] = {name: [] for name in optimizers}
    if adversarial:
        losses = {"discriminator": model.discriminator_loss, "generator": model.generator_loss}
    else:
        losses = {"loss": model.loss}

    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if group is not None:
        group.fork_rng()
    if path is not None and path.exists():
        start = _load_checkpoint(path, model, optimizers, history, draw, group)
    if group is not None:
        group.agree("checkpoint", start, "every rank must read the same checkpoint file (a shared folder)")
        players = {"discriminator": model.discriminator, "generator": model.generator} if adversarial else {}
        losses = {name: group.data_parallel(players.get(name, model), loss) for name, loss in losses.items()}
    precision = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()

    def compute(name: str) -> torch.Tensor:
        batch = draw()
        with precision:
            return losses[name](*batch)

    def save(step: int) -> None:
        if group is None:
            _save_checkpoint(path, model, optimizers, history, draw, step)
            return
        states = group.rng_states()  # a collective: every rank takes part
        if group.rank == 0:
            _save_checkpoint(path, model, optimizers, history, draw, step, states)
        group.barrier()  # no rank goes on (or returns) before the file is complete

    model.train()
    began = time.perf_counter()
    show = progress and (group is None or group.rank == 0)
    bar = tqdm(range(start, total), initial=start, total=total, disable=not show, mininterval=1.0, leave=False)
    for step in bar:
        if lr_schedule == "cosine":
            _set_learning_rates(optimizers, (1 + math.cos(math.pi * step / total)) / 2)
        if adversarial:
            for _ in range(discriminator_steps):
                d_loss = _step(optimizers["discriminator"], compute("discriminator"), "discriminator", step, group)
            g_loss = _step(optimizers["generator"], compute("generator"), "generator", step, group)
            history["discriminator"].append(d_loss)
            history["generator"].append(g_loss)
            bar.set_postfix(d=f"{d_loss:.3f}", g=f"{g_loss:.3f}", refresh=False)
        else:
            loss = _step(optimizers["loss"], compute("loss"), "loss", step, group)
            history["loss"].append(loss)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        if path is not None and (step + 1) % checkpoint_every == 0:
            save(step + 1)
    bar.close()
    if path is not None:
        save(total)
    model.eval()
    return TrainResult(steps=total, seconds=time.perf_counter() - began, history=history)


def _set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], factor: float) -> None:
    """Set every parameter group's learning rate to ``factor`` times the rate it started with."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor


def _step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    name: str,
    step: int,
    group: distributed.Group | None = None,
) -> float:
    """One gradient step on ``loss``; refuse to take it if the loss is not finite (on any rank, in a group).

    Returns the loss, averaged over the ranks in a group.
    """
    if loss.dim() != 0:
        raise ValueError(f"the {name} must be a scalar, got shape {tuple(loss.shape)}")
    value = loss.item() if group is None else group.mean(loss)
    if not math.isfinite(value):
        raise TrainingDiverged(f"the {name} became {value} at step {step}; lower the learning rate or check the data")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value


class _Batches:
    """Minibatches on ``device``, drawn from ``data``: a call returns a tuple, (batch,) or (batch, labels).

    A tensor (or each tensor of a tuple, at the same indices) is read in epochs
    of random permutations (every example once per epoch); permutation e is
    seeded by (seed, e), so the stream is a function of
    ``position`` alone and resumes exactly from a checkpoint. Distributions and
    callables draw fresh samples from the (checkpointed) torch RNG.

    ``shard``: this rank's slice of every batch under ``torchrun``; a tensor's
    batch is cut from the global one, a distribution or callable draws only
    the slice's size (from the rank's own random stream).
    """

    def __init__(
        self, data: Data, batch_size: int, seed: int, device: torch.device, *, shard: slice | None = None
    ) -> None:
        self.batch_size, self.seed, self.device, self.shard = batch_size, seed, device, shard
        self.position = 0  # examples drawn so far
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)
        if isinstance(data, torch.Tensor):
            data = (data,)
        if isinstance(data, tuple) and data and all(isinstance(part, torch.Tensor) for part in data):
            for part in data:
                if part.dim() < 1 or part.shape[0] == 0:
                    raise ValueError(f"data must be a non-empty tensor (N, *event), got shape {tuple(part.shape)}")
                if part.is_floating_point():
                    require_finite("data", part)
            if len({part.shape[0] for part in data}) != 1:
                raise ValueError(f"data's tensors must share their first size N, got {[len(part) for part in data]}")
            self.tensors: tuple[torch.Tensor, ...] | None = tuple(part.to(device) for part in data)
            self.draw = None
        elif isinstance(data, torch.distributions.Distribution):
            self.tensors, self.draw = None, lambda n: data.sample((n,))
        elif callable(data):
            self.tensors, self.draw = None, data
        else:
            raise ValueError(
                "data must be a tensor, a tuple of tensors, a Distribution or a callable n -> samples, "
                f"got {type(data).__name__}"
            )

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            self._epoch, self._order = epoch, torch.randperm(self.tensors[0].shape[0], generator=generator)
        return self._order

    def __call__(self) -> tuple[torch.Tensor, ...]:
        if self.tensors is None:
            size = self.batch_size if self.shard is None else self.shard.stop - self.shard.start
            return (self.draw(size).to(self.device),)
        n = self.tensors[0].shape[0]
        positions = torch.arange(self.position, self.position + self.batch_size)
        index = torch.cat(
            [self._permutation(int(e))[positions[positions // n == e] % n] for e in (positions // n).unique()]
        )
        self.position += self.batch_size
        if self.shard is not None:
            index = index[self.shard]
        return tuple(part[index.to(self.device)] for part in self.tensors)


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    history: dict[str, list[float]],
    batches: _Batches,
    step: int,
    rng_states: torch.Tensor | None = None,
) -> None:
    """Write the training state to ``path`` atomically (temporary file, then rename).

    ``rng_states``: every rank's random state (world size, n) under ``torchrun``;
    one process saves its own. ``world_size`` records how many processes
    trained (a checkpoint without it counts as one).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "history": history,
        "data_position": batches.position,
        "torch_rng": torch.get_rng_state(),
        "world_size": 1 if rng_states is None else len(rng_states),
    }
    if rng_states is not None:
        state["rank_rngs"] = rng_states
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load_checkpoint(
    path: Path,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    history: dict[str, list[float]],
    batches: _Batches,
    group: distributed.Group | None = None,
) -> int:
    """Restore the state saved by ``_save_checkpoint``; return the step to resume at."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    written, size = int(state.get("world_size", 1)), 1 if group is None else group.size
    if written != size:
        raise ValueError(
            f"checkpoint {path} was written by {written} process(es), but this run has {size}: resume it with "
            f"torchrun --nproc_per_node={written} (one process: plain python), or give a new checkpoint file"
        )
    if set(state["optimizers"]) != set(optimizers):
        raise ValueError(
            f"checkpoint {path} was written for losses {sorted(state['optimizers'])}, not {sorted(optimizers)}"
        )
    model.load_state_dict(state["model"])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
        history[name].extend(state["history"][name])
    batches.position = int(state["data_position"])
    # a row of the (world size, n) states is a view at an offset, which set_rng_state misreads (a crash): clone it
    torch.set_rng_state(state["torch_rng"] if group is None else state["rank_rngs"][group.rank].clone())
    for values in history.values():
        require_finite("checkpoint history", torch.tensor(values, dtype=torch.float64))
    return int(state["step"])

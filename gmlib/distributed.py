"""Data-parallel training with PyTorch's own engine: ``torchrun``, ``torch.distributed`` and DDP.

``DESIGN.md``, "Beyond one machine": gmlib never schedules processes itself.
``torchrun --nproc_per_node=P script.py`` starts P copies of a script; each
calls ``start()`` to join the process group, then ``gmlib.train`` as usual.
The trainer sees the group (``current()``) and trains data-parallel:

- every rank draws the same global batch of B examples (the stream is a
  function of the seed and the position, as in one process) and keeps its own
  disjoint slice of B / P (``Group.shard``);
- each loss is the ``forward`` of a ``DistributedDataParallel`` module over its
  own player's parameters (``Group.data_parallel``: the whole model, or one
  module per player of an adversarial model), so backward averages the
  gradients over the ranks: with a loss that is a mean over the batch, the
  averaged gradient is the one process's gradient on the whole global batch;
- the losses are averaged over the ranks before the step (``Group.mean``):
  every rank records the global loss, and a loss that is NaN on any rank
  stops every rank at the same step;
- rank r > 0 forks its own random stream (``Group.fork_rng``), so the ranks'
  noise (latents, dropout, fresh samples) differs: a model whose loss is
  deterministic given the batch trains as in one process, to float rounding;
  a stochastic one is an equally valid run with other noise;
- rank 0 alone draws the progress bar and writes checkpoints, which hold every
  rank's CPU random state (``Group.rng_states``), so every rank resumes exactly.

A rank that raises exits its process; ``torchrun`` then stops the others (its
default, ``--max-restarts=0``) and exits with a non-zero status, so a failure
never leaves the group waiting in a collective.

Without a process group (or with one of a single process) none of this runs:
``current()`` is None and training is the single-process loop, bit for bit.
"""

import hashlib
import os
from collections.abc import Callable
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

Backend = Literal["gloo", "nccl"]
BACKENDS: tuple[str, ...] = ("gloo", "nccl")
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")  # what torchrun sets for every worker


def launched() -> bool:
    """True when this process was started by ``torchrun`` (it set ``RANK``, ``WORLD_SIZE``, ...)."""
    return all(name in os.environ for name in LAUNCH_VARIABLES)


def default_backend() -> Backend:
    """The backend for this machine: "nccl" when CUDA is present, otherwise "gloo" (CPU)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def start(backend: Backend | None = None) -> tuple[int, int]:
    """Join the process group ``torchrun`` describes; return (rank, world size), (0, 1) for a plain process.

    Args:
        backend: "gloo" (CPU, and GPUs) or "nccl" (GPUs); None picks
            ``default_backend()``. Under ``torchrun`` with CUDA, each rank uses
            GPU ``LOCAL_RANK`` (``local_device``).

    Raises:
        ValueError: naming ``backend`` when it is not one of ``BACKENDS`` or
            this build of torch (or this machine) lacks it.
    """
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not dist.is_available() or not dist.is_backend_available(backend):
        raise ValueError(
            f"backend {backend!r} is not available in this torch build {torch.__version__} on this machine "
            f"(nccl needs CUDA); use backend='gloo'"
        )
    if not launched():
        return 0, 1
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def stop() -> None:
    """Leave the process group, if this process joined one (call it once training and saving are done)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank in the group, 0 without one."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_device(device: torch.device) -> torch.device:
    """``device``, with a CUDA device made this worker's own GPU (``cuda:LOCAL_RANK``) under ``torchrun``.

    Raises:
        ValueError: naming ``device`` when there are fewer GPUs than processes on this machine.
    """
    if device.type == "cuda" and device.index is None and launched():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"device 'cuda' under torchrun gives each process its own GPU, but this is local rank {local} "
                f"and the machine has {torch.cuda.device_count()} GPU(s): start at most that many processes "
                "per machine, or train on the CPU"
            )
        return torch.device("cuda", local)
    return device


def current() -> "Group | None":
    """The process group ``gmlib.train`` trains over, or None when there is none or it holds one process.

    Raises:
        ValueError: naming the missing ``backend`` when ``torchrun`` started
            several processes but none joined a process group (each would train
            a whole model alone, and all would write the same checkpoint).
    """
    initialised = dist.is_available() and dist.is_initialized()
    if not initialised and launched() and int(os.environ["WORLD_SIZE"]) > 1:
        raise ValueError(
            f"torchrun started {os.environ['WORLD_SIZE']} processes, but no process group (backend) is initialised: "
            "call gmlib.distributed.start(backend) (backend 'gloo' or 'nccl') before gmlib.train"
        )
    if not initialised or dist.get_world_size() == 1:
        return None
    return Group()


class _Objective(nn.Module):
    """One loss of a model as a module's ``forward``, over the parameters of ``player``.

    DDP averages gradients only for what its wrapped module's ``forward``
    computed; the trainer calls ``model.loss(*batch)`` (or a player's loss),
    so this adapter makes that call the ``forward``. Parameters of other
    players that the loss touches get gradients too, unsynchronised, as in one
    process: their own optimizer zeroes them before their own step.
    """

    def __init__(self, player: nn.Module, loss: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.player = player  # registered, so DDP hooks and broadcasts its parameters and buffers
        self.objective = loss

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.objective(*batch)


class Group:
    """The initialised default process group, as the trainer uses it: rank, size and four collectives."""

    def __init__(self) -> None:
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        # the device collectives run on: NCCL needs CUDA tensors, gloo takes CPU ones
        cuda = dist.get_backend() == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")

    def shard(self, batch_size: int) -> slice:
        """This rank's slice of a global batch of ``batch_size`` examples: B / P consecutive ones.

        Raises:
            ValueError: naming ``batch_size`` when the world size does not divide it.
        """
        if batch_size % self.size:
            raise ValueError(
                f"batch_size must be divisible by the number of processes {self.size} (each takes an equal part "
                f"of every batch), got {batch_size}"
            )
        local = batch_size // self.size
        return slice(self.rank * local, (self.rank + 1) * local)

    def data_parallel(self, player: nn.Module, loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``loss`` as the forward of a DDP module over ``player``'s parameters (broadcast from rank 0 now).

        Every parameter of ``player`` that requires a gradient must get one from
        every call of ``loss`` (DDP's default, which skips a search of the graph
        each step); gmlib's shared model tests check this for every model.
        """
        device = next(player.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(_Objective(player, loss), device_ids=ids)

    def mean(self, loss: torch.Tensor) -> float:
        """The mean over the ranks of a scalar loss (in float64): the loss of the global batch."""
        total = loss.detach().to(self.device, torch.float64).reshape(1)
        dist.all_reduce(total)
        return total.item() / self.size

    def rng_states(self) -> torch.Tensor:
        """Every rank's torch CPU random state, (size, n) uint8, row r from rank r (a collective)."""
        state = torch.get_rng_state().to(self.device)
        states = [torch.empty_like(state) for _ in range(self.size)]
        dist.all_gather(states, state)
        return torch.stack(states).cpu()

    def fork_rng(self) -> None:
        """Give rank r > 0 its own random stream, a hash of (its state now, r); rank 0 keeps the caller's.

        Ranks usually start from one seed; without this, their noise (latents,
        dropout, fresh samples) would repeat on every rank.
        """
        if self.rank == 0:
            return
        digest = hashlib.sha256(torch.get_rng_state().numpy().tobytes() + f"rank {self.rank}".encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    def agree(self, name: str, value: int, hint: str) -> None:
        """Raise ValueError naming ``name`` unless every rank holds the same ``value`` (a collective)."""
        values = [None] * self.size
        dist.all_gather_object(values, value)
        if len(set(values)) != 1:
            raise ValueError(f"{name} differs between the ranks: {values}; {hint}")

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        dist.barrier()

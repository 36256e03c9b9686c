"""gmlib.train under torchrun: two gloo processes on the CPU against one process on the same global batches.

The torchrun jobs run this file as their script (``python tests/test_distributed.py SCENARIO FOLDER``):
each rank writes what it saw to FOLDER/rank<r>.pt and the tests compare it with one process trained here.
Two jobs serve every test (a module fixture): "crash", where rank 1 raises midway, and "train".
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from test_train import Recorder  # a model whose loss records every batch it is handed

import gmlib
from gmlib import distributed
from gmlib.data import load_digits
from gmlib.models import GAN, MADE

STEPS, BATCH, EVERY, CRASH_AT = 12, 32, 4, 6  # rank 1 raises at step 6, after the checkpoint of step 4
JOB_TIMEOUT = 120  # seconds; a hang would run into it


def made() -> MADE:
    """A deterministic loss (no dropout): two ranks can match one process to float tolerance."""
    gmlib.seed_everything(0)
    return MADE(dim=64, levels=17, hidden=32)


def gan() -> GAN:
    gmlib.seed_everything(1)
    return GAN(dim=64, latent=4, hidden=16, tanh=True)


class Crashing(MADE):
    """MADE whose loss raises on rank 1 at step ``CRASH_AT``, while rank 0 goes on into the step's collectives."""

    calls = 0

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        if distributed.rank() == 1 and self.calls == CRASH_AT:
            raise RuntimeError("rank 1 fails on purpose")
        self.calls += 1
        return super().loss(x)


def digits() -> torch.Tensor:
    return load_digits("train")[0]


# --- the torchrun side ------------------------------------------------------------------------------------


def worker(scenario: str, folder: Path) -> None:
    """What each rank runs; ``folder`` holds the checkpoint and the results."""
    rank, size = distributed.start("gloo")
    assert size == 2
    options = dict(steps=STEPS, batch_size=BATCH, seed=4, progress=False)
    if scenario == "crash":
        gmlib.seed_everything(0)
        model = Crashing(dim=64, levels=17, hidden=32)
        gmlib.train(model, digits(), checkpoint=folder / "made.ckpt", checkpoint_every=EVERY, **options)
        return
    results: dict[str, object] = {}
    resumed = made()
    run = gmlib.train(resumed, digits(), checkpoint=folder / "made.ckpt", **options)
    results["resumed"] = (resumed.state_dict(), run.history)
    straight = made()
    run = gmlib.train(straight, digits(), **options)
    results["straight"] = (straight.state_dict(), run.history)

    pair = gan()
    results["gan_initial"] = {k: v.clone() for k, v in pair.state_dict().items()}
    gmlib.train(pair, digits().float() / 8 - 1, steps=5, batch_size=16, discriminator_steps=2, progress=False)
    results["gan"] = pair.state_dict()

    recorder = Recorder()
    gmlib.train(recorder, torch.arange(40)[:, None], steps=6, batch_size=8, progress=False)
    results["batches"] = recorder.batches
    recorder = Recorder()
    gmlib.train(recorder, lambda n: torch.randn(n, 1), steps=3, batch_size=8, progress=False)
    results["fresh"] = recorder.batches

    with open(folder / f"progress{rank}.txt", "w") as bar, contextlib.redirect_stderr(bar):
        gmlib.train(Recorder(), torch.randn(16, 1), steps=7, batch_size=4, progress=True)

    for name, call in {
        "batch_size": lambda: gmlib.train(Recorder(), torch.randn(16, 1), steps=1, batch_size=3),
        "checkpoint": lambda: gmlib.train(made(), digits(), checkpoint=folder / "one.ckpt", **options),
    }.items():
        try:
            call()
        except ValueError as error:
            results[f"{name}_error"] = str(error)
    torch.save(results, folder / f"rank{rank}.pt")
    distributed.stop()


# --- the pytest side --------------------------------------------------------------------------------------


def torchrun(scenario: str, folder: Path, nproc: int = 2) -> tuple[subprocess.CompletedProcess, float]:
    """Run this file under ``torchrun --nproc_per_node=nproc`` (the venv's python, one thread a rank)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a rendezvous on a free port
        f"--nproc_per_node={nproc}",
        "--monitor-interval=0.1",
        __file__,
        scenario,
        str(folder),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
    return done, time.perf_counter() - began


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[str, object]:
    """Run the "crash" job, then the "train" job that resumes its checkpoint; return what they left."""
    folder = tmp_path_factory.mktemp("torchrun")
    gmlib.seed_everything(0)
    gmlib.train(Recorder(), torch.randn(8, 1), steps=2, checkpoint=folder / "one.ckpt", progress=False)
    crash, crash_seconds = torchrun("crash", folder)
    checkpoint = torch.load(folder / "made.ckpt", weights_only=True)
    train, _ = torchrun("train", folder)
    assert train.returncode == 0, train.stdout + train.stderr
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]
    bars = [(folder / f"progress{r}.txt").read_text() for r in range(2)]
    return {
        "crash": crash,
        "crash_seconds": crash_seconds,
        "checkpoint": checkpoint,
        "ranks": ranks,
        "bars": bars,
        "folder": folder,
    }


def one_process_made() -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    model = made()
    run = gmlib.train(model, digits(), steps=STEPS, batch_size=BATCH, seed=4, progress=False)
    return model.state_dict(), run.history


def assert_states_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=atol, rtol=0), key


def test_a_rank_that_raises_stops_the_others(jobs):
    crash = jobs["crash"]
    assert crash.returncode != 0 and jobs["crash_seconds"] < JOB_TIMEOUT / 2
    assert "rank 1 fails on purpose" in crash.stdout + crash.stderr
    # rank 0 wrote the checkpoint of step 4 with both ranks' random states, and no temporary file stayed behind
    assert jobs["checkpoint"]["step"] == EVERY and jobs["checkpoint"]["world_size"] == 2
    assert jobs["checkpoint"]["rank_rngs"].shape[0] == 2
    assert not list(jobs["folder"].glob("*.tmp"))


def test_two_processes_train_as_one_on_the_same_global_batches(jobs):
    state, history = one_process_made()
    for rank in jobs["ranks"]:
        two_state, two_history = rank["straight"]
        assert_states_close(two_state, state, atol=1e-5)  # gradients averaged: the one process's gradient
        assert two_history["loss"] == pytest.approx(history["loss"], rel=1e-5)
    before = made().state_dict()
    assert any(not torch.allclose(state[k], before[k]) for k in state), "training did not move the parameters"


def test_a_killed_run_resumed_under_torchrun_ends_as_one_never_killed(jobs):
    for rank in jobs["ranks"]:
        (resumed, resumed_history), (straight, straight_history) = rank["resumed"], rank["straight"]
        assert_states_close(resumed, straight, atol=1e-6)
        assert resumed_history["loss"] == pytest.approx(straight_history["loss"], rel=1e-6)
        assert len(resumed_history["loss"]) == STEPS


def test_each_rank_takes_its_own_part_of_every_global_batch(jobs):
    one = Recorder()
    gmlib.train(one, torch.arange(40)[:, None], steps=6, batch_size=8, progress=False)
    zero, first = (rank["batches"] for rank in jobs["ranks"])
    for step, batch in enumerate(one.batches):
        assert torch.equal(torch.cat([zero[step], first[step]]), batch)  # disjoint halves of the global batch


def test_fresh_samples_differ_between_ranks(jobs):
    zero, first = (rank["fresh"] for rank in jobs["ranks"])
    assert all(len(a) == len(b) == 4 for a, b in zip(zero, first, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(zero, first, strict=True))


def test_both_players_of_an_adversarial_model_are_synchronised(jobs):
    zero, first = (rank["gan"] for rank in jobs["ranks"])
    initial = jobs["ranks"][0]["gan_initial"]
    for player in ("generator", "discriminator"):
        keys = [k for k in zero if k.startswith(player + ".")]
        assert keys
        assert all(torch.equal(zero[k], first[k]) for k in keys), f"the {player}s differ between the ranks"
        assert any(not torch.equal(zero[k], initial[k]) for k in keys), f"the {player} did not train"


def test_only_rank_zero_shows_progress(jobs):
    zero, first = jobs["bars"]
    assert "/7 [" in zero and first == ""


def test_world_size_must_divide_the_batch_size(jobs):
    for rank in jobs["ranks"]:
        assert "batch_size must be divisible by the number of processes 2" in rank["batch_size_error"]


def test_a_checkpoint_of_another_world_size_is_refused(jobs, tmp_path):
    for rank in jobs["ranks"]:  # one process's checkpoint, resumed by two
        assert "was written by 1 process(es), but this run has 2" in rank["checkpoint_error"]
        assert rank["checkpoint_error"].startswith("checkpoint ")
    two = tmp_path / "two.ckpt"  # two processes' checkpoint, resumed by one
    two.write_bytes((jobs["folder"] / "made.ckpt").read_bytes())
    with pytest.raises(ValueError, match=r"checkpoint .* written by 2 process\(es\), but this run has 1"):
        gmlib.train(made(), digits(), steps=STEPS, checkpoint=two, progress=False)


def test_a_checkpoint_without_a_world_size_counts_as_one_process(tmp_path):
    path = tmp_path / "old.ckpt"
    gmlib.train(Recorder(), torch.randn(8, 1), steps=2, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)
    assert state["world_size"] == 1
    del state["world_size"]  # as every checkpoint written before torchrun support
    torch.save(state, path)
    result = gmlib.train(Recorder(), torch.randn(8, 1), steps=4, checkpoint=path, progress=False)
    assert len(result.history["loss"]) == 4


@pytest.mark.parametrize("backend", ["mpi", "nccl-typo"])
def test_a_backend_that_is_not_offered_is_named(backend):
    with pytest.raises(ValueError, match="backend must be one of"):
        distributed.start(backend)


def test_a_backend_missing_from_the_build_is_named(monkeypatch):
    monkeypatch.setattr(dist, "is_backend_available", lambda name: False)
    with pytest.raises(ValueError, match="backend 'gloo' is not available"):
        distributed.start("gloo")


def test_a_plain_process_has_no_group(monkeypatch):
    for name in distributed.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.start("gloo") == (0, 1)
    assert not dist.is_initialized() and distributed.current() is None and distributed.rank() == 0


def test_torchrun_without_a_process_group_is_refused(monkeypatch):
    launch = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "1"}
    for name, value in launch.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=r"no process group \(backend\) is initialised"):
        gmlib.train(Recorder(), torch.randn(8, 1), steps=1, progress=False)


def test_a_group_of_one_process_trains_bit_for_bit_as_no_group(tmp_path):
    plain_state, plain_history = one_process_made()
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        assert distributed.current() is None
        state, history = one_process_made()
    finally:
        dist.destroy_process_group()
    assert history == plain_history and all(torch.equal(state[k], plain_state[k]) for k in state)


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))

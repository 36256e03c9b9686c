"""The MNIST command (gmlib.mnist) end to end on tiny IDX files, in one process and under torchrun."""

import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from gmlib.mnist import FAMILIES, main, quantise

N = 40  # images in the tiny MNIST


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as file:  # closed: a gzip stream is flushed
        file.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist(tmp_path):
    """A folder with N random 28x28 images and labels, as MNIST's training files (the labels gzipped)."""
    rng = np.random.default_rng(0)
    images = (rng.random((N, 28, 28)) < 0.2) * rng.integers(0, 256, (N, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, N))
    return tmp_path


def run(mnist, family, *extra):
    out = mnist / "out"
    argv = ["--family", family, "--root", str(mnist), "--steps", "2", "--batch-size", "8", "--samples", "4"]
    return main([*argv, "--out", str(out), "--no-progress", *extra]), out


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_on_mnist_and_writes_a_checkpoint_and_a_sample_grid(mnist, family, capsys):
    status, out = run(mnist, family)
    printed = capsys.readouterr().out
    assert status == 0
    assert f"MNIST: {N} training images 28x28, quantised to 17 levels" in printed
    assert "1 process, batch 8, 2 steps" in printed and "trained to step 2" in printed
    state = torch.load(out / f"{family}.ckpt", weights_only=True)
    assert state["step"] == 2 and state["world_size"] == 1
    assert (out / f"{family}-samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_running_the_command_again_resumes_from_its_checkpoint(mnist, capsys):
    run(mnist, "gan")
    status, out = run(mnist, "gan", "--steps", "3")
    printed = capsys.readouterr().out
    assert status == 0 and "at step 2" in printed and "trained to step 3" in printed
    assert len(torch.load(out / "gan.ckpt", weights_only=True)["history"]["generator"]) == 3
    with pytest.raises(SystemExit):  # fewer steps than the checkpoint holds: refused, the checkpoint kept
        run(mnist, "gan", "--steps", "1")
    assert "--steps 1 is behind the checkpoint" in capsys.readouterr().err
    assert torch.load(out / "gan.ckpt", weights_only=True)["step"] == 3


def test_bf16_autocast_trains_with_finite_losses(mnist, capsys):
    status, out = run(mnist, "pixelcnn", "--bf16")
    assert status == 0
    assert all(np.isfinite(torch.load(out / "pixelcnn.ckpt", weights_only=True)["history"]["loss"]))


def test_a_missing_folder_or_file_is_named_and_fails(tmp_path, capsys):
    for root in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(SystemExit) as stopped:
            main(["--family", "vae", "--root", str(root)])
        assert stopped.value.code != 0
        message = capsys.readouterr().err
        assert "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]" in message
    assert "never downloads" in message  # the missing file itself, from gmlib.data.load_mnist


@pytest.mark.parametrize(("option", "value"), [("--levels", "1"), ("--samples", "0"), ("--steps", "0")])
def test_bad_options_are_named(mnist, capsys, option, value):
    with pytest.raises(SystemExit) as stopped:
        run(mnist, "gan", option, value)
    assert stopped.value.code != 0 and option.lstrip("-") in capsys.readouterr().err


def test_mnist_levels_are_rounded_to_the_nearest_of_l():
    images = torch.arange(256, dtype=torch.uint8).repeat(4)[: 28 * 28].reshape(1, 28, 28)
    for levels in (2, 17, 256):
        expected = np.round(images.double().numpy().reshape(1, -1) * (levels - 1) / 255 + 1e-9)
        assert np.array_equal(quantise(images, levels).numpy(), expected)


def test_two_processes_under_torchrun(mnist):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["--monitor-interval=0.1", "-m", "gmlib.mnist", "--family", "gan", "--root", str(mnist)]
    command += ["--steps", "3", "--batch-size", "8", "--samples", "4", "--out", str(mnist / "out"), "--no-progress"]
    command += ["--device", "cpu"]  # two processes need two GPUs; gloo on the CPU runs anywhere
    done = subprocess.run(
        command, env=os.environ | {"OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("2 processes (4 images each per step)") == 1  # rank 0 alone speaks
    state = torch.load(mnist / "out" / "gan.ckpt", weights_only=True)
    assert state["step"] == 3 and state["world_size"] == 2
    assert (mnist / "out" / "gan-samples.png").exists()

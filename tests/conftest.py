"""Shared fixtures: every test starts from a fixed seed."""

import pytest
import torch

import gmlib


@pytest.fixture(autouse=True)
def _seeded() -> None:
    gmlib.seed_everything(0)
    torch.set_default_dtype(torch.float32)

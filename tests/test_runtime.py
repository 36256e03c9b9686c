import pytest
import torch

import gmlib


def test_device_is_cuda_exactly_when_available():
    assert gmlib.device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_seed_everything_makes_draws_reproducible():
    gmlib.seed_everything(7)
    first = torch.randn(5)
    generator = gmlib.seed_everything(7)
    assert torch.equal(first, torch.randn(5))
    assert torch.equal(torch.randn(3, generator=generator), torch.randn(3, generator=gmlib.generator(7)))


@pytest.mark.parametrize("bad", [-1, 1.5, "0"])
def test_seed_rejects_non_integers(bad):
    with pytest.raises(ValueError, match="seed"):
        gmlib.seed_everything(bad)


def test_replicate_zero_keeps_every_seed(monkeypatch):
    monkeypatch.delenv("GMLIB_SEED", raising=False)
    assert [gmlib.runtime.replicate_seed(s) for s in (0, 1, 123)] == [0, 1, 123]


def test_gmlib_seed_gives_independent_reproducible_replicates(monkeypatch):
    draws = {}
    for k in ("0", "1", "2", "1"):
        monkeypatch.setenv("GMLIB_SEED", k)
        gmlib.seed_everything(5)
        draws.setdefault(k, []).append(
            (torch.randn(4), torch.randn(4, generator=gmlib.generator(5)), gmlib.runtime.replicate_seed(5))
        )
    first, again = draws["1"]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])  # same k, same draws
    assert not torch.equal(draws["0"][0][0], draws["1"][0][0])
    assert not torch.equal(draws["1"][0][0], draws["2"][0][0])
    assert len({draws[k][0][2] for k in ("0", "1", "2")}) == 3


class _RecordsBatches(torch.nn.Module):
    """A model whose loss remembers the batches the trainer hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return (self.w * x).mean()

    def sample(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 1)


def test_gmlib_seed_shifts_the_trainers_data_order(monkeypatch):
    data = torch.arange(64.0)[:, None]
    orders = {}
    for k in ("0", "3", "3"):
        monkeypatch.setenv("GMLIB_SEED", k)
        model = _RecordsBatches()
        gmlib.train(model, data, steps=2, batch_size=8, seed=0, progress=False)
        orders.setdefault(k, []).append(torch.cat(model.seen))
    assert torch.equal(orders["3"][0], orders["3"][1])
    assert not torch.equal(orders["0"][0], orders["3"][0])


@pytest.mark.parametrize("bad", ["-1", "one", "1.5"])
def test_gmlib_seed_rejects_bad_values(monkeypatch, bad):
    monkeypatch.setenv("GMLIB_SEED", bad)
    with pytest.raises(ValueError, match="GMLIB_SEED"):
        gmlib.seed_everything(0)


def test_numpy_is_seeded_with_the_effective_seed_modulo_two_to_the_32(monkeypatch):
    import numpy as np

    for k in ("0", "3"):
        monkeypatch.setenv("GMLIB_SEED", k)
        for seed in (1, 2):
            gmlib.seed_everything(seed)
            expected = np.random.RandomState(gmlib.runtime.replicate_seed(seed) % 2**32).rand(3)
            assert np.array_equal(np.random.rand(3), expected)


def test_replicate_seeds_use_63_bits(monkeypatch):
    seeds = []
    for k in range(1, 65):
        monkeypatch.setenv("GMLIB_SEED", str(k))
        seeds.append(gmlib.runtime.replicate_seed(0))
    assert max(seeds) < 2**63 and max(seeds) >= 2**62  # 64 draws: the top bit is set in one of them

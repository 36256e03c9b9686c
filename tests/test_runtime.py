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
    assert torch.equal(torch.randn(3, generator=generator), torch.randn(3, generator=torch.Generator().manual_seed(7)))


@pytest.mark.parametrize("bad", [-1, 1.5, "0"])
def test_seed_rejects_non_integers(bad):
    with pytest.raises(ValueError, match="seed"):
        gmlib.seed_everything(bad)

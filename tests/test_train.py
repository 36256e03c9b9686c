import pytest
import torch
from torch import nn

import gmlib
from gmlib.models import GaussianMixture
from gmlib.train import TrainingDiverged, scaled_steps


class ExplodingModel(nn.Module):
    """Finite loss until step 3, then NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.calls = 0

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        value = (self.w - x.mean()) ** 2
        return value.sum() * (float("nan") if self.calls > 3 else 1.0)

    def sample(self, n: int) -> torch.Tensor:
        return self.w.expand(n, 1)


class ToyAdversarial(nn.Module):
    """A 1D generator shift against a linear critic, counting each player's updates."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Linear(1, 1)
        self.discriminator = nn.Linear(1, 1)
        self.counts = {"discriminator": 0, "generator": 0}

    def sample(self, n: int) -> torch.Tensor:
        return self.generator(torch.randn(n, 1))

    def discriminator_loss(self, x: torch.Tensor) -> torch.Tensor:
        self.counts["discriminator"] += 1
        return (
            -(self.discriminator(x).mean() - self.discriminator(self.sample(len(x)).detach()).mean())
            + (self.discriminator.weight**2).sum()
        )

    def generator_loss(self, x: torch.Tensor) -> torch.Tensor:
        self.counts["generator"] += 1
        return -self.discriminator(self.sample(len(x))).mean()


def test_training_lowers_the_loss_of_a_mixture():
    data = torch.randn(2000, 2) * 0.5 + torch.tensor([1.0, -2.0])
    model = GaussianMixture(components=1)
    before = model.loss(data).item()
    result = gmlib.train(model, data, steps=300, lr=0.05, progress=False)
    assert result.steps == 300 and len(result.history["loss"]) == 300
    assert model.loss(data).item() < before - 1.0


def test_training_scale_multiplies_steps(monkeypatch):
    monkeypatch.setenv("GMLIB_TRAIN_SCALE", "2.5")
    assert scaled_steps(10) == 25
    result = gmlib.train(GaussianMixture(components=1), torch.randn(64, 2), steps=4, progress=False)
    assert result.steps == 10


@pytest.mark.parametrize("raw", ["0", "-1", "fast", "nan"])
def test_training_scale_rejects_bad_values(monkeypatch, raw):
    monkeypatch.setenv("GMLIB_TRAIN_SCALE", raw)
    with pytest.raises(ValueError, match="GMLIB_TRAIN_SCALE"):
        scaled_steps(10)


def test_nan_loss_stops_training_naming_the_step():
    with pytest.raises(TrainingDiverged, match="at step 3"):
        gmlib.train(ExplodingModel(), torch.randn(32, 1), steps=10, progress=False)


def test_nan_data_is_refused_before_training():
    data = torch.randn(10, 2)
    data[3, 1] = float("nan")
    with pytest.raises(ValueError, match="data must be finite"):
        gmlib.train(GaussianMixture(components=1), data, steps=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"discriminator_steps": 0}, "discriminator_steps"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gmlib.train(GaussianMixture(components=1), torch.randn(8, 2), progress=False, **kwargs)


def test_model_without_the_protocol_is_refused():
    with pytest.raises(ValueError, match="loss"):
        gmlib.train(nn.Linear(2, 2), torch.randn(8, 2), steps=1, progress=False)


def test_adversarial_models_alternate_k_discriminator_steps():
    model = ToyAdversarial()
    result = gmlib.train(model, torch.randn(256, 1) + 3.0, steps=20, discriminator_steps=3, progress=False)
    assert model.counts == {"discriminator": 60, "generator": 20}
    assert set(result.history) == {"discriminator", "generator"}


def test_distribution_and_callable_data_are_sampled_fresh():
    target = torch.distributions.Normal(torch.tensor([2.0, -1.0]), torch.tensor([0.3, 0.3]))
    for data in (target, lambda n: target.sample((n,))):
        model = GaussianMixture(components=1)
        gmlib.train(model, data, steps=400, lr=0.05, progress=False)
        assert torch.allclose(model.means.detach()[0], target.mean, atol=0.1)


def test_checkpoint_resume_matches_an_uninterrupted_run(tmp_path):
    data = torch.randn(500, 2)
    straight = GaussianMixture(components=2, means=torch.zeros(2, 2) + torch.tensor([[1.0], [-1.0]]))
    gmlib.train(straight, data, steps=40, seed=3, progress=False)

    resumed = GaussianMixture(components=2, means=torch.zeros(2, 2) + torch.tensor([[1.0], [-1.0]]))
    path = tmp_path / "run.ckpt"
    gmlib.train(resumed, data, steps=20, seed=3, checkpoint=path, checkpoint_every=10, progress=False)
    fresh = GaussianMixture(components=2, means=torch.zeros(2, 2))
    result = gmlib.train(fresh, data, steps=40, seed=3, checkpoint=path, progress=False)
    assert len(result.history["loss"]) == 40
    for a, b in zip(straight.parameters(), fresh.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp")), "a temporary checkpoint file was left behind"
    state = torch.load(path, weights_only=True)
    assert state["step"] == 40

import math

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


# --- pinned against independent references (issue 17) ------------------------------------------------------


class Recorder(nn.Module):
    """A model whose loss records every batch it is handed (a mean so that Adam has something to do)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.batches: list[torch.Tensor] = []

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.detach().clone())
        return ((self.w - x.float().mean()) ** 2).sum()

    def sample(self, n: int) -> torch.Tensor:
        return self.w.expand(n, 1)


@pytest.mark.parametrize(("n", "batch_size"), [(40, 8), (30, 7)])
def test_tensor_data_is_read_in_epochs_reshuffled_every_epoch(n, batch_size):
    data = torch.arange(n)[:, None]  # example i is the number i
    model = Recorder()
    steps = 4 * n // batch_size + 1
    gmlib.train(model, data, steps=steps, batch_size=batch_size, progress=False)
    drawn = torch.cat(model.batches)[:, 0]
    assert len(drawn) == steps * batch_size
    epochs = [drawn[e * n : (e + 1) * n] for e in range(len(drawn) // n)]
    assert len(epochs) >= 4
    for order in epochs:  # every example exactly once per epoch, even where a batch straddles two epochs
        assert sorted(order.tolist()) == list(range(n))
    orders = {tuple(order.tolist()) for order in epochs}
    assert len(orders) == len(epochs), "an epoch repeated the order of another: no reshuffling"
    assert tuple(range(n)) not in orders, "an epoch in the stored order: no shuffling"


def test_the_order_of_examples_depends_on_the_seed():
    data = torch.arange(50)[:, None]
    orders = []
    for seed in (0, 1):
        model = Recorder()
        gmlib.train(model, data, steps=5, batch_size=10, seed=seed, progress=False)
        orders.append(torch.cat(model.batches)[:, 0].tolist())
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(50)) and orders[0] != orders[1]


@pytest.mark.parametrize("kind", ["distribution", "callable"])
def test_resume_with_sampled_data_restores_the_random_state(tmp_path, kind):
    # fresh samples come from the global torch RNG: a resumed run must draw exactly what the uninterrupted run
    # drew, even when the RNG was used (or reseeded, as in a new process) between the two calls
    target = torch.distributions.Normal(torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.5]))
    data = target if kind == "distribution" else (lambda n: target.sample((n,)))

    def model():
        return GaussianMixture(components=2, means=torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))

    gmlib.seed_everything(11)
    straight = model()
    gmlib.train(straight, data, steps=30, batch_size=16, progress=False)

    gmlib.seed_everything(11)
    path = tmp_path / "run.ckpt"
    gmlib.train(model(), data, steps=15, batch_size=16, checkpoint=path, checkpoint_every=5, progress=False)
    torch.manual_seed(12345)  # a new process: the RNG is somewhere else entirely
    torch.randn(100)
    resumed = model()
    result = gmlib.train(resumed, data, steps=30, batch_size=16, checkpoint=path, progress=False)
    assert len(result.history["loss"]) == 30
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_tiny_training_scale_still_trains_one_step(monkeypatch):
    monkeypatch.setenv("GMLIB_TRAIN_SCALE", "0.001")
    assert scaled_steps(1) == 1 and scaled_steps(100) == 1 and scaled_steps(2000) == 2


def test_checkpoints_are_written_every_checkpoint_every_steps_and_at_the_end(tmp_path, monkeypatch):
    import importlib

    train_module = importlib.import_module("gmlib.train")  # the module, not the function gmlib.train
    saved = []
    original = train_module._save_checkpoint
    monkeypatch.setattr(
        train_module, "_save_checkpoint", lambda path, *args: (saved.append(args[-1]), original(path, *args))
    )
    path = tmp_path / "nested" / "folder" / "run.ckpt"  # folders are created
    gmlib.train(Recorder(), torch.randn(40, 1), steps=25, checkpoint=path, checkpoint_every=10, progress=False)
    assert saved == [10, 20, 25] and torch.load(path, weights_only=True)["step"] == 25
    saved.clear()
    gmlib.train(Recorder(), torch.randn(40, 1), steps=25, checkpoint_every=10, progress=False)
    assert saved == []  # no path, no checkpoint


def test_resume_inside_the_second_epoch_continues_its_permutation(tmp_path):
    data = torch.arange(30)[:, None]
    straight = Recorder()
    gmlib.train(straight, data, steps=12, batch_size=4, progress=False)
    path = tmp_path / "run.ckpt"
    gmlib.train(Recorder(), data, steps=9, batch_size=4, checkpoint=path, progress=False)  # 36 drawn: epoch 1
    resumed = Recorder()
    gmlib.train(resumed, data, steps=12, batch_size=4, checkpoint=path, progress=False)
    assert torch.equal(torch.cat(resumed.batches), torch.cat(straight.batches[9:]))


class _NotWeights:
    """Anything but tensors and plain containers: a checkpoint holding it is refused by the safe loader."""


def test_checkpoints_are_loaded_with_weights_only(tmp_path):
    import pickle

    path = tmp_path / "run.ckpt"
    gmlib.train(Recorder(), torch.randn(8, 1), steps=2, checkpoint=path, progress=False)
    state = torch.load(path, weights_only=True)
    state["extra"] = _NotWeights()
    torch.save(state, path)
    with pytest.raises(pickle.UnpicklingError):
        gmlib.train(Recorder(), torch.randn(8, 1), steps=4, checkpoint=path, progress=False)


@pytest.mark.parametrize("data", [torch.zeros(0, 2), torch.tensor(1.0)])
def test_empty_or_scalar_data_is_refused(data):
    with pytest.raises(ValueError, match="data must be a non-empty tensor"):
        gmlib.train(Recorder(), data, steps=1, progress=False)


def test_the_smallest_data_and_batches_train():
    for data, batch_size in ((torch.arange(5.0), 1), (torch.ones(1, 3), 2)):  # (N,) data; a single example
        model = Recorder()
        gmlib.train(model, data, steps=3, batch_size=batch_size, progress=False)
        assert [len(b) for b in model.batches] == [batch_size] * 3


def test_progress_bar_only_when_asked_and_seconds_measured(capsys):
    import time

    began = time.perf_counter()
    result = gmlib.train(Recorder(), torch.randn(8, 1), steps=3, progress=False)
    assert 0 <= result.seconds <= time.perf_counter() - began
    assert capsys.readouterr().err == ""
    gmlib.train(Recorder(), torch.randn(8, 1), steps=3, progress=True)
    assert "/3 [" in capsys.readouterr().err  # tqdm's bar on stderr


def test_no_two_of_many_epochs_share_an_order():
    data = torch.arange(20)[:, None]
    model = Recorder()
    gmlib.train(model, data, steps=130, batch_size=20, progress=False)  # one epoch per step
    orders = {tuple(b[:, 0].tolist()) for b in model.batches}
    assert len(orders) == 130  # 20! orders: a repeat means the permutations cycle


def test_tensor_data_is_shuffled_under_every_replicate(monkeypatch):
    # replicate seeds are 63-bit numbers: the permutation seed must stay in the generator's 64-bit range
    monkeypatch.setenv("GMLIB_SEED", "3")
    model = Recorder()
    gmlib.train(model, torch.arange(10)[:, None], steps=4, batch_size=5, seed=7, progress=False)
    drawn = torch.cat(model.batches)[:, 0]
    assert sorted(drawn[:10].tolist()) == sorted(drawn[10:].tolist()) == list(range(10))


class LabelledRecorder(Recorder):
    """A model whose loss takes examples and their labels, as a conditional model's does."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: list[torch.Tensor] = []

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.labels.append(y.clone())
        return super().loss(x)


def test_tuple_data_keeps_each_label_with_its_example():
    x = torch.arange(30)[:, None] * 10
    y = torch.arange(30)
    model = LabelledRecorder()
    gmlib.train(model, (x, y), steps=9, batch_size=7, progress=False)
    drawn_x, drawn_y = torch.cat(model.batches)[:, 0], torch.cat(model.labels)
    assert torch.equal(drawn_x, drawn_y * 10)
    assert sorted(drawn_x[:30].tolist()) == x[:, 0].tolist()  # still every example once per epoch


def test_tuple_data_must_share_its_first_size():
    with pytest.raises(ValueError, match="share their first size"):
        gmlib.train(LabelledRecorder(), (torch.zeros(5, 2), torch.zeros(4)), steps=1, progress=False)


def test_cosine_schedule_decays_every_learning_rate_from_lr_to_zero():
    seen = []

    class LrRecorder(Recorder):
        def loss(self, x):
            seen.append(self.optimizer_lr())
            return super().loss(x)

    model = LrRecorder()
    optimizers = []
    original = torch.optim.Adam

    def spy(params, **kwargs):
        optimizers.append(original(params, **kwargs))
        return optimizers[-1]

    model.optimizer_lr = lambda: optimizers[0].param_groups[0]["lr"]
    torch.optim.Adam, saved = spy, torch.optim.Adam
    try:
        gmlib.train(model, torch.randn(16, 1), steps=10, lr=0.1, lr_schedule="cosine", progress=False)
    finally:
        torch.optim.Adam = saved
    expected = [0.1 * (1 + math.cos(math.pi * s / 10)) / 2 for s in range(10)]
    assert seen == pytest.approx(expected, rel=1e-12)


def test_cosine_schedule_resumes_exactly_after_a_crash(tmp_path):
    class Crash(RuntimeError):
        pass

    class CrashingRecorder(Recorder):
        def __init__(self, after):
            super().__init__()
            self.after = after

        def loss(self, x):
            if len(self.batches) == self.after:
                raise Crash
            return super().loss(x)

    data = torch.randn(32, 1)
    one = Recorder()
    gmlib.train(one, data, steps=10, lr=0.1, lr_schedule="cosine", progress=False)
    path = tmp_path / "run.ckpt"
    with pytest.raises(Crash):  # killed at step 7, after the checkpoint of step 6
        gmlib.train(
            CrashingRecorder(7),
            data,
            steps=10,
            lr=0.1,
            lr_schedule="cosine",
            checkpoint=path,
            checkpoint_every=3,
            progress=False,
        )
    two = Recorder()
    gmlib.train(two, data, steps=10, lr=0.1, lr_schedule="cosine", checkpoint=path, progress=False)
    assert len(two.batches) == 4 and torch.allclose(one.w, two.w, rtol=1e-6)
    with pytest.raises(ValueError, match="lr_schedule"):
        gmlib.train(Recorder(), data, steps=2, lr_schedule="linear", progress=False)


def test_weight_decay_is_an_l2_penalty_on_the_gradient():
    """Adam with weight_decay w takes the steps of the loss plus (w / 2) ||theta||^2."""
    data = torch.full((16, 1), 3.0)  # the loss pulls theta up towards 3; a strong decay pulls it down

    def start_at_one(model):
        with torch.no_grad():
            model.w.fill_(1.0)
        return model

    decayed, penalised, plain = start_at_one(Recorder()), start_at_one(Recorder()), start_at_one(Recorder())
    gmlib.train(decayed, data, steps=5, lr=0.1, weight_decay=10.0, progress=False)
    original = penalised.loss
    penalised.loss = lambda x: original(x) + 5.0 * (penalised.w**2).sum()
    gmlib.train(penalised, data, steps=5, lr=0.1, progress=False)
    gmlib.train(plain, data, steps=5, lr=0.1, progress=False)
    assert torch.allclose(decayed.w, penalised.w, atol=1e-6)
    assert decayed.w.item() < 1.0 < plain.w.item()
    with pytest.raises(ValueError, match="weight_decay"):
        gmlib.train(Recorder(), data, steps=1, weight_decay=-1.0, progress=False)


class _LinearAutoencoder(nn.Module):
    """A loss through one Linear layer, which autocast runs in bfloat16."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(2, 2)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) - x).pow(2).mean()

    def sample(self, n: int) -> torch.Tensor:
        return self.net(torch.randn(n, 2))


def test_bf16_autocast_computes_the_losses_in_bfloat16_and_keeps_the_weights_in_float32():
    seen = []
    model = _LinearAutoencoder()
    model.net.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    result = gmlib.train(model, torch.randn(16, 2), steps=3, batch_size=8, autocast=True, progress=False)
    assert seen == [torch.bfloat16] * 3
    assert all(math.isfinite(v) for v in result.history["loss"]) and model.net.weight.dtype == torch.float32
    seen.clear()
    gmlib.train(model, torch.randn(16, 2), steps=1, batch_size=8, progress=False)
    assert seen == [torch.float32]  # off by default
    with pytest.raises(ValueError, match="autocast"):
        gmlib.train(model, torch.randn(16, 2), steps=1, autocast="bf16", progress=False)

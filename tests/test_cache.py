import multiprocessing
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import gmlib
import gmlib.cache as cache
from gmlib.cache import cache_dir, clear_cache, data_fingerprint, trained
from gmlib.models import GAN, GaussianMixture

STEPS = 20
OPTIONS = {"steps": STEPS, "batch_size": 64}


def _data() -> torch.Tensor:
    """(256, 2) draws of N((2, 0), I), the same on every call."""
    return torch.randn(256, 2, generator=torch.Generator().manual_seed(1)) + torch.tensor([2.0, 0.0])


def _mixture(scale: float = 1.0) -> GaussianMixture:
    return GaussianMixture(dim=2, components=2, scale=scale)


class _Squashed(GaussianMixture):
    """A mixture with a parameter-free submodule: its repr changes with ``act``, its weights do not."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__(dim=2, components=2)
        self.act = act


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pt")) if directory.is_dir() else []


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory, and the knobs that enter the key at their defaults."""
    for variable in ("GMLIB_SEED", "GMLIB_TRAIN_SCALE", "ATEN_CPU_CAPABILITY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "nested" / "cache"))  # created with its parents
    return tmp_path / "nested" / "cache"


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The options of every gmlib.train call the cache makes (it trains through its own reference)."""
    calls: list[dict] = []
    real = cache.train

    def counting(model, data, **options):
        calls.append(options)
        return real(model, data, **options)

    monkeypatch.setattr(cache, "train", counting)
    return calls


def test_a_warm_call_loads_what_the_cold_call_trained_without_training(store, trainings):
    cold, first = trained(_mixture, _data(), **OPTIONS)
    after_cold = torch.rand(5)
    torch.manual_seed(123)  # another state: the warm call must put back the one training left
    warm, second = trained(_mixture, _data(), **OPTIONS)
    after_warm = torch.rand(5)

    assert len(trainings) == 1 and trainings[0]["progress"] is False and trainings[0]["seed"] == 0
    assert (first.cached, second.cached) == (False, True)
    assert (second.steps, second.seconds, second.history) == (first.steps, first.seconds, first.history)
    assert len(second.history["loss"]) == STEPS
    assert _same_weights(cold, warm) and not _same_weights(warm, _mixture())  # trained, not the initial weights
    assert not warm.training
    assert torch.equal(after_cold, after_warm)
    [entry] = _entries(store)
    assert entry.name.startswith("GaussianMixture-") and len(entry.stem.split("-")[-1]) == 16
    assert gmlib.trained is trained and gmlib.TrainResult(1, 0.0).cached is False  # the public name; the default


def test_under_a_process_group_every_call_trains_and_nothing_is_written(store, trainings, monkeypatch):
    as_under_torchrun = SimpleNamespace(current=lambda: object())  # a group of several ranks, for the cache only
    monkeypatch.setattr(cache, "distributed", as_under_torchrun)
    for _ in range(2):
        _, result = trained(_mixture, _data(), **OPTIONS)
        assert not result.cached
    assert len(trainings) == 2 and not _entries(store)


@pytest.mark.parametrize("kind", ["tensor", "distribution"])
def test_cached_training_gives_what_plain_training_gives(store, kind):
    """The oracle: seed_everything, build, gmlib.train -- with no cache anywhere -- then torch.rand.

    Minibatches from a tensor come from the trainer's own generator; a
    distribution draws them from the global torch RNG, which a warm call must
    then put back where the training left it.
    """

    def data():
        return _data() if kind == "tensor" else torch.distributions.Normal(torch.tensor([2.0, 0.0]), torch.ones(2))

    gmlib.seed_everything(3)
    plain = _mixture()
    result = gmlib.train(plain, data(), seed=3, progress=False, **OPTIONS)
    after_plain = torch.rand(5)
    for cached in (False, True):
        model, answer = trained(_mixture, data(), seed=3, **OPTIONS)
        assert answer.cached == cached and _same_weights(model, plain) and answer.history == result.history
        assert torch.equal(torch.rand(5), after_plain)


def test_an_entry_is_a_weights_only_file_with_readable_metadata(store):
    trained(_mixture, _data(), name="toy", **OPTIONS)
    [entry] = _entries(store)
    assert entry.name.startswith("toy-")
    stored = torch.load(entry, map_location="cpu", weights_only=True)
    assert stored["key"].startswith(entry.stem.split("-")[-1])
    metadata = stored["metadata"]
    assert metadata["gmlib_source"] == cache.source_fingerprint() and metadata["written"][:2] == "20"
    assert metadata["seed"] == "0" and metadata["torch"] == torch.__version__
    assert all(isinstance(value, str) for value in metadata.values())
    assert not list(store.glob("*.tmp"))  # the temporary file was renamed, not left behind
    with pytest.raises(ValueError, match="name"):
        trained(_mixture, _data(), name="../escape", **OPTIONS)


@pytest.mark.parametrize(
    "change",
    [
        "option",
        "seed",
        "data",
        "architecture",
        "initial_weights",
        "rng_after_build",
        "GMLIB_TRAIN_SCALE",
        "GMLIB_SEED",
        "source",
        "threads",
        "ATEN_CPU_CAPABILITY",
        "torch",
    ],
)
def test_changing_any_part_of_the_key_retrains(store, trainings, monkeypatch, change):
    def build(act: nn.Module | None = None, scale: float = 1.0, draw: bool = False):
        def make():
            model = _Squashed(nn.Identity() if act is None else act) if scale == 1.0 else _mixture(scale)
            if draw:
                torch.rand(1)  # same model, but training then starts from another random state
            return model

        return make

    def ask(make=None, data=None, **options):
        return trained(make or build(), _data() if data is None else data, **(OPTIONS | options))[1].cached

    assert ask() is False and ask() is True  # baseline: trained once, then loaded
    with monkeypatch.context() as patch:  # every change is undone when the block ends
        if change == "option":
            assert ask(lr=2e-3) is False and ask(lr=2e-3) is True
        elif change == "seed":
            assert ask(seed=1) is False and ask(seed=1) is True
        elif change == "data":
            data = _data()
            data[17, 1] += 1e-3
            assert ask(data=data) is False and ask(data=data) is True
        elif change == "architecture":
            gmlib.seed_everything(0)
            tanh = build(nn.Tanh())()
            gmlib.seed_everything(0)
            identity = build()()
            assert repr(tanh) != repr(identity) and _same_weights(tanh, identity)  # only the repr tells them apart
            assert ask(build(nn.Tanh())) is False and ask(build(nn.Tanh())) is True
        elif change == "initial_weights":
            assert repr(_mixture(2.0)) == repr(_mixture(1.0))  # the scale shows only in the initial weights
            assert ask(build(scale=0.5)) is False and ask(build(scale=2.0)) is False and ask(build(scale=2.0)) is True
        elif change == "rng_after_build":
            assert ask(build(draw=True)) is False and ask(build(draw=True)) is True
        else:
            if change == "source":
                patch.setattr(cache, "source_fingerprint", lambda: "0" * 64)
            elif change == "threads":
                threads = torch.get_num_threads()
                patch.setattr(torch, "get_num_threads", lambda: threads + 1)
            elif change == "torch":
                patch.setattr(torch, "__version__", torch.__version__ + "+other")
            else:  # an environment variable
                patch.setenv(change, {"GMLIB_TRAIN_SCALE": "1.5", "GMLIB_SEED": "1"}.get(change, "default"))
            assert ask() is False and ask() is True  # retrained, then cached under its own key
    assert ask() is True  # the original entry is still there
    assert len(trainings) == 2 + (change == "initial_weights")
    assert len(_entries(store)) == 2 + (change == "initial_weights")


def test_spelling_out_a_default_or_asking_for_a_progress_bar_hits_the_same_entry(store, trainings):
    trained(_mixture, _data(), **OPTIONS)
    again = trained(_mixture, _data(), weight_decay=0.0, lr_schedule="constant", progress=True, **OPTIONS)
    assert again[1].cached and len(trainings) == 1
    with pytest.raises(TypeError, match="learning_rate"):
        trained(_mixture, _data(), learning_rate=1e-3, **OPTIONS)


def test_a_distribution_is_keyed_by_its_parameters_not_by_its_cached_properties(store, trainings):
    def normal(scale: float) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(torch.tensor([1.0, -1.0]), scale * torch.eye(2))

    data = normal(1.0)
    first = data_fingerprint(data)
    _ = data.precision_matrix  # a lazy property: read once, it sits in vars(data) from now on
    assert "precision_matrix" in vars(data) and data_fingerprint(data) == first
    assert data_fingerprint(normal(1.0)) == first and data_fingerprint(normal(1.1)) != first
    shifted = torch.distributions.MultivariateNormal(torch.tensor([1.0, -1.5]), torch.eye(2))
    assert data_fingerprint(shifted) != first
    assert data_fingerprint(torch.distributions.Normal(torch.zeros(2), torch.ones(2))) != data_fingerprint(
        torch.distributions.Laplace(torch.zeros(2), torch.ones(2))
    )  # same parameters, another family
    cold, _ = trained(_mixture, normal(1.0), **OPTIONS)
    after_cold = torch.rand(3)
    warm, result = trained(_mixture, data, **OPTIONS)
    assert result.cached and _same_weights(cold, warm) and torch.equal(torch.rand(3), after_cold)
    assert not trained(_mixture, normal(1.1), **OPTIONS)[1].cached and len(trainings) == 2


def test_a_tensor_counts_by_dtype_shape_and_bytes_and_a_tuple_by_each_part():
    x = _data()
    labels = torch.arange(256) % 3
    assert data_fingerprint((x,)) == data_fingerprint((x.clone(),))  # a tuple of one tensor is data too
    assert data_fingerprint(x) == data_fingerprint(x.clone())
    assert data_fingerprint(x.reshape(-1)) != data_fingerprint(x)  # the same bytes, another shape
    assert data_fingerprint(x.view(torch.int32)) != data_fingerprint(x)  # the same bytes, another dtype
    assert data_fingerprint((x, labels)) != data_fingerprint((x, labels.roll(1)))
    assert data_fingerprint((x, labels)) != data_fingerprint(x)
    assert data_fingerprint(x.T.contiguous().T) == data_fingerprint(x)  # memory layout does not count


def test_a_transformed_distribution_counts_its_transforms_numbers():
    """AffineTransform keeps a Python float as given: the fingerprint must see numbers, not only tensors."""

    def affine(loc: float) -> torch.distributions.TransformedDistribution:
        base = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
        return torch.distributions.TransformedDistribution(base, [torch.distributions.AffineTransform(loc, 3.0)])

    assert data_fingerprint(affine(2.0)) == data_fingerprint(affine(2.0))
    assert data_fingerprint(affine(2.0)) != data_fingerprint(affine(2.5))


def test_the_key_names_the_device_and_reads_every_part_as_a_string(store):
    model = _mixture()
    parts = cache.key_parts(model, data_hash=data_fingerprint(_data()), seed=0, options={"steps": 5})
    assert parts["device"] == "cpu" and parts["threads"] == str(torch.get_num_threads())
    assert "steps=5" in parts["options"] and "lr=0.001" in parts["options"]  # defaults filled in
    assert all(isinstance(value, str) for value in parts.values())


@pytest.mark.parametrize("data", [lambda n: torch.randn(n, 2), [[0.0, 1.0]], (), None])
def test_data_that_cannot_be_fingerprinted_is_refused_before_anything_is_built(store, data):
    built = []
    with pytest.raises(ValueError, match="cached training needs data .* a tensor, a tuple of tensors or a"):
        trained(lambda: built.append(1) or _mixture(), data, **OPTIONS)
    assert not built and not store.exists()


@pytest.mark.parametrize("off", ["off", "OFF", "0", "false", "None", " none "])
def test_gmlib_cache_off_never_writes(tmp_path, monkeypatch, trainings, off):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GMLIB_CACHE", off)
    assert cache_dir() is None and clear_cache() == 0
    first = trained(_mixture, _data(), **OPTIONS)
    second = trained(_mixture, _data(), **OPTIONS)
    assert len(trainings) == 2 and not first[1].cached and not second[1].cached
    assert _same_weights(first[0], second[0])  # still seeded: the same run twice
    trained(_mixture, lambda n: torch.randn(n, 2), **OPTIONS)  # off, a callable is fine: nothing is keyed
    assert list(tmp_path.iterdir()) == []


def test_the_default_directory_follows_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("GMLIB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "gmlib"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "gmlib"
    monkeypatch.setenv("GMLIB_CACHE", "~/models")
    assert cache_dir() == tmp_path / "home" / "models"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shapes", "wrong_key"])
def test_a_damaged_entry_is_ignored_with_a_warning_and_overwritten(store, trainings, damage):
    cold, first = trained(_mixture, _data(), **OPTIONS)
    after_cold = torch.rand(5)
    [entry] = _entries(store)
    if damage == "garbage":
        entry.write_bytes(b"not a torch file")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:300])
    else:
        stored = torch.load(entry, weights_only=True)
        if damage == "wrong_shapes":  # the right names, and means (not zero at first) fits: the rest does not
            stored["state_dict"] = {k: torch.zeros(3, *v.shape) for k, v in stored["state_dict"].items()}
            stored["state_dict"]["means"] = torch.zeros(2, 2)
        else:
            stored["key"] = "f" * 64
        torch.save(stored, entry)
    with pytest.warns(UserWarning, match="ignoring unreadable gmlib cache entry"):
        again, second = trained(_mixture, _data(), **OPTIONS)
    # retrained from the weights build() made, not from anything the bad entry held
    assert not second.cached and len(trainings) == 2 and _same_weights(again, cold)
    assert torch.equal(torch.rand(5), after_cold) and second.history == first.history
    assert trained(_mixture, _data(), **OPTIONS)[1].cached  # overwritten with a good entry


class _RunsCode:
    """Unpickling this object calls open(path, "w"): what a tampered entry could do if loaded without weights_only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_an_entry_that_would_run_code_when_unpickled_is_refused(store, trainings, tmp_path):
    trained(_mixture, _data(), **OPTIONS)
    [entry] = _entries(store)
    stored = torch.load(entry, weights_only=True)
    stored["metadata"] = stored["metadata"] | {"note": _RunsCode(tmp_path / "ran")}  # otherwise a valid entry
    torch.save(stored, entry)
    with pytest.warns(UserWarning, match="ignoring unreadable gmlib cache entry"):
        assert not trained(_mixture, _data(), **OPTIONS)[1].cached
    assert not (tmp_path / "ran").exists() and len(trainings) == 2


def test_a_failed_write_leaves_a_trained_model_and_no_temporary_file(store, trainings, monkeypatch):
    def full_disk(obj, path):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.torch, "save", full_disk)
    with pytest.warns(UserWarning, match="trained but not cached"):
        model, result = trained(_mixture, _data(), **OPTIONS)
    assert not result.cached and len(result.history["loss"]) == STEPS and not _same_weights(model, _mixture())
    assert _entries(store) == [] and not list(store.glob("*.tmp"))


def test_two_threads_asking_at_once_train_once(store, monkeypatch):
    """The lock is taken on a fresh open file each time, so it also holds between threads of one process."""
    import threading

    calls = []
    real = cache.train

    def slow(model, data, **options):
        calls.append(1)
        time.sleep(0.5)  # long enough that the other thread asks while this one trains
        return real(model, data, **options)

    monkeypatch.setattr(cache, "train", slow)
    barrier, answers = threading.Barrier(2), []

    def ask():
        barrier.wait(timeout=30)
        # fixed means: the build draws nothing, so the threads, seeding one global RNG together, agree on the key
        answers.append(trained(lambda: GaussianMixture(dim=2, components=2, means=torch.eye(2)), _data(), **OPTIONS))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(calls) == 1 and sorted(result.cached for _, result in answers) == [False, True]
    assert _same_weights(answers[0][0], answers[1][0])


def test_an_adversarial_model_round_trips(store, trainings):
    def build() -> GAN:
        return GAN(dim=2, hidden=8, latent=2)

    cold, first = trained(build, _data(), steps=5, batch_size=32, discriminator_steps=2)
    after_cold = torch.rand(5)
    warm, second = trained(build, _data(), steps=5, batch_size=32, discriminator_steps=2)
    assert second.cached and len(trainings) == 1 and set(second.history) == {"discriminator", "generator"}
    assert torch.equal(torch.rand(5), after_cold)
    assert second.history == first.history and _same_weights(cold, warm) and not _same_weights(warm, build())
    gmlib.seed_everything(7)
    samples = warm.sample(4)
    gmlib.seed_everything(7)
    assert torch.equal(samples, cold.sample(4))


def test_clear_cache_removes_entries_and_their_locks_only(store):
    trained(_mixture, _data(), **OPTIONS)
    trained(_mixture, _data(), seed=1, **OPTIONS)
    (store / "model.pt").write_bytes(b"a user's checkpoint")
    (store / "notes.txt").write_text("keep")
    assert len(list(store.glob("*.lock"))) == 2
    assert clear_cache() == 2
    assert sorted(path.name for path in store.iterdir()) == ["model.pt", "notes.txt"]
    assert clear_cache() == 0


def _ask_for_the_model(directory: str, marker: str, barrier, queue) -> None:
    """One of two processes that ask for the same model at once (a "spawn" child: it imports this file)."""
    os.environ["GMLIB_CACHE"] = directory
    real = cache.train

    def slow(model, data, **options):
        with open(marker, "a") as handle:
            handle.write("trained\n")
        time.sleep(1.0)  # long enough that the other process asks while this one trains
        return real(model, data, **options)

    cache.train = slow
    barrier.wait(timeout=60)
    model, result = trained(_mixture, _data(), **OPTIONS)
    queue.put((result.cached, [p.tolist() for p in model.parameters()]))


def test_two_processes_asking_at_once_train_once(store, tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(2), context.Queue()
    marker = tmp_path / "trainings.txt"
    workers = [
        context.Process(target=_ask_for_the_model, args=(str(store), str(marker), barrier, queue)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        answers = [queue.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
    assert marker.read_text() == "trained\n"
    assert sorted(cached for cached, _ in answers) == [False, True]
    assert answers[0][1] == answers[1][1]
    assert len(_entries(store)) == 1

"""Trained once, reused: a disk cache of trained models (``DESIGN.md``, "Trained once, reused").

``trained(build, data, **options)`` is ``gmlib.train`` with a memory: the first
call seeds, builds and trains the model and stores its weights; a later call
with the same configuration -- in this process, another kernel or the next
build of the book -- loads them instead, so the comparison chapter reuses what
the family chapters trained. A warm call leaves everything as a cold one does:
the same parameters, the same ``TrainResult`` (with ``cached=True``) and the
same torch random state, so whatever the caller draws afterwards agrees.

The key is a sha256 over everything that decides the trained weights: the
model's architecture (its ``repr``), its initial weights and the torch random
state ``build`` leaves, the data, the training options (defaults filled in,
``progress`` left out), the seed and its replicate (``GMLIB_SEED``), the training scale
(``GMLIB_TRAIN_SCALE``), gmlib's own source, the torch version, the number of
threads, the CPU kernels (``ATEN_CPU_CAPABILITY``) and the device. A change to
any of them trains afresh under a new key; stale entries are never read.

Where: the directory ``GMLIB_CACHE`` names; ``GMLIB_CACHE=off`` (or "0",
"false", "none") turns the cache off; the default is ``$XDG_CACHE_HOME/gmlib``,
else ``~/.cache/gmlib``. One file per entry, ``<name>-<16 hex of the key>.pt``,
written atomically; an exclusive ``fcntl.flock`` on ``<name>-<hex>.lock``
around "look up, train if missing, store" makes two processes that ask for the
same model at once train it once (the second waits, then loads).
"""

import datetime
import hashlib
import inspect
import json
import numbers
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributions.utils import lazy_property

from gmlib import distributed
from gmlib.runtime import SEED_VARIABLE, replicate, replicate_seed, seed_everything
from gmlib.train import SCALE_VARIABLE, TrainResult, train, training_scale

try:
    import fcntl
except ImportError:  # not POSIX: no lock, so concurrent first calls may both train (still correct)
    fcntl = None

CACHE_VARIABLE = "GMLIB_CACHE"
OFF_VALUES = ("off", "0", "false", "none")
FORMAT = 1  # bump when the layout of an entry changes
_ENTRY = re.compile(r"^.+-[0-9a-f]{16}\.pt$")
_LOCK = re.compile(r"^.+-[0-9a-f]{16}\.lock$")
_TEMPORARY = re.compile(r"^.+-[0-9a-f]{16}\.pt\..+\.tmp$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TRAIN_PARAMETERS = inspect.signature(train).parameters
_NOT_IN_KEY = ("model", "data", "seed", "progress")  # model and data are keyed on their own; progress only shows


def cache_dir() -> Path | None:
    """The cache directory ``GMLIB_CACHE`` selects, or None when it turns the cache off.

    Unset or empty: ``$XDG_CACHE_HOME/gmlib``, else ``~/.cache/gmlib``. The
    directory is created on first write, not here.
    """
    raw = os.environ.get(CACHE_VARIABLE, "").strip()
    if raw.lower() in OFF_VALUES:
        return None
    if raw:
        return Path(raw).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "gmlib"


def clear_cache() -> int:
    """Delete every cache entry (and its lock and stray temporary files); return how many entries went.

    Only files named like entries (``<name>-<16 hex>.pt``) are touched, so a
    ``GMLIB_CACHE`` pointing at a shared folder loses nothing else. Clear the
    cache only while no process is training through it.
    """
    directory = cache_dir()
    if directory is None or not directory.is_dir():
        return 0
    removed = 0
    for path in directory.iterdir():
        if _ENTRY.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
        elif _LOCK.match(path.name) or _TEMPORARY.match(path.name):
            path.unlink(missing_ok=True)
    return removed


@cache
def source_fingerprint() -> str:
    """sha256 (hex) over every ``gmlib/**/*.py`` file's relative path and bytes, in sorted order.

    Computed once per process, from the source as it stood when the first
    cached model was asked for (close to the code this process imported).
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _update_tensor(digest: "hashlib._Hash", tensor: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes to ``digest``."""
    flat = tensor.detach().resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
    digest.update(f"tensor {flat.dtype} {tuple(tensor.shape)}\0".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes())


def state_fingerprint(module: nn.Module) -> str:
    """sha256 (hex) of ``module.state_dict()``: every entry's name, dtype, shape and bytes, in key order."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(f"{key}\0".encode())
        if isinstance(value, torch.Tensor):
            _update_tensor(digest, value)
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _update_value(digest: "hashlib._Hash", value: object, seen: set[int]) -> None:
    """Feed the tensors and numbers inside ``value`` (a distribution, transform, container, ...) to ``digest``."""
    if isinstance(value, torch.Tensor):
        _update_tensor(digest, value)
    elif value is None or isinstance(value, (bool, numbers.Number, str, torch.Size, torch.dtype, torch.device)):
        digest.update(f"{type(value).__name__} {value!r}\0".encode())
    elif isinstance(value, nn.Module):
        digest.update(f"module {value!r} {state_fingerprint(value)}\0".encode())
    elif id(value) in seen:
        digest.update(b"seen\0")
    elif isinstance(value, (list, tuple)):
        seen.add(id(value))
        digest.update(f"{type(value).__name__} {len(value)}\0".encode())
        for item in value:
            _update_value(digest, item, seen)
    elif isinstance(value, dict):
        seen.add(id(value))
        digest.update(f"dict {len(value)}\0".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}\0".encode())
            _update_value(digest, value[key], seen)
    elif isinstance(value, (torch.distributions.Distribution, torch.distributions.Transform)):
        seen.add(id(value))
        kind = type(value)
        digest.update(f"{kind.__module__}.{kind.__qualname__}\0".encode())
        # lazy properties (a Categorical's probs from its logits, ...) are cached in vars() once read: skip them,
        # they are functions of the rest, and reading one must not change the key
        fields = {k: v for k, v in vars(value).items() if not isinstance(getattr(kind, k, None), lazy_property)}
        _update_value(digest, fields, seen)
    else:  # a constraint, a weak reference, ...: its type only
        digest.update(f"object {type(value).__module__}.{type(value).__qualname__}\0".encode())


def data_fingerprint(data: object) -> str:
    """sha256 (hex) of training data: a tensor, a tuple of tensors or a ``torch.distributions.Distribution``.

    A tensor counts by dtype, shape and bytes; a distribution by its class and
    every tensor and number in ``vars(dist)``, recursively (a mixture's
    components, a transformed distribution's transforms).

    Raises:
        ValueError: for any other data (a callable that draws samples cannot be
            fingerprinted, so it cannot be cached: pass a tensor or a Distribution).
    """
    tensors = isinstance(data, tuple) and len(data) > 0 and all(isinstance(part, torch.Tensor) for part in data)
    if not (isinstance(data, (torch.Tensor, torch.distributions.Distribution)) or tensors):
        raise ValueError(
            "cached training needs data that can be fingerprinted: a tensor, a tuple of tensors or a "
            f"torch.distributions.Distribution, got {type(data).__name__} (set {CACHE_VARIABLE}=off to train "
            "from a callable, or call gmlib.train)"
        )
    digest = hashlib.sha256()
    _update_value(digest, data, set())
    return digest.hexdigest()


def _rng_fingerprint() -> str:
    """sha256 (hex) of the torch random state(s) now: what the training that follows will draw from."""
    digest = hashlib.sha256()
    _update_tensor(digest, torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for state in torch.cuda.get_rng_state_all():
            _update_tensor(digest, state)
    return digest.hexdigest()


def key_parts(model: nn.Module, *, data_hash: str, seed: int, options: dict[str, Any]) -> dict[str, str]:
    """What the cache key covers, as readable strings, for ``model`` just built and data of ``data_fingerprint``.

    ``options`` are ``gmlib.train``'s keyword options; unknown ones raise
    ``TypeError`` as ``train`` would. Defaults are filled in, so spelling out a
    default does not change the key; ``progress`` only draws a bar and is left out.
    """
    signature = inspect.Signature([p for name, p in _TRAIN_PARAMETERS.items() if name not in _NOT_IN_KEY])
    bound = signature.bind(**{k: v for k, v in options.items() if k != "progress"})
    bound.apply_defaults()
    parameter = next(model.parameters(), None)
    where = "none" if parameter is None else parameter.device.type
    if parameter is not None and parameter.device.type == "cuda":
        where += f" {torch.cuda.get_device_name(parameter.device)}"
    return {
        "architecture": repr(model),
        "initial_state": state_fingerprint(model),
        "rng_after_build": _rng_fingerprint(),
        "data": data_hash,
        "options": ", ".join(f"{name}={value!r}" for name, value in sorted(bound.arguments.items())),
        "seed": str(seed),
        "replicate_seed": str(replicate_seed(seed)),
        "training_scale": repr(training_scale()),
        "gmlib_source": source_fingerprint(),
        "torch": str(torch.__version__),  # a TorchVersion, which weights_only loading refuses
        "threads": str(torch.get_num_threads()),
        "cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", ""),
        "device": where,
    }


def cache_key(parts: dict[str, str]) -> str:
    """sha256 (hex) over the key's parts (``key_parts``), name and value each."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def trained(
    build: Callable[[], nn.Module], data: Any, *, seed: int = 0, name: str | None = None, **train_options: Any
) -> tuple[nn.Module, TrainResult]:
    """``build()`` a model and train it with ``gmlib.train``, or load it from the cache if it was trained before.

    Seeds everything with ``seed`` (``gmlib.seed_everything``), calls ``build``
    (which may move the model to a device), then looks the model up under its
    key (module docstring). A hit loads the stored weights, puts the model in
    eval mode and restores the torch random state the original training left
    behind; a miss trains with ``gmlib.train(model, data, seed=seed,
    progress=False, **train_options)`` (``progress`` may be given) and stores
    the result. Either way the caller gets what a cold run gives. Under
    ``torchrun`` (a process group, ``gmlib.distributed``) the cache is not
    used: every rank would write the same entry, so the model is trained.

    Args:
        build: a factory ``() -> nn.Module``; called once per call.
        data: a tensor (N, *event), a tuple of tensors or a Distribution (what
            ``gmlib.train`` takes, except callables: they cannot be keyed).
        seed: the seed of ``seed_everything`` and of ``train``.
        name: the entry's file name prefix (default: the model's class name).
        train_options: passed to ``gmlib.train`` (steps, lr, batch_size, ...).

    Returns:
        (model, result): ``result.cached`` says whether the weights were loaded.

    Raises:
        ValueError: for uncacheable data, a name that is not a plain file name,
            or a ``build`` that does not return an ``nn.Module``.
        TypeError: for an option ``gmlib.train`` does not take.
    """
    if not callable(build):
        raise ValueError(f"build must be a callable () -> nn.Module, got {type(build).__name__}")
    if name is not None and not (isinstance(name, str) and _NAME.match(name)):
        raise ValueError(f"name must be a plain file name (letters, digits, _ . -), got {name!r}")
    options = {"progress": False} | train_options
    directory = None if distributed.current() is not None else cache_dir()
    data_hash = None if directory is None else data_fingerprint(data)  # refuse uncacheable data before building
    seed_everything(seed)
    model = build()
    if not isinstance(model, nn.Module):
        raise ValueError(f"build must return an nn.Module, got {type(model).__name__}")
    if directory is None:
        return model, train(model, data, seed=seed, **options)

    parts = key_parts(model, data_hash=data_hash, seed=seed, options=options)
    key = cache_key(parts)
    path = directory / f"{name or type(model).__name__}-{key[:16]}.pt"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a+b")  # closed by the with block below
    except OSError as error:
        warnings.warn(f"gmlib cache {directory} is not writable ({error}); training without it", stacklevel=2)
        return model, train(model, data, seed=seed, **options)
    with lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes; a second caller waits here
        if path.exists():
            result = _load(path, key, model)
            if result is not None:
                return model, result
        result = train(model, data, seed=seed, **options)
        _store(path, key, parts, model, result)
        return model, result


def _load(path: Path, key: str, model: nn.Module) -> TrainResult | None:
    """Load the entry at ``path`` into ``model`` and restore the random state; None (with a warning) if unusable.

    The entry is checked in full (format, key, every weight's name and shape)
    before the model or the random state is touched, so a bad entry leaves both
    as ``build`` left them and the caller can train from there.
    """
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if entry.get("format") != FORMAT or entry.get("key") != key:
            raise ValueError("it was written for another key or format")
        state, expected = entry["state_dict"], model.state_dict()
        if list(state) != list(expected) or any(
            isinstance(value, torch.Tensor) and state[k].shape != value.shape for k, value in expected.items()
        ):
            raise ValueError("its weights do not fit the model")
        history = {str(k): [float(v) for v in values] for k, values in entry["history"].items()}
        result = TrainResult(steps=int(entry["steps"]), seconds=float(entry["seconds"]), history=history, cached=True)
        cpu_rng, cuda_rng = entry["cpu_rng"], entry["cuda_rng"]
    except Exception as error:  # a truncated file, an old layout, ...: train afresh and overwrite it
        warnings.warn(f"ignoring unreadable gmlib cache entry {path} ({error}); training afresh", stacklevel=3)
        return None
    model.load_state_dict(state)
    model.eval()
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)
    return result


def _store(path: Path, key: str, parts: dict[str, str], model: nn.Module, result: TrainResult) -> None:
    """Write the entry for ``model`` atomically (a temporary file in the same directory, then ``os.replace``)."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    metadata = parts | {
        "key": key,
        SEED_VARIABLE: str(replicate()),
        SCALE_VARIABLE: os.environ.get(SCALE_VARIABLE, ""),
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    entry = {
        "format": FORMAT,
        "key": key,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "steps": result.steps,
        "seconds": result.seconds,
        "history": result.history,
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
        "metadata": metadata,
    }
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        os.close(fd)
        torch.save(entry, tmp)
        os.replace(tmp, path)
    except OSError as error:  # a full disk: the caller still gets its trained model
        warnings.warn(f"could not write gmlib cache entry {path} ({error}); trained but not cached", stacklevel=3)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)

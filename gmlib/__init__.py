"""gmlib: the library behind *Executable Derivations of Deep Generative Models*.

Each chapter of the book imports gmlib to train the models whose identities it
derives; the modules mirror the chapters (see ``DESIGN.md``).
"""

from gmlib.cache import trained
from gmlib.runtime import device, generator, replicate, seed_everything
from gmlib.train import TrainingDiverged, TrainResult, train, training_scale

__all__ = [
    "TrainResult",
    "TrainingDiverged",
    "device",
    "generator",
    "replicate",
    "seed_everything",
    "train",
    "trained",
    "training_scale",
]

"""Models, one module per family; all meet the contracts in ``protocol``."""

from gmlib.models.mixture import GaussianMixture
from gmlib.models.protocol import AdversarialModel, GenerativeModel

__all__ = ["AdversarialModel", "GaussianMixture", "GenerativeModel"]

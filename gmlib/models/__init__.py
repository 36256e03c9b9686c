"""Models, one module per family; all meet the contracts in ``gmlib.protocol``."""

from gmlib.models.autoencoders import AdversarialAutoencoder, Autoencoder
from gmlib.models.autoregressive import MADE, AutoregressiveModel, CausalTransformer, PixelCNN
from gmlib.models.discrete_vae import DiscreteVAE
from gmlib.models.energy import RBM, EnergyModel, ScoreModel
from gmlib.models.flow_vae import FlowVAE
from gmlib.models.flows import Flow
from gmlib.models.gan import GAN, DivergenceEstimator, MomentMatchingGenerator
from gmlib.models.hierarchical_vae import HierarchicalVAE
from gmlib.models.mixture import GaussianMixture
from gmlib.models.vae import VAE
from gmlib.protocol import AdversarialModel, GenerativeModel

__all__ = [
    "MADE",
    "AutoregressiveModel",
    "CausalTransformer",
    "PixelCNN",
    "RBM",
    "EnergyModel",
    "ScoreModel",
    "GAN",
    "DivergenceEstimator",
    "MomentMatchingGenerator",
    "AdversarialModel",
    "GaussianMixture",
    "GenerativeModel",
    "Flow",
    "FlowVAE",
    "VAE",
    "DiscreteVAE",
    "Autoencoder",
    "AdversarialAutoencoder",
    "HierarchicalVAE",
]

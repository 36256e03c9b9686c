"""The trainer's contracts (gmlib.protocol): what counts as a generative or an adversarial model."""

import inspect
import subprocess
import sys

import torch
from torch import nn

from gmlib.models import GAN, VAE, AdversarialAutoencoder, GaussianMixture
from gmlib.protocol import is_adversarial, is_generative


def test_the_families_meet_their_contract():
    gan, aae = GAN(dim=2, hidden=8), AdversarialAutoencoder(latent_dim=2, hidden=8)
    assert is_adversarial(gan) and is_adversarial(aae)
    for model in (VAE(latent_dim=2, hidden=8), GaussianMixture(dim=2, components=2)):
        assert is_generative(model) and not is_adversarial(model)


def test_players_are_found_where_python_3_12_protocol_checks_miss_them():
    """nn.Module keeps submodules in _modules: a static lookup (Python >= 3.12's isinstance) misses them."""
    gan = GAN(dim=2, hidden=8)
    assert inspect.getattr_static(gan, "generator", None) is None
    assert is_adversarial(gan)


def test_incomplete_models_are_refused():
    class LossOnly(nn.Module):
        def loss(self, x):
            return x.sum()

    class PlayersAreNotModules(nn.Module):
        generator = discriminator = "not a module"

        def discriminator_loss(self, x):
            return x.sum()

        def generator_loss(self, x):
            return x.sum()

        def sample(self, n):
            return torch.zeros(n, 1)

    assert not is_generative(LossOnly()) and not is_generative(nn.Linear(2, 2))
    assert not is_adversarial(PlayersAreNotModules()) and not is_adversarial(nn.Linear(2, 2))


def test_the_trainer_imports_no_model_family():
    code = "import sys, gmlib.train; print(sorted(m for m in sys.modules if m.startswith('gmlib.models')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

"""gmlib.models.autoencoders: the plain and the adversarial autoencoder against direct implementations."""

import pytest
import torch
from torch.nn.functional import binary_cross_entropy_with_logits, log_softmax

import gmlib
from gmlib.divergences import mmd
from gmlib.models import AdversarialAutoencoder, Autoencoder
from gmlib.protocol import is_adversarial, is_generative


def digits_like(n: int = 32) -> torch.Tensor:
    return torch.randint(0, 17, (n, 64))


def direct_nll(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """-sum_i log softmax(logits_i)[x_i], written out from the networks' raw outputs."""
    code = model.encoder(x.float() / 16)
    logits = model.decoder(code).reshape(len(x), 64, 17)
    return -log_softmax(logits, -1).gather(-1, x[..., None]).squeeze(-1).sum(-1)


def test_autoencoder_loss_is_the_categorical_reconstruction_nll():
    model = Autoencoder(latent_dim=3, hidden=16, level_rank=2)
    x = digits_like()
    assert model.encode(x).shape == (32, 3)
    assert model.loss(x).item() == pytest.approx(direct_nll(model, x).mean().item(), rel=1e-6)
    mean = model.decoder_mean(torch.zeros(2, 3))
    probs = model.decode(torch.zeros(2, 3)).base_dist.probs
    assert torch.allclose(mean, (probs * torch.arange(17)).sum(-1))
    samples = model.sample(9)
    assert samples.shape == (9, 64) and samples.min() >= 0 and samples.max() <= 16


def test_autoencoder_refuses_input_outside_the_levels():
    model = Autoencoder(latent_dim=2, hidden=8)
    for x, message in ((torch.full((2, 64), 17), r"0\.\.16"), (torch.full((2, 64), 0.5), "integer")):
        with pytest.raises(ValueError, match=message):
            model.loss(x)
    with pytest.raises(ValueError, match="latent_dim"):
        Autoencoder(latent_dim=0)


def test_adversarial_autoencoder_losses_are_the_gan_losses_on_codes():
    model = AdversarialAutoencoder(latent_dim=2, hidden=16, adversarial_weight=3.0)
    assert is_adversarial(model) and is_generative(model)
    x = digits_like(16)
    torch.manual_seed(4)
    d_loss = model.discriminator_loss(x)
    torch.manual_seed(4)
    prior = torch.randn(16, 2)
    codes = model.encode(x)
    real, fake = model.discriminator(prior), model.discriminator(codes)
    by_hand = binary_cross_entropy_with_logits(real, torch.ones_like(real)) + binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    assert d_loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    fool = binary_cross_entropy_with_logits(fake, torch.ones_like(fake))  # -log D(f(x)), non-saturating
    expected = direct_nll(model, x).mean() + 3.0 * fool
    assert model.generator_loss(x).item() == pytest.approx(expected.item(), rel=1e-5)
    # the discriminator's loss does not reach the encoder (codes are detached)
    model.discriminator_loss(x).backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    generator_ids = {id(p) for p in model.generator.parameters()}
    assert generator_ids == {id(p) for p in [*model.encoder.parameters(), *model.decoder.parameters()]}


def test_adversarial_training_pulls_the_codes_onto_the_prior():
    """A plain autoencoder's codes drift off N(0, I); the discriminator pulls the AAE's back (MMD^2 to prior draws)."""
    x = digits_like(256)
    distances = {}
    for name, model in (
        ("plain", Autoencoder(latent_dim=2, hidden=32)),
        ("adversarial", AdversarialAutoencoder(latent_dim=2, hidden=32, adversarial_weight=5.0)),
    ):
        gmlib.seed_everything(0)
        with torch.no_grad():  # start both far from the prior: codes shifted by 4
            model.encoder[-1].bias.add_(4.0)
        gmlib.train(model, x, steps=300, batch_size=128, lr=3e-3, betas=(0.5, 0.9), progress=False)
        with torch.no_grad():
            distances[name] = mmd(model.encode(x), torch.randn(256, 2), bandwidths=(0.5, 1.0, 2.0)).item()
    assert distances["adversarial"] < distances["plain"] / 4


def test_bad_adversarial_weight_is_refused():
    with pytest.raises(ValueError, match="adversarial_weight"):
        AdversarialAutoencoder(adversarial_weight=0.0)

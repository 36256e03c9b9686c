import math

import pytest
import torch
from torch import nn

from gmlib.models.nets import mlp


def test_mlp_has_the_requested_depth_width_and_activations():
    net = mlp(inputs=3, outputs=2, hidden=16, layers=2, negative_slope=0.2)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 16), (16, 16), (16, 2)]
    assert sum(isinstance(m, nn.LeakyReLU) for m in net) == 2
    assert net(torch.randn(5, 3)).shape == (5, 2)


def test_smooth_units_are_silu_and_keep_the_initialisation_of_the_relu_network():
    torch.manual_seed(0)
    relu = mlp(inputs=2, outputs=1, hidden=8, layers=2)
    torch.manual_seed(0)
    smooth = mlp(inputs=2, outputs=1, hidden=8, layers=2, smooth=True)
    assert [type(m) for m in smooth] == [nn.Linear, nn.SiLU, nn.Linear, nn.SiLU, nn.Linear]
    for a, b in zip(relu.parameters(), smooth.parameters(), strict=True):
        assert torch.equal(a, b)


def test_smooth_units_take_no_negative_slope():
    with pytest.raises(ValueError, match="negative_slope"):
        mlp(inputs=2, outputs=1, smooth=True, negative_slope=0.2)


def test_dropout_is_added_only_when_asked():
    assert not any(isinstance(m, nn.Dropout) for m in mlp(inputs=2, outputs=2))
    net = mlp(inputs=2, outputs=2, hidden=8, dropout=0.5)
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs": 0}, "inputs"),
        ({"layers": 1.5}, "layers"),
        ({"hidden": True}, "hidden"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mlp(**{"inputs": 2, "outputs": 1, **kwargs})


def test_replica_linear_is_one_independent_linear_map_per_replica():
    net = mlp(inputs=3, outputs=2, hidden=8, layers=2, replicas=4)
    x = torch.randn(4, 5, 3)
    out = net(x)
    assert out.shape == (4, 5, 2)
    for r in range(4):  # replica r equals an nn.Linear perceptron holding replica r's weights
        single = mlp(inputs=3, outputs=2, hidden=8, layers=2)
        with torch.no_grad():
            for lin, rep in zip(
                [m for m in single if isinstance(m, nn.Linear)],
                [m for m in net if not isinstance(m, nn.ReLU)],
                strict=True,
            ):
                lin.weight.copy_(rep.weight[r].T)
                lin.bias.copy_(rep.bias[r, 0])
        assert torch.allclose(single(x[r]), out[r], atol=1e-6)


def test_replicas_do_not_interact():
    net = mlp(inputs=2, outputs=1, hidden=8, replicas=3)
    x = torch.randn(3, 6, 2)
    net(x).sum().backward()
    before = [p.grad[0].clone() for p in net.parameters()]
    net.zero_grad()
    x[1:] = torch.randn(2, 6, 2) * 10  # other replicas' data changes; replica 0's gradient must not
    net(x).sum().backward()
    assert all(torch.equal(b, p.grad[0]) for b, p in zip(before, net.parameters(), strict=True))


def test_replica_inputs_are_checked():
    net = mlp(inputs=2, outputs=1, replicas=3)
    with pytest.raises(ValueError, match="x must have shape"):
        net(torch.randn(6, 2))
    with pytest.raises(ValueError, match="replicas"):
        mlp(inputs=2, outputs=1, replicas=0)


def test_dcgan_networks_have_radford_et_al_s_architecture():
    # Radford et al. 2016: strided convolutions in D, transposed convolutions in G, batch norm,
    # no pooling and no fully connected hidden layer; ReLU/tanh in G, LeakyReLU in D
    from gmlib.models.nets import dcgan_discriminator, dcgan_generator

    g, d = dcgan_generator(latent=16, side=8, channels=8), dcgan_discriminator(side=8, channels=8)
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in [*g, *d])
    ups = [m for m in g if isinstance(m, nn.ConvTranspose2d)]
    assert [m.stride for m in ups] == [(1, 1), (2, 2), (2, 2)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g) == 2 and isinstance(g[-2], nn.Tanh)
    assert sum(isinstance(m, nn.ReLU) for m in g) == 2
    downs = [m for m in d if isinstance(m, nn.Conv2d)]
    assert [m.stride for m in downs] == [(2, 2), (2, 2), (1, 1)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d) == 1  # none on the first layer, as in DCGAN
    assert sum(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in d) == 2
    images = g(torch.randn(5, 16))
    assert images.shape == (5, 64) and images.abs().max() <= 1
    assert d(images).shape == (5, 1)
    g16 = dcgan_generator(latent=4, side=16, channels=4)
    assert g16(torch.randn(3, 4)).shape == (3, 256)
    assert dcgan_discriminator(side=16, channels=4)(torch.randn(3, 256)).shape == (3, 1)


@pytest.mark.parametrize("side", [4, 12, 7.5])
def test_dcgan_refuses_a_side_that_is_not_a_power_of_two(side):
    from gmlib.models.nets import dcgan_discriminator, dcgan_generator

    for build in (lambda: dcgan_generator(latent=4, side=side), lambda: dcgan_discriminator(side=side)):
        with pytest.raises(ValueError, match="side"):
            build()


def test_replica_linear_initialises_like_nn_linear():
    from gmlib.models.nets import ReplicaLinear

    layer = ReplicaLinear(16, 64, replicas=4)
    bound = 1 / math.sqrt(16)  # nn.Linear: U(-1/sqrt(inputs), 1/sqrt(inputs)) for weights and biases
    for p in (layer.weight, layer.bias):
        assert p.abs().max().item() <= bound
        assert p.max().item() > 0.9 * bound and p.min().item() < -0.9 * bound
    assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)  # 4096 uniform draws


def test_a_single_replica_is_allowed():
    net = mlp(inputs=2, outputs=3, replicas=1)
    assert net(torch.randn(1, 5, 2)).shape == (1, 5, 3)

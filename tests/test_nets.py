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

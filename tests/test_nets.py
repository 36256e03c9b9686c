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

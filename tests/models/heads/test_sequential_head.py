import json

import pytest
import torch
from torch import nn

from simtune.models.heads import SequentialHead

SPEC = [
    {"type": "linear", "size": 32},
    {"type": "layer_norm"},
    {"type": "gelu"},
    {"type": "dropout", "p": 0.1},
    {"type": "linear", "size": 8, "bias": False},
]


def test_builds_the_layers_of_the_spec_and_tracks_sizes():
    head = SequentialHead(16, layers=SPEC)
    assert [type(layer) for layer in head.layers] == [nn.Linear, nn.LayerNorm, nn.GELU, nn.Dropout, nn.Linear]
    assert head.layers[1].normalized_shape == (32,) and head.layers[4].bias is None
    assert head.output_size == 8 and head(torch.randn(3, 16)).shape == (3, 8)


def test_config_is_the_json_spec_not_modules():
    config = SequentialHead(16, layers=SPEC).get_config()
    assert json.loads(json.dumps(config))["layers"] == SPEC


@pytest.mark.parametrize(
    "layers, message",
    [
        ([], "at least one layer"),
        ([{"type": "linear", "size": 4}, {"type": "conv2d"}], "layer 1: unknown type 'conv2d'"),
        ([{"type": "relu", "inplace": True}], r"layer 0 \(relu\): unknown options \['inplace'\]"),
        ([{"type": "linear"}], r"layer 0 \(linear\): needs a 'size'"),
    ],
)
def test_bad_specs_name_the_layer(layers, message):
    with pytest.raises(ValueError, match=message):
        SequentialHead(16, layers=layers)

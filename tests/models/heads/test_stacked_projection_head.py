import pytest
import torch
from torch import nn

from simtune.models.heads import StackedProjectionHead


def test_linear_layers_with_activations_between_but_not_after_the_last():
    head = StackedProjectionHead(10, output_sizes=[16, 8, 4])
    kinds = [type(layer) for layer in head.layers]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    output = head(torch.randn(32, 10))
    assert head.output_size == 4 and output.shape == (32, 4)
    assert (output < 0).any()  # the last layer is linear


def test_empty_or_non_positive_sizes_are_rejected():
    for sizes in ([], [4, 0]):
        with pytest.raises(ValueError, match="output_sizes"):
            StackedProjectionHead(10, output_sizes=sizes)

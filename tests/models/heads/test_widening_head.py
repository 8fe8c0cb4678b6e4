import pytest
import torch

from simtune.models.heads import WideningHead


def test_widens_by_the_factor_through_the_activation():
    head = WideningHead(10, expansion_factor=2.5)
    output = head(torch.randn(4, 10))
    assert head.output_size == 25 and output.shape == (4, 25)
    assert (output >= 0).all()  # relu


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        WideningHead(4, activation="swish")

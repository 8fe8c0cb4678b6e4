"""Every built-in head: output size, save/load round trip, L2 option, JSON-only config."""

import json

import pytest
import torch

from simtune.models import EncoderHead
from simtune.models.heads import (
    EmptyHead,
    GatedHead,
    LinearHead,
    SequentialHead,
    SkipConnectionHead,
    StackedProjectionHead,
    WideningHead,
)

HEADS = {
    "empty": lambda **kw: EmptyHead(6, **kw),
    "linear": lambda **kw: LinearHead(6, output_size=3, **kw),
    "skip_connection": lambda **kw: SkipConnectionHead(6, **kw),
    "gated": lambda **kw: GatedHead(6, **kw),
    "widening": lambda **kw: WideningHead(6, expansion_factor=2.0, activation="gelu", **kw),
    "stacked_projection": lambda **kw: StackedProjectionHead(6, output_sizes=[8, 5], **kw),
    "sequential": lambda **kw: SequentialHead(
        6, layers=[{"type": "linear", "size": 7}, {"type": "batch_norm"}, {"type": "tanh"}], **kw
    ),
}


@pytest.mark.parametrize("name", HEADS)
def test_save_load_round_trip_gives_the_same_head(name, tmp_path):
    torch.manual_seed(0)
    head = HEADS[name](dropout=0.1).eval()
    with torch.no_grad():
        for parameter in head.parameters():  # move away from the init, so loading really loads
            parameter.add_(torch.randn_like(parameter))
    head.save(tmp_path / name)
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["class"] == {"builtin": type(head).__name__}
    loaded = EncoderHead.load(tmp_path / name)
    embeddings = torch.randn(4, 6)
    assert type(loaded) is type(head) and loaded.get_config() == head.get_config()
    assert not loaded.training
    assert torch.equal(head(embeddings), loaded(embeddings))
    assert loaded(embeddings).shape == (4, head.output_size)


@pytest.mark.parametrize("name", HEADS)
def test_normalize_gives_unit_vectors(name):
    output = HEADS[name](normalize=True).eval()(torch.randn(4, 6) + 1)
    assert torch.allclose(output.norm(dim=-1), torch.ones(4), atol=1e-5)


@pytest.mark.parametrize("name", HEADS)
def test_dropout_acts_in_training_only(name):
    torch.manual_seed(0)
    head = HEADS[name](dropout=0.5)
    embeddings = torch.randn(8, 6)
    with torch.no_grad():
        head.eval()
        assert torch.equal(head(embeddings), head(embeddings))
        head.train()
        assert not torch.equal(head(embeddings), head(embeddings))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="input_embedding_size"):
        LinearHead(0)
    with pytest.raises(ValueError, match="dropout"):
        GatedHead(4, dropout=1.0)


def test_a_head_without_transform_fails_at_construction():
    class Incomplete(EncoderHead):
        pass

    with pytest.raises(TypeError, match="transform"):
        Incomplete(4)

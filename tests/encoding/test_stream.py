"""The streaming batch encoder: positions and outputs per batch, workers, subsets, extras, OOM retry."""

import logging

import pytest
import torch
from torch import nn

from simtune.encoding import EncodedBatch, encode_batches


class Doubler(nn.Module):
    """Rows of a float tensor, doubled; remembers the batch sizes it saw and whether it ran in eval mode."""

    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []
        self.modes: list[bool] = []

    def forward(self, batch):
        self.sizes.append(len(batch))
        self.modes.append(self.training)
        return batch * 2


def stack(items):
    return torch.stack([torch.tensor([float(item), -float(item)]) for item in items])


@pytest.mark.parametrize("workers", [0, 2])
def test_every_item_once_with_its_position(workers):
    model = Doubler().train()
    batches = list(encode_batches(model, list(range(23)), stack, batch_size=5, num_workers=workers))
    assert all(isinstance(batch, EncodedBatch) for batch in batches)
    assert [len(batch.indices) for batch in batches] == [5, 5, 5, 5, 3]
    positions = torch.cat([batch.indices for batch in batches])
    outputs = torch.cat([batch.outputs for batch in batches])
    assert positions.tolist() == list(range(23))
    assert torch.equal(outputs, 2 * stack(range(23)))
    assert outputs.dtype == torch.float32
    assert model.training and not any(model.modes)  # eval during the pass, given back in training mode


def test_a_subset_in_the_order_given_and_extras_from_the_same_items():
    items = [10 * i for i in range(12)]
    wanted = [7, 3, 11, 0]
    batches = list(
        encode_batches(
            Doubler(), items, stack, indices=wanted, extras=lambda chosen: [x + 1 for x in chosen], batch_size=3
        )
    )
    assert torch.cat([b.indices for b in batches]).tolist() == wanted
    assert [x for b in batches for x in b.extras] == [items[i] + 1 for i in wanted]
    assert torch.equal(torch.cat([b.outputs for b in batches])[:, 0], torch.tensor([2.0 * items[i] for i in wanted]))
    assert list(encode_batches(Doubler(), items, stack, indices=[])) == []


def test_mapping_outputs_and_mapping_inputs():
    def collate(items):
        return {"a": stack(items), "b": stack(items)[:, :1]}

    def forward(inputs):
        return {"a": inputs["a"].half(), "b": inputs["b"] + 1}

    (batch,) = encode_batches(forward, [1, 2, 3], collate, batch_size=8)
    assert batch.outputs["a"].dtype == torch.float32  # results leave in float32 whatever the model computed in
    assert batch.outputs["b"].tolist() == [[2.0], [3.0], [4.0]]


def test_out_of_memory_retries_in_smaller_batches_and_says_so(caplog):
    class Tight(Doubler):
        def forward(self, batch):
            if len(batch) > 3:
                raise torch.OutOfMemoryError("out of memory (simulated)")
            return super().forward(batch)

    model = Tight()
    with caplog.at_level(logging.WARNING, logger="simtune.encoding.stream"):
        batches = list(encode_batches(model, list(range(20)), stack, batch_size=8))
    assert torch.equal(torch.cat([b.outputs for b in batches]), 2 * stack(range(20)))
    assert [len(b.indices) for b in batches] == [8, 8, 4]  # batches keep their items; only the forward is split
    assert max(model.sizes) <= 3
    assert "retrying 4 at a time" in caplog.text and "retrying 2 at a time" in caplog.text
    assert caplog.text.count("retrying") == 2  # the smaller size is kept, not rediscovered batch after batch


def test_out_of_memory_at_one_row_is_raised():
    def never(batch):
        raise torch.OutOfMemoryError("out of memory (simulated)")

    with pytest.raises(torch.OutOfMemoryError):
        list(encode_batches(never, [1, 2], stack, batch_size=2))


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        list(encode_batches(Doubler(), [1], stack, batch_size=0))
    with pytest.raises(ValueError, match="precision"):
        list(encode_batches(Doubler(), [1], stack, precision="int8"))
    with pytest.raises(TypeError, match="expected a tensor"):
        list(encode_batches(lambda batch: [batch], [1], stack))

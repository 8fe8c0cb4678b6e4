import json

import pytest
import torch
from torch import nn
from toy_encoders import ToyEncoder

from simtune.models import Encoder, ModelFileError, SimilarityModel
from simtune.models.encoders import TorchvisionEncoder
from simtune.models.heads import LinearHead


def test_frozen_encoder_stays_in_eval_without_gradients_whatever_the_caller_does():
    encoder = ToyEncoder(trainable=False)
    model = SimilarityModel(encoder, LinearHead(4))
    model.train()
    assert model.head.training
    assert not any(module.training for module in encoder.modules())
    encoder.requires_grad_(True)
    assert not any(p.requires_grad for p in encoder.parameters())
    # Bypass the overrides: switch a child to training and a parameter to requires_grad by hand.
    nn.Module.train(encoder.layers, True)
    encoder.layers[0].weight.requires_grad = True
    output = encoder(torch.randn(2, 3, 8, 8))
    assert not output.requires_grad
    assert not any(module.training for module in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())


def test_trainable_encoder_trains_normally():
    encoder = ToyEncoder(trainable=True)
    encoder.train()
    running_mean = encoder.layers[1].running_mean.clone()
    encoder(torch.randn(4, 3, 8, 8)).sum().backward()
    assert encoder.training and encoder.layers[0].weight.grad is not None
    assert not torch.equal(running_mean, encoder.layers[1].running_mean)


@pytest.mark.parametrize("make_encoder", [ToyEncoder, lambda: TorchvisionEncoder("resnet18")], ids=["toy", "resnet18"])
def test_training_a_head_over_a_frozen_batchnorm_encoder_leaves_the_encoder_bit_identical(make_encoder):
    torch.manual_seed(0)
    encoder = make_encoder()
    model = SimilarityModel(encoder, LinearHead(encoder.embedding_size, output_size=8))
    before = {key: value.clone() for key, value in encoder.state_dict().items()}
    head_before = model.head.fc.weight.clone()
    # Every parameter handed to the optimizer, weight decay on, no cache: the worst case for a frozen encoder.
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    model.train()
    for _ in range(3):
        images = torch.randn(4, 3, 32, 32) * 3 + 1  # statistics far from the running ones
        loss = model({"default": images}).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = encoder.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before), "frozen encoder state changed"
    assert not torch.equal(head_before, model.head.fc.weight), "the head should have trained"


def test_user_encoder_saves_by_import_path_and_reloads(tmp_path):
    encoder = ToyEncoder(size=5)
    encoder.save(tmp_path / "encoder")
    config = json.loads((tmp_path / "encoder" / "config.json").read_text())
    assert config["class"] == {"import_path": "toy_encoders:ToyEncoder"}
    loaded = Encoder.load(tmp_path / "encoder")
    images = torch.randn(2, 3, 8, 8)
    assert isinstance(loaded, ToyEncoder) and loaded.embedding_size == 5
    assert torch.equal(encoder.eval()(images), loaded(images))


def test_encoder_defined_in_main_fails_at_save_time_with_a_fix(tmp_path):
    main_encoder = type("MainEncoder", (ToyEncoder,), {"__module__": "__main__"})
    with pytest.raises(TypeError, match="__main__.*[Mm]ove the class into a module"):
        main_encoder().save(tmp_path / "encoder")
    assert not (tmp_path / "encoder").exists()


def test_encoder_defined_in_a_function_fails_at_save_time(tmp_path):
    class LocalEncoder(ToyEncoder):
        pass

    with pytest.raises(TypeError, match="inside a function.*top level of a module"):
        LocalEncoder().save(tmp_path / "encoder")


def test_loading_a_head_as_an_encoder_is_refused(tmp_path):
    LinearHead(4).save(tmp_path / "head")
    with pytest.raises(ModelFileError, match="head/config.json: .*LinearHead.* is not a subclass of Encoder"):
        Encoder.load(tmp_path / "head")


def test_an_encoder_missing_its_contract_fails_at_construction():
    class Incomplete(Encoder):
        def forward(self, batch):
            return batch

    with pytest.raises(TypeError, match="embedding_size.*trainable"):
        Incomplete()

import torch
from tests.apps.conftest import write_image

from simtune.apps.images.run.evaluate import base_embeddings
from simtune.apps.images.run.settings import TrainSettings
from simtune.apps.images.run.trainable import ImagesTrainable
from simtune.models.encoders import EfficientNetLiteEncoder


def test_base_row_is_the_frozen_network_whatever_the_tuned_blocks_learned(tmp_path):
    """The base row must stay the frozen network's pooled features, even after training moved the
    tuned blocks and the convolution away from their pretrained weights."""
    images = [write_image(tmp_path / f"{i}.jpg", seed=i, size=(64, 48)) for i in range(3)]
    trainable = ImagesTrainable(
        TrainSettings(tuned_blocks=2), num_train_classes=4, steps_per_epoch=1, cache_dir=tmp_path
    )
    model = trainable.model.eval()
    with torch.no_grad():
        for parameter in model.head.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        encoder = model.encoders["lite0"]
        block_inputs = encoder(encoder.get_collate_fn()(images))
        pooled = EfficientNetLiteEncoder("lite0").eval()
        expected = pooled(pooled.get_collate_fn()(images))
        tuned = model.head(block_inputs)
    base = base_embeddings(model, block_inputs)
    torch.testing.assert_close(base, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(torch.nn.functional.normalize(base), tuned, atol=1e-2)

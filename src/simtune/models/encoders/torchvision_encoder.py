"""Any torchvision classification network as an encoder: its penultimate features."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from simtune.models.dependencies import import_installed
from simtune.models.encoders.base import Encoder
from simtune.models.encoders.image_collate import ImageCollate

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "heads", "head")


class TorchvisionEncoder(Encoder):
    """``torchvision.models.get_model(name)`` with its last Linear classifier layer replaced by identity.

    ``weights``: ``None`` (random init), a torchvision weights name such as ``"DEFAULT"`` or
    ``"IMAGENET1K_V1"`` (read from torchvision's cache, ``$TORCH_HOME/hub/checkpoints``; never downloaded),
    or the path of a ``.pth``/``.safetensors`` state dict for the full classifier. Objects are PIL images
    or image paths, normalised with ImageNet mean/std.
    """

    def __init__(
        self, name: str, weights: str | Path | None = None, trainable: bool = False, image_size: int = 224
    ) -> None:
        super().__init__()
        torchvision = _torchvision()

        if name not in torchvision.models.list_models():
            raise ValueError(f"unknown torchvision model {name!r}; see torchvision.models.list_models()")
        self.name = name
        self.image_size = image_size
        self._trainable = trainable
        self.network = torchvision.models.get_model(name, weights=None)
        if weights is not None:
            self.network.load_state_dict(_read_weights(name, weights))
        self._embedding_size = _remove_classifier(self.network, name)
        self.requires_grad_(trainable)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def embedding_size(self) -> int:
        return self._embedding_size

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size}

    def get_collate_fn(self) -> Callable[[list[Any]], Tensor]:
        return ImageCollate(self.image_size, IMAGENET_MEAN, IMAGENET_STD)

    def preprocessing_config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": "bilinear-square"}


def _remove_classifier(network: nn.Module, name: str) -> int:
    """Replaces the final Linear layer by identity; returns its input size (the embedding size)."""
    for attribute in CLASSIFIER_ATTRIBUTES:
        classifier = getattr(network, attribute, None)
        if isinstance(classifier, nn.Linear):
            setattr(network, attribute, nn.Identity())
            return classifier.in_features
        if isinstance(classifier, nn.Sequential):
            for index in reversed(range(len(classifier))):
                if isinstance(classifier[index], nn.Linear):
                    in_features = classifier[index].in_features
                    classifier[index] = nn.Identity()
                    return in_features
    raise ValueError(
        f"torchvision model {name!r} has no Linear classifier in {CLASSIFIER_ATTRIBUTES}; "
        "wrap it in your own Encoder subclass instead"
    )


def _read_weights(name: str, weights: str | Path) -> dict[str, Tensor]:
    path = Path(weights)
    if path.suffix not in (".pth", ".pt", ".safetensors"):
        torchvision = _torchvision()

        try:
            url = torchvision.models.get_model_weights(name).verify(str(weights)).url
        except (KeyError, ValueError):
            raise ValueError(
                f"weights={weights!r} for {name!r} is neither a weights file (.pth/.pt/.safetensors) "
                f"nor a torchvision weights name (e.g. 'DEFAULT')"
            ) from None
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if not path.is_file():
            raise FileNotFoundError(
                f"TorchvisionEncoder({name!r}, weights={weights!r}) looked for {path} (torchvision's cache) and it "
                f"is missing; simtune never downloads weights. Put the file there ({url}) or pass weights=<file>."
            )
    elif not path.is_file():
        raise FileNotFoundError(f"TorchvisionEncoder({name!r}): weights file {path} is missing")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _torchvision() -> Any:
    return import_installed("torchvision", "pip install torchvision (or pip install 'simtune[train]')")

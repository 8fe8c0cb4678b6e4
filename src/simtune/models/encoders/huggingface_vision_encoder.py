"""A Hugging Face vision model as an image encoder: CLIP/SigLIP image towers, DINOv2, ViT.

Meant for checkpoints such as ``openai/clip-vit-base-patch32``, ``google/siglip-base-patch16-224``,
``facebook/dinov2-small`` and ``google/vit-base-patch16-224-in21k``. Weights are read from disk only: a
model folder, or a hub id already in the local Hugging Face cache (``local_files_only``); nothing is
downloaded at run time. A CLIP or SigLIP checkpoint holds a text tower too; only its image tower is
loaded. The embedding is the model's pooled output (CLIP: the projected-space input, the normalised
class token; SigLIP: its attention pooling; DINOv2: the normalised class token), or the class token of
the last layer when the model has no pooler.

Images are resized to the checkpoint's square input size (no crop) and normalised with the mean and
standard deviation of its image processor (``preprocessor_config.json``), as the other image encoders
do. A saved encoder carries the architecture config and this preprocessing in its own ``config.json``,
so a saved ``SimilarityModel`` loads in a fresh process with neither the hub nor the original folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from simtune.models.dependencies import import_installed
from simtune.models.encoders.base import Encoder
from simtune.models.encoders.image_collate import ImageCollate

TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel"}


class HuggingFaceVisionEncoder(Encoder):
    """``model``: a folder holding ``config.json``, the weights and ``preprocessor_config.json``, or a hub id
    in the local Hugging Face cache. ``image_size``, ``mean`` and ``std`` (0-1 units, per channel) override
    the image processor's."""

    def __init__(
        self,
        model: str | Path,
        trainable: bool = False,
        image_size: int | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        transformers = _transformers()
        try:
            config = transformers.AutoConfig.from_pretrained(model, local_files_only=True)
            tower = TOWERS.get(config.model_type)
            loader = getattr(transformers, tower) if tower else transformers.AutoModel
            network = loader.from_pretrained(model, local_files_only=True)
        except OSError as error:
            raise FileNotFoundError(
                f"HuggingFaceVisionEncoder({str(model)!r}): no model there, neither as a folder nor in the local "
                f"Hugging Face cache; simtune never downloads. Pass a folder holding config.json and the weights "
                f"(save_pretrained, or huggingface-cli download beforehand). ({_first_line(error)})"
            ) from None
        processor = _processor_settings(model) if None in (image_size, mean, std) else {}
        image_size = image_size or processor.get("image_size") or getattr(network.config, "image_size", None)
        mean, std = mean or processor.get("mean"), std or processor.get("std")
        if mean is None or std is None:
            raise ValueError(
                f"HuggingFaceVisionEncoder({str(model)!r}): no preprocessor_config.json with image_mean/image_std; "
                "pass mean= and std= (0-1 units, one per channel) as the checkpoint was trained with"
            )
        self._setup(str(model), network, trainable, int(image_size), list(mean), list(std))

    def _setup(
        self, name: str, network: Any, trainable: bool, image_size: int, mean: list[float], std: list[float]
    ) -> None:
        Encoder.__init__(self)
        for label, values in (("mean", mean), ("std", std)):
            if len(values) != 3 or not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(f"HuggingFaceVisionEncoder({name!r}): {label}={values!r}; expected 3 numbers")
        self.name = name
        self.network = network
        self.image_size = image_size
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self._trainable = trainable
        self.requires_grad_(trainable)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HuggingFaceVisionEncoder:
        """The architecture (randomly initialised) from a saved ``get_config()``; the saved weights follow."""
        transformers = _transformers()
        AutoConfig, AutoModel = transformers.AutoConfig, transformers.AutoModel  # noqa: N806 (the library's names)
        architecture = dict(config["architecture"])
        network = AutoModel.from_config(AutoConfig.for_model(architecture.pop("model_type"), **architecture))
        encoder = cls.__new__(cls)
        encoder._setup(
            config["name"], network, config["trainable"], config["image_size"], config["mean"], config["std"]
        )
        return encoder

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def embedding_size(self) -> int:
        return int(self.network.config.hidden_size)

    def forward(self, images: Tensor) -> Tensor:
        output = self.network(pixel_values=images)
        pooled = getattr(output, "pooler_output", None)
        return pooled if pooled is not None else output.last_hidden_state[:, 0]

    def get_collate_fn(self) -> Callable[[list[Any]], Tensor]:
        return ImageCollate(self.image_size, [255 * v for v in self.mean], [255 * v for v in self.std])

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "mean": self.mean,
            "std": self.std,
            "architecture": self.network.config.to_dict(),
        }

    def preprocessing_config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "mean": self.mean, "std": self.std, "resize": "bilinear-square"}


def _processor_settings(model: str | Path) -> dict[str, Any]:
    """Input side, mean and std from the checkpoint's image processor config, if it has one."""
    try:
        processor = _transformers().AutoImageProcessor.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError):
        return {}
    size = getattr(processor, "crop_size", None) or getattr(processor, "size", None)
    side = size if isinstance(size, int) else _side(size)
    return {"image_size": side, "mean": processor.image_mean, "std": processor.image_std}


def _side(size: Any) -> int | None:
    """A processor's ``size``/``crop_size`` (a dict, or transformers' ``SizeDict``) -> its square side."""
    for key in ("height", "shortest_edge"):
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if value:
            return int(value)
    return None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _transformers() -> Any:
    return import_installed("transformers", "pip install 'simtune[text]'")

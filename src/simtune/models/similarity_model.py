"""A servable similarity model: named encoders whose outputs are concatenated, then a head."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import simtune
from simtune.models.collate import ModelCollate
from simtune.models.encoders.base import Encoder
from simtune.models.heads.base import EncoderHead
from simtune.models.registry import Trusted, import_path
from simtune.models.save_contract import check_rebuildable
from simtune.models.serialization import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelFileError,
    atomic_directory,
    file_record,
    one_line,
    read_json,
    read_module,
    verify_file,
    write_json,
    write_module,
)

FORMAT = "simtune.SimilarityModel"
FORMAT_VERSION = 1
DEFAULT_ENCODER = "default"
_ENCODER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # names become folder names


class SimilarityModel(nn.Module):
    """``head(concat(encoder(objects) for encoders in sorted-name order))``.

    A single encoder is stored under the name ``"default"``. The model is inference-first: ``encode``
    embeds raw objects; training code calls ``forward`` (or ``encoder_outputs`` + ``head`` when encoder
    outputs are cached) on batches from ``get_collate_fn()``.
    """

    def __init__(self, encoders: Encoder | Mapping[str, Encoder], head: EncoderHead) -> None:
        super().__init__()
        if isinstance(encoders, Encoder):
            encoders = {DEFAULT_ENCODER: encoders}
        if not encoders:
            raise ValueError("a SimilarityModel needs at least one encoder")
        for name, encoder in encoders.items():
            if not isinstance(name, str) or not _ENCODER_NAME.match(name):
                raise ValueError(f"encoder name {name!r} must be letters, digits, '_', '.' or '-'")
            if not isinstance(encoder, Encoder):
                raise TypeError(f"encoder {name!r} is a {type(encoder).__name__}, not a simtune Encoder")
        if not isinstance(head, EncoderHead):
            raise TypeError(f"head is a {type(head).__name__}, not a simtune EncoderHead")
        self.encoders = nn.ModuleDict({name: encoders[name] for name in sorted(encoders)})
        total = sum(encoder.embedding_size for encoder in self.encoders.values())
        if head.input_embedding_size != total:
            raise ValueError(
                f"head expects {head.input_embedding_size}-d input but the encoders output {total} dimensions "
                f"({', '.join(f'{n}: {e.embedding_size}' for n, e in self.encoders.items())})"
            )
        self.head = head

    @property
    def embedding_size(self) -> int:
        return self.head.output_size

    @property
    def device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def get_collate_fn(self) -> ModelCollate:
        return ModelCollate({name: encoder.get_collate_fn() for name, encoder in self.encoders.items()})

    def encoder_outputs(self, features: Mapping[str, Any]) -> Tensor:
        """``(B, sum of encoder sizes)``: what a cache stores and the head consumes."""
        if missing := [name for name in self.encoders if name not in features]:
            raise KeyError(f"batch has no input for encoder(s) {missing}; it has {sorted(features)}")
        return torch.cat([encoder(features[name]) for name, encoder in self.encoders.items()], dim=-1)

    def forward(self, features: Mapping[str, Any]) -> Tensor:
        return self.head(self.encoder_outputs(features))

    def encode(
        self,
        objects: Sequence[Any],
        batch_size: int = 32,
        to_numpy: bool = True,
        progress: bool = False,
        num_workers: int = 0,
        precision: str = "float32",
    ) -> np.ndarray | Tensor:
        """Embeds raw objects in eval mode on the model's device; returns ``(len(objects), embedding_size)``
        float32 on the CPU. ``precision``: ``"auto"`` runs in mixed precision where the device computes it
        natively (see :mod:`simtune.encoding.precision`), ``"float32"`` (default) exactly. To embed a
        collection too large to hold, stream it with :func:`simtune.encoding.encode_batches` instead."""
        from simtune.encoding import encode_batches

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        objects = list(objects)
        batches = encode_batches(
            self,
            objects,
            self.get_collate_fn(),
            batch_size=batch_size,
            num_workers=num_workers,
            device=self.device,
            precision=precision,
            progress=progress,
        )
        outputs = [batch.outputs for batch in batches]
        embeddings = torch.cat(outputs) if outputs else torch.empty(0, self.embedding_size)
        return embeddings.numpy() if to_numpy else embeddings

    def save(self, path: str | Path) -> None:
        """Writes ``config.json`` + one folder per component, atomically (see ``atomic_directory``).

        Each component is first checked to rebuild from its config and weights (``check_rebuildable``),
        so a model that could not be loaded is refused here, not discovered at load time."""
        for name, encoder in self.encoders.items():
            check_rebuildable(encoder, f"encoder {name!r}", Encoder)
        check_rebuildable(self.head, "head", EncoderHead)
        with atomic_directory(path) as folder:
            for name, encoder in self.encoders.items():
                write_module(encoder, folder / "encoders" / name)
            write_module(self.head, folder / "head")
            files = sorted(p for p in folder.rglob("*") if p.is_file())
            write_json(
                folder / CONFIG_FILE,
                {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "simtune_version": simtune.__version__,
                    "encoders": list(self.encoders),
                    "embedding_size": self.embedding_size,
                    "files": {p.relative_to(folder).as_posix(): file_record(p) for p in files},
                },
            )

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device = "cpu", trusted_classes: Trusted = ()
    ) -> SimilarityModel:
        """Rebuilds a saved model in eval mode on ``device``; never unpickles anything.

        Only simtune's built-in encoders/heads are rebuilt, plus the user classes in ``trusted_classes``
        (classes, or modules already imported) or registered with ``simtune.models.register_class``; a
        file naming any other class is refused without importing anything. Every problem with the
        files raises :class:`ModelFileError` naming the file.
        """
        trusted_classes = tuple(trusted_classes)
        path = Path(path)
        if not path.is_dir():
            raise ModelFileError(f"{path}: no such model folder")
        config_path = path / CONFIG_FILE
        config = read_json(config_path)
        if config.get("format") != FORMAT:
            raise ModelFileError(f"{config_path}: not a saved SimilarityModel (format {config.get('format')!r})")
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(f"{config_path}: format version {config.get('format_version')!r} is not supported")
        files, names = config.get("files"), config.get("encoders")
        if not isinstance(files, dict) or not isinstance(names, list) or not names:
            raise ModelFileError(f"{config_path}: needs a 'files' record and a non-empty 'encoders' list")
        if bad := [name for name in names if not isinstance(name, str) or not _ENCODER_NAME.match(name)]:
            raise ModelFileError(f"{config_path}: encoder names {bad!r} are not letters, digits, '_', '.' or '-'")
        components = [f"encoders/{name}" for name in names] + ["head"]
        if unrecorded := {f"{c}/{f}" for c in components for f in (CONFIG_FILE, WEIGHTS_FILE)} - set(files):
            raise ModelFileError(f"{config_path}: no size/sha256 record for {sorted(unrecorded)}")
        for relative, record in files.items():
            if ".." in Path(relative).parts or Path(relative).is_absolute():
                raise ModelFileError(f"{config_path}: file {relative!r} points outside the model folder")
            verify_file(path / relative, record, recorded_in=config_path)
        encoders = {name: read_module(path / "encoders" / name, Encoder, trusted_classes) for name in names}
        head = read_module(path / "head", EncoderHead, trusted_classes)
        try:
            model = cls(encoders, head)
        except (TypeError, ValueError) as error:
            raise ModelFileError(f"{config_path}: its components do not fit together ({one_line(error)})") from None
        if config.get("embedding_size") != model.embedding_size:
            raise ModelFileError(
                f"{config_path}: records embedding_size {config.get('embedding_size')!r}, its head outputs "
                f"{model.embedding_size}"
            )
        return model.to(device).eval()

    def fingerprint(self) -> str:
        """sha256 of the architecture config, preprocessing and every weight: equal fingerprints embed alike."""
        digest = hashlib.sha256()
        components = {f"encoders/{name}": encoder for name, encoder in self.encoders.items()}
        components["head"] = self.head
        description = {
            name: {
                "class": import_path(type(module)),
                "config": module.get_config(),
                "preprocessing": getattr(module, "preprocessing_config", dict)(),
            }
            for name, module in components.items()
        }
        digest.update(json.dumps(description, sort_keys=True).encode())
        for key, tensor in self.state_dict().items():
            tensor = tensor.detach().cpu().contiguous()
            digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

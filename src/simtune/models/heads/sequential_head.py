from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from simtune.models.heads.activations import ACTIVATIONS
from simtune.models.heads.base import EncoderHead

# layer type -> (allowed options, builder(input size, **options) -> (module, output size))
LayerBuilder = Callable[..., "tuple[nn.Module, int]"]
LAYERS: dict[str, tuple[set[str], LayerBuilder]] = {
    "linear": ({"size", "bias"}, lambda size_in, size, bias=True: (nn.Linear(size_in, size, bias=bias), size)),
    "layer_norm": (set(), lambda size_in: (nn.LayerNorm(size_in), size_in)),
    "batch_norm": (set(), lambda size_in: (nn.BatchNorm1d(size_in), size_in)),
    "dropout": ({"p"}, lambda size_in, p=0.5: (nn.Dropout(p), size_in)),
    **{name: (set(), lambda size_in, cls=cls: (cls(), size_in)) for name, cls in ACTIVATIONS.items()},
}


class SequentialHead(EncoderHead):
    """A stack of layers described in JSON, e.g.
    ``[{"type": "linear", "size": 512}, {"type": "relu"}, {"type": "layer_norm"}, {"type": "linear", "size": 256}]``.

    The spec, not a module object, is what gets saved, so any head built this way reloads without pickle
    and without user code. Layer types: see ``LAYERS``.
    """

    def __init__(
        self,
        input_embedding_size: int,
        layers: list[dict[str, Any]],
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__(input_embedding_size, dropout=dropout, normalize=normalize)
        if not layers:
            raise ValueError("SequentialHead needs at least one layer in its spec")
        self.spec = [dict(layer) for layer in layers]
        modules, size = [], input_embedding_size
        for index, layer in enumerate(self.spec):
            module, size = _build_layer(index, layer, size)
            modules.append(module)
        self._output_size = size
        self.layers = nn.Sequential(*modules)

    @property
    def output_size(self) -> int:
        return self._output_size

    def transform(self, embeddings: Tensor) -> Tensor:
        return self.layers(embeddings)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "layers": self.spec}


def _build_layer(index: int, layer: dict[str, Any], size_in: int) -> "tuple[nn.Module, int]":
    options = {key: value for key, value in layer.items() if key != "type"}
    kind = layer.get("type")
    if kind not in LAYERS:
        raise ValueError(f"SequentialHead layer {index}: unknown type {kind!r}; expected one of {sorted(LAYERS)}")
    allowed, build = LAYERS[kind]
    if unknown := set(options) - allowed:
        raise ValueError(
            f"SequentialHead layer {index} ({kind}): unknown options {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    if kind == "linear" and "size" not in options:
        raise ValueError(f"SequentialHead layer {index} (linear): needs a 'size'")
    return build(size_in, **options)

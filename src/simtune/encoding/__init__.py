"""Running models over collections: one streaming batch encoder (decoding in worker processes while the
model runs, batch by batch, resumable by item positions) and the choice of inference precision."""

from simtune.encoding.precision import autocast_dtype, cpu_has_native_bfloat16, inference_context, precision_name
from simtune.encoding.stream import EncodedBatch, default_workers, encode_batches

__all__ = [
    "EncodedBatch",
    "autocast_dtype",
    "cpu_has_native_bfloat16",
    "default_workers",
    "encode_batches",
    "inference_context",
    "precision_name",
]

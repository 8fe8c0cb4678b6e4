"""The frozen backbones' outputs for every image of a collection, encoded once and shared by every step.

Encoding is by far the slowest part of a run, and what the frozen backbones give an image does not
depend on how the classes are split. So a run encodes *all* its images once into its cache folder
through :func:`simtune.train.encode_or_load` (``images_original``, and ``images_mirror`` when training
uses mirror images); training, validation, evaluation and indexing then take their rows from there, and
runs with other split seeds (or on a subset of the same images) can reuse one cache. Training reads its
batches through simtune's encoder cache: ``write_split_cache`` hands it the training rows through
:func:`simtune.train.store_encoded`, so ``fit`` encodes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.data.samples import MIRROR, ORIGINAL, ImageSamples, RecordViews
from simtune.devices import select_device
from simtune.models.encoders import Encoder
from simtune.train import CacheConfig, encode_or_load_together, store_encoded

if TYPE_CHECKING:
    from simtune.apps.images.run.settings import TrainSettings

STORE_PREFIX = "images_"


def mirrors_images(encoders: Mapping[str, Encoder]) -> bool:
    """Do these encoders (a model's) encode each image's mirror too (flip averaging)?"""
    return any(getattr(encoder, "mirror", False) for encoder in encoders.values())


def single_view(encoder: Encoder) -> Encoder:
    """The encoder computing one view per image: what the cache stores, view by view."""
    return encoder.with_mirror(False) if getattr(encoder, "mirror", False) else encoder


TRAINED_PRECISION = "float32"
SEARCHED_PRECISION = "auto"


def cache_config(cache_dir: Path, workers: int, precision: str = TRAINED_PRECISION) -> CacheConfig:
    """Stored in float16 (half the memory and disk; the validation scores do not move). ``precision``: the views
    a head is trained on are encoded in float32 (``TRAINED_PRECISION``): heads trained on bfloat16-encoded cars
    scored lower validation R-Precision at both seeds tried (by 0.006 and 0.013; one run varies by ~0.015), so
    bfloat16 was not shown to keep validation within 0.002, while a trained head scores float32- and
    bfloat16-encoded features alike; so the views only searched (mirror images for flip averaging, say) are
    encoded in mixed precision where the device computes it natively (``SEARCHED_PRECISION``: a GPU, a CPU
    with AVX512-BF16), float32 elsewhere (docs/cache.md). Batches of 16: on a small CPU large activations fall
    out of the allocator's reuse and run slower."""
    return CacheConfig(
        cache_type="cpu", save_dir=cache_dir, batch_size=16, num_workers=workers, dtype="float16", precision=precision
    )


class BackboneFeatures:
    """``encoders``' outputs (sorted-name order, as ``SimilarityModel`` concatenates them) for ``records``
    in each of ``views``; ``prepare()`` loads them from ``cache_dir`` or encodes and saves them there.

    An encoder that also encodes mirror images (``mirror=True``, for flip averaging) is cached as its
    single-view self over the original and mirror views, so it shares the training run's entries;
    ``backbone_outputs(records, mirrored=True)`` puts the two side by side, as such an encoder does.
    ``trained_views``: the views the run's head is trained on (``TrainSettings.views``), encoded in float32;
    every caller on a run passes the same, so they all find the same entries (``cache_config``)."""

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        records: Sequence[ImageRecord],
        cache_dir: str | Path,
        views: Sequence[str] = (ORIGINAL,),
        workers: int = 2,
        device: str | torch.device = "auto",
        trained_views: Sequence[str] = (ORIGINAL,),
    ):
        mirroring = mirrors_images(encoders)
        self.trained_views = tuple(trained_views)
        self.encoders = {name: single_view(encoders[name]) for name in sorted(encoders)}
        self.records = list(records)
        self.config = cache_config(Path(cache_dir), workers)
        self.views = tuple(views) + ((MIRROR,) if mirroring and MIRROR not in views else ())
        self.rows = {record.path: row for row, record in enumerate(self.records)}
        self.device = device
        self._tables: dict[str, dict[str, Tensor]] = {}

    @classmethod
    def of_run(
        cls,
        encoders: Mapping[str, Encoder],
        records: Sequence[ImageRecord],
        cache_dir: Path,
        settings: TrainSettings,
        device: str | torch.device = "auto",
    ) -> BackboneFeatures:
        """The features a trained run's model reads (its encoders' views), in the entries its training wrote
        (``settings``: the run's ``TrainSettings``, for its decoding workers and trained views)."""
        return cls(
            dict(encoders.items()),
            records,
            cache_dir,
            workers=settings.workers,
            device=device,
            trained_views=settings.views,
        )

    def prepare(self) -> BackboneFeatures:
        """Encodes on ``device`` (``auto``: a GPU when there is one) what the cache lacks, the trained views in
        float32 and the others in mixed precision where the device computes it natively (``cache_config``; the
        resolved precision is part of the entries' fingerprint, so a CPU with bfloat16 and one without never
        share rows), each image and its mirror from one decode; the encoders are
        handed back on the device they came on, the tables stay on the CPU in the cache's float16."""
        device = select_device(self.device)
        homes = {name: next(encoder.parameters(), torch.empty(0)).device for name, encoder in self.encoders.items()}
        per_view = {STORE_PREFIX + view: ImageSamples(self.records, views=(view,)) for view in self.views}
        together = RecordViews(ImageSamples(self.records, views=self.views))
        precisions = {
            STORE_PREFIX + view: TRAINED_PRECISION if view in self.trained_views else SEARCHED_PRECISION
            for view in self.views
        }
        cached = encode_or_load_together(
            self.encoders, per_view, together, self.config, device=device, precisions=precisions
        )
        for view in self.views:
            self._tables[view] = {name: cached[STORE_PREFIX + view].embeddings[name][0] for name in self.encoders}
        for name, encoder in self.encoders.items():
            encoder.to(homes[name])
        return self

    def _row_indices(self, records: Sequence[ImageRecord]) -> Tensor:
        absent = [r.path for r in records if r.path not in self.rows]
        if absent:
            raise ValueError(f"{len(absent)} images have no cached features, e.g. {absent[0]}")
        return torch.tensor([self.rows[r.path] for r in records], dtype=torch.long)

    def backbone_outputs(self, records: Sequence[ImageRecord], mirrored: bool = False) -> Tensor:
        """(len(records), total dim) in the cache's dtype: what a head receives for these images (``head_outputs``
        takes them to float32 a chunk at a time, so a collection's rows are never held in float32 at once);
        ``mirrored``: each encoder's [original, mirror] outputs, the input of a flip-averaging model (see
        ``mirrors_images``)."""
        views = (ORIGINAL, MIRROR) if mirrored else (ORIGINAL,)
        absent = [view for view in views if view not in self._tables]
        if absent:
            raise RuntimeError(f"the {absent[0]} features are not loaded: prepare() with views including {absent[0]!r}")
        rows = self._row_indices(records)
        return torch.cat([self._tables[view][name][rows] for name in self.encoders for view in views], dim=1)

    def split_outputs(self, samples: ImageSamples) -> dict[str, Tensor]:
        """Each encoder's outputs for ``samples`` (all records per view, in turn), gathered from the rows held here."""
        rows = self._row_indices(samples.records)
        return {name: torch.cat([self._tables[view][name][rows] for view in samples.views]) for name in self.encoders}

    def write_split_cache(self, split: str, samples: ImageSamples, cache_dir: str | Path) -> None:
        """Store ``samples``' outputs where ``fit`` looks for them (its cache folder and settings), so it loads
        them instead of encoding."""
        config = cache_config(Path(cache_dir), self.config.num_workers, TRAINED_PRECISION)
        store_encoded(self.encoders, samples, self.split_outputs(samples), config, name=split, device=self.device)

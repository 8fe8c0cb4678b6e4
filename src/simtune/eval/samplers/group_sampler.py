from __future__ import annotations

from collections.abc import Sequence

import torch

from simtune.data.samples import SimilarityGroupSample
from simtune.eval.samplers.base import RetrievalTask, Sampler, check_sample_size, choose, items_of


class GroupSampler(Sampler):
    """``sample_size`` seeded queries (-1: every object) searched against the full gallery.

    Without a ``gallery_dataset`` the gallery is the whole dataset and each query's own entry is
    excluded by index, so a sampled query never finds itself. With one, queries come from
    ``dataset`` and the gallery is ``gallery_dataset`` (no self-exclusion: the sets are separate).
    The positional arguments are Quaterion's; ``seed`` (the query sample) is keyword-only.
    """

    def __init__(
        self,
        sample_size: int = -1,
        encode_batch_size: int = 32,
        device: str | torch.device | None = None,
        log_progress: bool = True,
        *,
        seed: int = 0,
    ):
        self.sample_size = check_sample_size(sample_size)
        self.seed = seed
        self._set_encoding_options(encode_batch_size, device, log_progress)

    def sample(self, dataset: Sequence, gallery_dataset: Sequence | None = None) -> RetrievalTask:
        items = items_of(dataset, SimilarityGroupSample, "dataset")
        query_rows = choose(len(items), self.sample_size, self.seed)
        if gallery_dataset is None:
            gallery_rows, query_gallery_index = torch.arange(len(items)), query_rows
        else:
            gallery = items_of(gallery_dataset, SimilarityGroupSample, "gallery_dataset")
            gallery_rows = torch.arange(len(items), len(items) + len(gallery))
            query_gallery_index = torch.full((len(query_rows),), -1)
            items = items + gallery
        return RetrievalTask(
            objects=[item.obj for item in items],
            query_rows=query_rows,
            gallery_rows=gallery_rows,
            query_gallery_index=query_gallery_index,
            groups=torch.tensor([int(item.group) for item in items]),
        )

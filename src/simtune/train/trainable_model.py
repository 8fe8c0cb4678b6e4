"""TrainableModel: a LightningModule assembled from Quaterion-style ``configure_*`` hooks.

Subclass it, implement ``configure_encoders``, ``configure_head`` and ``configure_loss``, and hand it
to :func:`simtune.fit`. The result is served by ``save_servable`` as a plain ``SimilarityModel`` that
needs neither Lightning nor this class.

The hooks run inside ``TrainableModel.__init__``; a subclass stores its constructor arguments (plain
values, not modules: torch refuses modules before ``nn.Module.__init__``) and then calls
``super().__init__()``::

    class Cars(TrainableModel):
        def __init__(self, lr: float):
            self.lr = lr
            super().__init__()

        def configure_encoders(self):
            return EfficientNetLiteEncoder("lite0")          # frozen: cached by configure_caches

        def configure_head(self, input_embedding_size):
            return SkipConnectionHead(input_embedding_size)

        def configure_loss(self):
            return TripletLoss(mining="hard")

        def configure_caches(self):
            return CacheConfig(save_dir="runs/cars/cache")
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor, nn

from simtune.eval.attached_metric import AttachedMetric
from simtune.losses.base import GroupLoss, PairwiseLoss, SimilarityLoss
from simtune.models import SimilarityModel
from simtune.models.encoders.base import Encoder
from simtune.models.heads import EncoderHead
from simtune.train.cache.config import CacheConfig
from simtune.train.cache.encoder_cache import EncoderCache
from simtune.train.cache.fingerprint import weights_hash
from simtune.train.distributed import gather_rows, gather_targets, world_size
from simtune.train.xbm import CrossBatchMemory, XbmConfig

_FROZEN_KEY = "simtune_frozen_encoders"
_RNG_KEY = "simtune_rng_states"


class TrainableModel(pl.LightningModule):
    """Implement ``configure_encoders``, ``configure_head`` and ``configure_loss``; the other hooks
    have working defaults. Batches are ``(features, targets)``: ``features`` maps encoder names to
    their collated input, ``targets`` holds ``groups`` (group losses) or ``pairs``/``labels``/
    ``subgroups`` (pairwise losses)."""

    def __init__(self) -> None:
        super().__init__()
        encoders = self.configure_encoders()
        encoder_map = {"default": encoders} if isinstance(encoders, Encoder) else encoders
        valid = isinstance(encoder_map, Mapping) and encoder_map
        if not valid or not all(isinstance(e, Encoder) for e in encoder_map.values()):
            raise TypeError(
                f"configure_encoders() must return an Encoder or a non-empty dict of them, got {encoders!r}"
            )
        input_size = sum(encoder.embedding_size for encoder in encoder_map.values())
        head = self.configure_head(input_size)
        if not isinstance(head, EncoderHead):
            raise TypeError(f"configure_head() must return an EncoderHead, got {type(head).__name__}")
        self._model = SimilarityModel(encoders, head)
        for encoder in self._model.encoders.values():
            encoder.requires_grad_(encoder.trainable)
        self.loss = self.configure_loss()
        if not isinstance(self.loss, (GroupLoss, PairwiseLoss)):
            raise TypeError(f"configure_loss() must return a GroupLoss or PairwiseLoss, got {type(self.loss).__name__}")
        self.attached_metrics = self._metric_list(self.configure_metrics())
        xbm_config = self.configure_xbm()
        if xbm_config is not None and not getattr(self.loss, "supports_references", False):
            raise ValueError(
                f"configure_xbm() needs a GroupLoss that compares batch rows with references "
                f"(supports_references), got {type(self.loss).__name__}; cross-batch memory serves losses "
                "that mine pairs by group labels, not proxy, softmax or pairwise losses"
            )
        self.xbm = CrossBatchMemory(xbm_config, self._model.head.output_size) if xbm_config else None
        self.encoder_cache: EncoderCache | None = None
        self._validated: set[int] = set()

    # ----- hooks a user implements -------------------------------------------------------------
    def configure_encoders(self) -> Encoder | dict[str, Encoder]:
        raise NotImplementedError("implement configure_encoders(): return an Encoder or {name: Encoder}")

    def configure_head(self, input_embedding_size: int) -> EncoderHead:
        raise NotImplementedError("implement configure_head(input_embedding_size): return an EncoderHead")

    def configure_loss(self) -> SimilarityLoss:
        raise NotImplementedError("implement configure_loss(): return a GroupLoss or PairwiseLoss")

    def configure_optimizers(self) -> Any:
        """Adam over everything that learns: head, trainable encoders, and the loss's own parameters."""
        return torch.optim.Adam(self.trainable_parameters(), lr=1e-3)

    def configure_caches(self) -> CacheConfig | None:
        """Return a CacheConfig to encode the frozen encoders' inputs once instead of every epoch."""
        return None

    def configure_metrics(self) -> AttachedMetric | Sequence[AttachedMetric] | None:
        """Retrieval metrics computed once per validation epoch over all validation embeddings."""
        return None

    def configure_xbm(self) -> XbmConfig | None:
        """Return an XbmConfig to mine group losses against a memory of recent batches."""
        return None

    # ----- public API --------------------------------------------------------------------------
    @property
    def model(self) -> SimilarityModel:
        return self._model

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = list(self._model.head.parameters())
        for encoder in self._model.encoders.values():
            if encoder.trainable:
                params += list(encoder.parameters())
        return params + list(self.loss.trainable_parameters)

    def save_servable(self, path: str | Path) -> None:
        """Write the SimilarityModel (encoders + head) for inference; atomic, no Lightning needed to load."""
        self._model.save(path)

    def forward(self, features: dict[str, Any]) -> Tensor:
        return self._model(features)

    # ----- training loop -----------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.encoder_cache is not None:
            strategy = self.trainer.strategy
            self.encoder_cache.prepare(strategy.root_device, self.trainer.is_global_zero)

    def _embed(self, features: dict[str, Any], split: str) -> Tensor:
        """Encoder outputs in sorted-name order (as SimilarityModel concatenates them), then the head;
        cached encoders are looked up instead of run."""
        cache = self.encoder_cache
        if cache is None:
            return self._model(features)
        outputs = [
            cache.lookup(split, name, features[name], self.device)
            if name in cache.encoders
            else encoder(features[name])
            for name, encoder in sorted(self._model.encoders.items())
        ]
        return self._model.head(torch.cat(outputs, dim=1))

    def _compute_loss(
        self, embeddings: Tensor, targets: dict[str, Tensor], references: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """In float32 with autocast off: distances, exp and log-sum-exp overflow or lose ranks in bf16.

        ``references`` (embeddings, groups) are cross-batch memory rows the batch is also compared with."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            embeddings = embeddings.float()
            if references is not None:
                return self.loss(embeddings, targets["groups"], references[0].float(), references[1])
            if isinstance(self.loss, GroupLoss):
                return self.loss(embeddings, targets["groups"])
            return self.loss(embeddings, targets["pairs"], targets["labels"].float(), targets["subgroups"])

    def training_step(self, batch: tuple[dict[str, Any], dict[str, Tensor]], batch_idx: int) -> Tensor:
        features, targets = batch
        local = self._embed(features, "train")
        embeddings, counts = gather_rows(local)
        targets = gather_targets(targets, counts)
        loss = self._compute_loss(embeddings, targets)
        if self.xbm is not None:
            loss = loss + self._xbm_loss(embeddings, targets)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=len(local), sync_dist=True)
        # Every process holds the loss of the whole gathered batch but backpropagates only its own
        # rows; DDP then averages gradients, so scale by the world size to get the full gradient.
        return loss * world_size()

    def _xbm_loss(self, embeddings: Tensor, targets: dict[str, Tensor]) -> Tensor:
        """``weight * loss(batch vs batch + memory)`` from ``start_iteration`` on, then remember the batch."""
        if "indices" not in targets:
            raise ValueError(
                "cross-batch memory needs each row's dataset index (targets['indices']) to leave a sample's "
                "older embedding out of its own references; train with simtune.fit, whose loaders add them"
            )
        groups, indices = targets["groups"], targets["indices"]
        extra = embeddings.new_zeros(())
        if self.global_step >= self.xbm.config.start_iteration:
            references = self.xbm.references(indices)
            extra = self.xbm.config.weight * self._compute_loss(embeddings, targets, references)
        self.xbm.enqueue(embeddings, groups, indices)
        return extra

    def validation_step(self, batch: tuple[dict[str, Any], dict[str, Tensor]], batch_idx: int) -> None:
        features, targets = batch
        local = self._embed(features, "val")
        embeddings, counts = gather_rows(local)
        targets = gather_targets(targets, counts)
        if "groups" in targets and "indices" in targets:
            first_time = self._first_validation_rows(targets["indices"])
            if not first_time.any():
                return  # the same decision on every process: they hold the same gathered rows
            embeddings, targets = embeddings[first_time], {key: value[first_time] for key, value in targets.items()}
        loss = self._compute_loss(embeddings, targets)
        self.log("validation_loss", loss, prog_bar=True, on_epoch=True, batch_size=len(embeddings), sync_dist=True)
        for metric in self.attached_metrics:
            if "groups" in targets:
                metric.update(embeddings.float(), targets["groups"])
            else:
                pair_targets = {key: targets[key] for key in ("pairs", "labels", "subgroups")}
                metric.update(embeddings.float(), **pair_targets)

    def _first_validation_rows(self, indices: Tensor) -> Tensor:
        """Rows whose sample this validation epoch has not seen yet. A DistributedSampler pads the
        last batches with repeated samples, and unsharded validation (``use_distributed_sampler=False``)
        gives every process every sample; counted twice, they would inflate the retrieval metrics."""
        first_time = []
        for index in indices.tolist():
            first_time.append(index not in self._validated)
            self._validated.add(index)
        return torch.tensor(first_time, dtype=torch.bool, device=indices.device)

    def on_validation_epoch_start(self) -> None:
        self._validated.clear()
        for metric in self.attached_metrics:
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        for metric in self.attached_metrics:
            for name, value in metric.compute().items():
                self.log(name, float(value), **metric.log_options)
            metric.reset()

    @staticmethod
    def _metric_list(metrics: Any) -> list[AttachedMetric]:
        metrics = [] if metrics is None else [metrics] if isinstance(metrics, AttachedMetric) else list(metrics)
        if not all(isinstance(m, AttachedMetric) for m in metrics):
            raise TypeError(f"configure_metrics() must return AttachedMetric(s) or None, got {metrics!r}")
        return metrics

    # ----- checkpoints: trainable parts only, plus what exact resumption needs ------------------
    def _frozen_prefixes(self) -> dict[str, str]:
        return {
            f"_model.encoders.{name}.": name for name, encoder in self._model.encoders.items() if not encoder.trainable
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Frozen encoders are not saved (they never change); their weight hash is, to detect a swap."""
        prefixes = self._frozen_prefixes()
        state = checkpoint["state_dict"]
        for key in [k for k in state if any(k.startswith(p) for p in prefixes)]:
            del state[key]
        checkpoint[_FROZEN_KEY] = {name: weights_hash(self._model.encoders[name]) for name in prefixes.values()}
        checkpoint[_RNG_KEY] = _rng_states()

    def load_checkpoint_weights(self, path: str | Path) -> None:
        """Loads the weights of a checkpoint this model's training wrote (e.g. the best epoch's); frozen
        encoders are not in it, so they are kept, after checking they are the ones it was trained with."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = dict(checkpoint["state_dict"])
        saved = checkpoint.get(_FROZEN_KEY, {})
        for prefix, name in self._frozen_prefixes().items():
            if saved.get(name) != weights_hash(self._model.encoders[name]):
                raise ValueError(f"checkpoint {path} was trained on different weights for frozen encoder {name!r}")
            state |= {prefix + key: value for key, value in self._model.encoders[name].state_dict().items()}
        self.load_state_dict(state)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(_FROZEN_KEY, {})
        for prefix, name in self._frozen_prefixes().items():
            if saved.get(name) != weights_hash(self._model.encoders[name]):
                raise ValueError(
                    f"checkpoint was trained on different weights for frozen encoder {name!r}; "
                    "load the encoder it was trained with"
                )
            for key, value in self._model.encoders[name].state_dict().items():
                checkpoint["state_dict"][prefix + key] = value
        # Lightning isolates the sanity check's random draws, so restoring now puts the shuffle of the
        # next epoch exactly where the interrupted run would have had it.
        if _RNG_KEY in checkpoint:
            _set_rng_states(checkpoint[_RNG_KEY])


def _rng_states() -> dict[str, Any]:
    states = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_position": np.random.get_state()[2],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(("MT19937", states["numpy"].numpy().astype(np.uint32), int(states["numpy_position"])))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])

"""The run folder's map: where every stage of a run (prepare, train, evaluate, index, serve) keeps its files.

A run folder is made by ``prepare`` (this stage) and filled by the later ones, so the map lives here, at the
ground floor of the app: the data, run and service stages all import it, and no other module spells a
file or folder name of a run. The training settings are read by ``run.settings.load_settings(run)``:
their meaning belongs to the training stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from simtune.apps.images.data.split import ClassSplit

if TYPE_CHECKING:
    from simtune.models import SimilarityModel


@dataclass(frozen=True)
class Run:
    """One run folder: ``Run("runs/cars").model_dir`` is ``runs/cars/model``."""

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def of(cls, run: Run | str | Path) -> Run:
        """``run`` itself, or the run folder at that path."""
        return run if isinstance(run, Run) else cls(run)

    def __str__(self) -> str:
        return str(self.root)

    # prepare: the images the run reads and how their classes are split
    @property
    def dataset_file(self) -> Path:
        return self.root / "dataset.json"

    @property
    def split_file(self) -> Path:
        return self.root / "split.json"

    @property
    def crops_dir(self) -> Path:
        return self.root / "crops"

    # train: what it was asked, what it cached, what it kept
    @property
    def settings_file(self) -> Path:
        return self.root / "train_settings.json"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def snapshots_dir(self) -> Path:
        """The head's weights after every epoch (``epochs/``)."""
        return self.root / "epochs"

    @property
    def history_file(self) -> Path:
        return self.root / "history.json"

    @property
    def model_dir(self) -> Path:
        """The servable, tuned model."""
        return self.root / "model"

    # evaluate: the unseen classes' scores and the report
    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics.json"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def report_file(self) -> Path:
        return self.root / "report.html"

    # index: the embedded search index
    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    def split(self) -> ClassSplit:
        """The class split ``prepare`` wrote."""
        return ClassSplit.load(self.split_file)

    def model(self) -> SimilarityModel:
        """The run's tuned, servable model, or a FileNotFoundError saying how to make one."""
        from simtune.models import SimilarityModel

        if not self.model_dir.is_dir():
            raise FileNotFoundError(
                f"{self.model_dir} not found: train a model first with "
                f"`simtune images train --data PATH --run {self.root}`"
            )
        return SimilarityModel.load(self.model_dir)

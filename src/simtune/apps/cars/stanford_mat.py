"""The original Stanford Cars release (``.mat`` annotations, as torchvision's ``StanfordCars`` expects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simtune.apps.images.data.readers import Collection, CollectionReader, LabelledImage


class StanfordCarsMatReader(CollectionReader):
    """The original release: ``devkit/cars_meta.mat``, ``devkit/cars_train_annos.mat`` + ``cars_train/``,
    ``cars_test_annos_withlabels.mat`` + ``cars_test/`` (directly in the folder or in ``stanford_cars/``,
    as torchvision expects). Both splits are read where present; boxes are kept for optional cropping."""

    layout = "stanford-cars-mat"
    looks_for = (
        "devkit/cars_meta.mat with devkit/cars_train_annos.mat + cars_train/ and/or "
        "cars_test_annos_withlabels.mat + cars_test/ (optionally inside stanford_cars/)"
    )
    splits = (
        ("train", "devkit/cars_train_annos.mat", "cars_train"),
        ("test", "cars_test_annos_withlabels.mat", "cars_test"),
    )

    @staticmethod
    def _base(root: Path) -> Path:
        return root / "stanford_cars" if (root / "stanford_cars" / "devkit").is_dir() else root

    def matches(self, root: Path) -> bool:
        return (self._base(root) / "devkit" / "cars_meta.mat").is_file()

    def read(self, root: Path) -> Collection:
        from scipy.io import loadmat

        base = self._base(root)
        meta = base / "devkit" / "cars_meta.mat"
        class_names = [str(n) for n in np.atleast_1d(loadmat(meta, squeeze_me=True)["class_names"])]
        images, missing, found = [], [], []
        for split, annotations_file, folder in self.splits:
            annotations, image_dir = base / annotations_file, base / folder
            if not annotations.is_file():
                continue
            if not image_dir.is_dir():
                raise FileNotFoundError(f"{annotations} exists but its image folder {image_dir} does not")
            found.append(split)
            for record in np.atleast_1d(loadmat(annotations, squeeze_me=True)["annotations"]):
                image = self._image(annotations, record, image_dir, split, len(class_names))
                (images if image.path.is_file() else missing).append(image if image.path.is_file() else image.path)
        if not found:
            raise FileNotFoundError(f"{base}: found {meta} but no annotations: looked for {self.looks_for}")
        return Collection(root, self.layout, class_names, images, missing)

    @staticmethod
    def _image(annotations: Path, record: np.void, image_dir: Path, split: str, num_classes: int) -> LabelledImage:
        fields = record.dtype.names or ()
        absent = [f for f in ("fname", "class", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2") if f not in fields]
        if absent:
            raise ValueError(
                f"{annotations}: annotations lack field(s) {', '.join(absent)} (need the *_withlabels file)"
            )
        class_id = int(record["class"])
        if not 1 <= class_id <= num_classes:
            raise ValueError(
                f"{annotations}: {record['fname']} has class {class_id}, outside 1..{num_classes} of cars_meta.mat"
            )
        bbox = tuple(int(record[f"bbox_{c}"]) for c in ("x1", "y1", "x2", "y2"))
        return LabelledImage(image_dir / str(record["fname"]), class_id - 1, split, bbox)

"""The cars preset on top of the generic app: make and year metadata, its layout, its words."""

from pathlib import Path

from tests.apps.cars.test_stanford_mat import write_stanford_layout
from tests.apps.conftest import CLASS_NAMES

from simtune.apps.cars.preset import CARS, car_metadata
from simtune.apps.images.data.dataset import prepare_dataset
from simtune.apps.images.service.indexing import index_schema, record_payload


class _Model:
    embedding_size = 8

    def fingerprint(self) -> str:
        return "m"


def test_car_metadata_is_make_and_year():
    assert car_metadata("Aston Martin Virage Coupe 2012") == {"make": "Aston Martin", "year": 2012}
    assert car_metadata("Ford Model T") == {"make": "Ford", "year": None}


def test_a_cars_dataset_records_make_year_fields_and_titles(labels_csv_root: Path, tmp_path: Path):
    dataset, _ = prepare_dataset(labels_csv_root, tmp_path / "run", progress=False, preset=CARS)
    assert (dataset.title, dataset.noun) == ("Similar cars", "cars")
    assert dataset.metadata_fields == {"make": "keyword", "year": "integer"}
    audi = next(r for r in dataset.records if r.class_index == 0)
    assert audi.metadata == {"make": "Audi", "year": 2012}
    payload = record_payload(audi)
    assert payload["make"] == "Audi" and payload["year"] == 2012 and payload["class_name"] == "Audi TTS Coupe 2012"
    fields = index_schema(_Model(), dataset.metadata_fields).filter_fields
    assert fields == {
        "class_name": "keyword",
        "make": "keyword",
        "year": "integer",
        "split": "keyword",
        "subset": "keyword",
    }


def test_prepare_with_crop_writes_box_crops_into_the_run(tmp_path: Path):
    write_stanford_layout(tmp_path / "data", class_names=CLASS_NAMES)
    dataset, _ = prepare_dataset(tmp_path / "data", tmp_path / "run", crop=True, progress=False, preset=CARS)
    paths = [Path(r.path) for r in dataset.records]
    assert all(p.is_relative_to(tmp_path / "run" / "crops") and p.is_file() for p in paths)
    assert len(dataset.missing) == 1 and dataset.cropped and dataset.layout == "stanford-cars-mat"

from pathlib import Path

import pytest

CARS = Path(__file__).resolve().parents[2] / "../shared/datasets/stanford-cars-crop224"


@pytest.fixture(scope="session")
def car_images() -> list[Path]:
    """Eight real images from eight different classes of the shared cars set."""
    folders = sorted((CARS / "images").iterdir())[::25][:8]
    return [sorted(folder.glob("*.jpg"))[0] for folder in folders]

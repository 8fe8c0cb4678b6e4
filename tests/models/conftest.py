from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def car_images(cars_data: Path) -> list[Path]:
    """Eight real images from eight different classes of the shared cars set."""
    folders = sorted((cars_data / "images").iterdir())[::25][:8]
    return [sorted(folder.glob("*.jpg"))[0] for folder in folders]

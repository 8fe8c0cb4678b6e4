"""Retrieval grid thumbnails go through the shared RGB conversion (16-bit greyscale is not clipped white)."""

import matplotlib.axes
import numpy as np
from PIL import Image

from simtune.apps.images.data.dataset import ImageRecord
from simtune.apps.images.run.figures import retrieval_grid


def test_retrieval_grid_shows_16_bit_greyscale_as_grey_not_white(tmp_path, monkeypatch):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((20, 20), 32896, dtype=np.uint16)).save(path)  # mid-grey: 32896 / 257 = 128
    record = ImageRecord(id=0, path=str(path), class_index=0, class_name="grey", original_split=None, subset="unseen")
    shown = []
    imshow = matplotlib.axes.Axes.imshow

    def recording_imshow(self, image, *args, **kwargs):
        shown.append(np.asarray(image))
        return imshow(self, image, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", recording_imshow)

    written = retrieval_grid([record], [[record]], "grid", tmp_path / "grid.png", thumb=16)

    assert written.is_file() and len(shown) == 2
    assert all(image.shape == (16, 16, 3) and int(image.max()) == 128 for image in shown)

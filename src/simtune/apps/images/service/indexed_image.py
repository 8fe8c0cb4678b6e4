"""Reading an indexed photo for ``GET /images/{id}``: only a regular image file inside the indexed data folder.

The recorded path is only trusted as far as the index recorded it: the file may since have been replaced
(e.g. by a symlink to ``/etc/passwd``), so it is resolved, checked against the data folder recorded at
index time, opened without following links, checked to be a regular file, and sniffed as an image from
the bytes that are then sent (no window to swap the file between the check and the send).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# Formats a browser shows, with their content types; anything else is not served.
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}
MAX_IMAGE_BYTES = 50 * 2**20


def read_indexed_image(path: str | None, data_root: str | None) -> tuple[bytes, str] | None:
    """(bytes, content type) of the image at ``path``, or None unless it is a regular image file under
    ``data_root`` (an index that recorded no data folder serves no files)."""
    if not path or not data_root:
        return None
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(os.path.realpath(data_root)):
        return None
    try:
        descriptor = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_IMAGE_BYTES:
            return None
        data = file.read(MAX_IMAGE_BYTES + 1)
    try:
        with Image.open(io.BytesIO(data)) as image:
            media_type = MEDIA_TYPES.get(image.format or "")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return (data, media_type) if media_type else None

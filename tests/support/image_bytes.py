"""Images as the bytes a phone or an editor would send."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from picsaris_pipeline.domain.imaging import _register_heif


def image_bytes(image: Image.Image, fmt: str, **options: Any) -> bytes:
    """The image encoded as fmt (JPEG, PNG, HEIF, WEBP, ...) with PIL's save options."""
    if fmt == "HEIF":
        _register_heif()
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()

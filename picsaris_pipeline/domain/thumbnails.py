"""Pictures of what was found, for people: the photo with its face boxes, each matched face labelled
with the guest's name and similarity, unmatched faces boxed in another colour.

The picture (still the thumbnail in keys and routes) is stored next to the verified image
(derived/{photo}/thumb.jpg), where erasing the photo deletes it, and only linked from the
materializations (services/thumbnail_route.py): no picture and no name ever goes into Dagster's event log,
which is append-only and cannot be erased.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

# Large enough to read a name over a face in a group photo when the operator opens the link; the
# verified image is at most 2400 px, so this is still a reduced copy.
THUMB_SIDE = 1024
MATCHED = (46, 160, 67)  # green: a guest we know
UNMATCHED = (245, 124, 0)  # orange: a face nobody matched


@dataclass(frozen=True)
class DrawnFace:
    left: int
    top: int
    right: int
    bottom: int
    label: str | None = None  # the matched guest's name and similarity, e.g. "Ada 0.62"


def open_reduced(data: bytes, side: int) -> Image.Image:
    """Decode a JPEG at reduced scale (libjpeg's DCT scaling): far cheaper than full size + resize."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (side * 2, side * 2))
    return image.convert("RGB")


def draw(image: Image.Image, faces: Sequence[DrawnFace], side: int, full_size: tuple[int, int]) -> Image.Image:
    """Shrink to side px and draw boxes given in full_size coordinates (the verified image's)."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    scale_x, scale_y = small.width / full_size[0], small.height / full_size[1]
    canvas = ImageDraw.Draw(small)
    font_size = max(10, side // 48)
    font = ImageFont.load_default(size=font_size)
    width = max(1, side // 320)
    for face in faces:
        colour = MATCHED if face.label else UNMATCHED
        box = (face.left * scale_x, face.top * scale_y, face.right * scale_x, face.bottom * scale_y)
        canvas.rectangle(box, outline=colour, width=width)
        if face.label:
            x, y = box[0], max(0, box[1] - font_size - 2)
            text_box = canvas.textbbox((x, y), face.label, font=font)
            canvas.rectangle(text_box, fill=colour)
            canvas.text((x, y), face.label, fill=(255, 255, 255), font=font)
    return small


def to_jpeg(image: Image.Image, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()

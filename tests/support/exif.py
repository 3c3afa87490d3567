"""EXIF orientation in tests: how a camera stores an upright picture under each orientation tag."""

from PIL import Image

# Orientation tag -> the transpose that turns an upright image into what a camera stores (viewers
# undo it).
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

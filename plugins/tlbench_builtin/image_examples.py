"""Image examples as pixels: what every image source does before its own preprocessing.

Targets hand over images as uint8 arrays, PIL images or image files; sources turn each
into an HxWx3 uint8 RGB array and go on from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def to_rgb_uint8(example: Any) -> np.ndarray:
    """An image example (array, PIL image or file path) as an HxWx3 uint8 array."""
    from PIL import Image

    if isinstance(example, (str, Path)):
        with Image.open(example) as image:
            return np.asarray(image.convert("RGB"))
    if isinstance(example, Image.Image):
        return np.asarray(example.convert("RGB"))
    array = np.asarray(example)
    if array.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {array.shape}")
    return array

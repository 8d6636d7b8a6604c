"""numpy <-> QImage conversions. QImage (unlike QPixmap) may be built on any thread."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def qimage_from_array(arr: np.ndarray, *, copy: bool = True) -> QImage:
    """(H, W, 3) or (H, W, 4) uint8 -> QImage (RGB888 / RGBA8888).

    With ``copy=False`` the QImage borrows the array's memory: the caller keeps the array alive
    (the canvas does this for the image it shows, so an 8000x8000 frame is never duplicated).
    """
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected (H, W, 3|4) uint8, got shape {arr.shape} dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    h, w, c = arr.shape
    fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
    image = QImage(arr.data, w, h, w * c, fmt)
    return image.copy() if copy else image


def array_from_qimage(image: QImage) -> np.ndarray:
    """QImage -> (H, W, 4) uint8 RGBA copy (screenshots and layer export tests)."""
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = image.height(), image.width()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return buf.reshape(h, image.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()

"""Thumbnails made on a thread pool, never on the GUI thread; results arrive as a queued signal."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage

from vfmstudio.qt.imaging import qimage_from_array

log = logging.getLogger(__name__)
THUMB_SIZE = 96


def make_thumbnail(path: Path, size: int = THUMB_SIZE) -> QImage:
    """A small upright RGB thumbnail; JPEGs decode at reduced size (draft mode), so it is quick."""
    from PIL import Image, ImageOps

    from vfmstudio.core.image import (
        DEFAULT_MAX_DECODE_BYTES,
        DEFAULT_MAX_PIXELS,
        decode_bytes_estimate,
        open_image,
    )

    # A FIFO or device would block open() (and the pool thread, and the app's exit) forever.
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path}: not a regular file")
    with open_image(path) as im:  # allow-listed formats only (ADR 0100)
        im.draft("RGB", (size * 2, size * 2))
        # The loader's budgets, from the header (after draft, which shrinks JPEGs): a pool thread
        # must not decode a memory bomb that opening the image would refuse anyway.
        if im.width * im.height > DEFAULT_MAX_PIXELS or \
                decode_bytes_estimate(im.mode, im.width, im.height) > DEFAULT_MAX_DECODE_BYTES:
            raise ValueError(f"{path}: {im.width}x{im.height} {im.mode} is over the decode budget")
        im = ImageOps.exif_transpose(im)
        im.thumbnail((size, size), Image.Resampling.BILINEAR)
        rgb = np.asarray(im.convert("RGB"))
    return qimage_from_array(rgb)


class _Signals(QObject):
    ready = Signal(int, str, QImage)  # generation, path, thumbnail (null image on failure)


class _ThumbJob(QRunnable):
    def __init__(self, signals: _Signals, generation: int, path: Path, size: int):
        super().__init__()
        self.signals, self.generation, self.path, self.size = signals, generation, path, size

    def run(self) -> None:
        try:
            image = make_thumbnail(self.path, self.size)
        except Exception as exc:  # noqa: BLE001 - a bad file gets no thumbnail; loading it reports why
            log.debug("no thumbnail for %s: %s", self.path, exc)
            image = QImage()
        self.signals.ready.emit(self.generation, str(self.path), image)


class ThumbnailLoader(QObject):
    """Queues thumbnail jobs; ``ready(path, image)`` is emitted on the GUI thread.

    ``reset()`` starts a new generation so thumbnails of a folder closed meanwhile are dropped.
    """

    ready = Signal(str, QImage)

    def __init__(self, parent: QObject | None = None, *, size: int = THUMB_SIZE, threads: int = 2):
        super().__init__(parent)
        self.size = size
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._signals = _Signals()
        self._signals.ready.connect(self._on_ready, Qt.ConnectionType.QueuedConnection)
        self._generation = 0

    def reset(self) -> None:
        self._generation += 1
        self._pool.clear()

    def request(self, paths: list[Path]) -> None:
        for p in paths:
            self._pool.start(_ThumbJob(self._signals, self._generation, p, self.size))

    def _on_ready(self, generation: int, path: str, image: QImage) -> None:
        if generation == self._generation and not image.isNull():
            self.ready.emit(path, image)

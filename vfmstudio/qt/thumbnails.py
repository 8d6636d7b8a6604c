"""Thumbnails made off the GUI thread (a :class:`QtJobRunner` of their own), delivered to a callback."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from vfmstudio.core.jobs import JobResult, JobRunner
from vfmstudio.qt.imaging import qimage_from_array
from vfmstudio.qt.runner import QtJobRunner

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

    # A FIFO or device would block open() (and the thread, and the app's exit) forever.
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path}: not a regular file")
    with open_image(path) as im:  # allow-listed formats only (ADR 0100)
        im.draft("RGB", (size * 2, size * 2))
        # The loader's budgets, from the header (after draft, which shrinks JPEGs): a pool thread
        # must not decode a memory bomb that opening the image would refuse anyway.
        if (
            im.width * im.height > DEFAULT_MAX_PIXELS
            or decode_bytes_estimate(im.mode, im.width, im.height) > DEFAULT_MAX_DECODE_BYTES
        ):
            raise ValueError(f"{path}: {im.width}x{im.height} {im.mode} is over the decode budget")
        im = ImageOps.exif_transpose(im)
        im.thumbnail((size, size), Image.Resampling.BILINEAR)
        rgb = np.asarray(im.convert("RGB"))
    return qimage_from_array(rgb)


class ThumbnailLoader(QObject):
    """Queues thumbnail jobs; ``ready(path, image)`` and ``failed(path)`` are emitted on the GUI thread.

    ``reset()`` cancels what is queued and starts a new generation, so thumbnails of a folder closed
    meanwhile are dropped.
    """

    ready = Signal(str, QImage)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None, *, size: int = THUMB_SIZE):
        super().__init__(parent)
        self.size = size
        self.jobs = QtJobRunner(JobRunner(thread_name="vfmstudio-thumbnails"), self)
        self._generation = 0

    def reset(self) -> None:
        self._generation += 1
        self.jobs.cancel_where(lambda job: True)

    def shutdown(self) -> None:
        self.reset()
        self.jobs.shutdown(timeout=1.0)

    def request(self, paths: list[Path]) -> None:
        generation, size = self._generation, self.size
        for p in paths:
            self.jobs.submit(
                lambda ctx, p=p: make_thumbnail(p, size),
                source="thumbnails",
                on_done=lambda r, p=p: self._on_done(generation, p, r),
            )

    def _on_done(self, generation: int, path: Path, result: JobResult) -> None:
        if generation != self._generation or result.status in ("cancelled", "superseded"):
            return
        if result.status == "done" and not result.value.isNull():
            self.ready.emit(str(path), result.value)
        else:  # a bad file gets no thumbnail; loading it reports why
            log.debug("no thumbnail for %s: %s", path, result.error.message if result.error else "empty")
            self.failed.emit(str(path))

"""Decoding images off the GUI thread, with a byte-bounded cache shared with the inference jobs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from vfmstudio.core.cache import ByteLRUCache, nbytes_of
from vfmstudio.core.image import ImageLoadError, LoadedImage, load_image
from vfmstudio.core.jobs import JobResult, JobRunner
from vfmstudio.qt.runner import QtJobRunner

IMAGE_CACHE_BYTES = 1 << 30


def _size_of(value: object) -> int:
    return value.pixels.nbytes if isinstance(value, LoadedImage) else nbytes_of(value)


class ImageStore:
    """Decoded images by path (thread-safe: the GUI pool and the inference thread both read it)."""

    def __init__(self, budget_bytes: int = IMAGE_CACHE_BYTES):
        self._cache: ByteLRUCache = ByteLRUCache(budget_bytes, name="images", sizeof=_size_of)
        self._ids: dict[str, Path] = {}  # content id -> path, for rankings and pair views

    def load(self, path: Path) -> LoadedImage:
        image = self._cache.get_or_create(str(path), lambda: load_image(path))
        self._ids[image.id] = path
        return image

    def cached(self, path: Path) -> LoadedImage | None:
        return self._cache.get(str(path))

    def path_of(self, image_id: str) -> Path | None:
        return self._ids.get(image_id)

    def by_id(self, image_id: str) -> LoadedImage | None:
        path = self._ids.get(image_id)
        return self.load(path) if path is not None else None


class ImageLoader(QObject):
    """Loads the image the user asked for last, off the GUI thread; an older request still queued is
    superseded and an answer for one already running is dropped."""

    loaded = Signal(object, object)  # path, LoadedImage
    failed = Signal(object, object)  # path, ImageLoadError

    def __init__(self, store: ImageStore, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.jobs = QtJobRunner(JobRunner(thread_name="vfmstudio-decode"), self)
        self._generation = 0

    def request(self, path: Path) -> None:
        self._generation += 1
        cached = self.store.cached(path)
        if cached is not None:  # instant switch between images already decoded
            self.store.load(path)
            self.loaded.emit(path, cached)
            return
        generation = self._generation
        self.jobs.submit(
            lambda ctx: _decode(self.store, path),
            key="decode",
            source="images",
            on_done=lambda result: self._on_done(generation, path, result),
        )

    def shutdown(self) -> None:
        self.jobs.cancel_where(lambda job: True)
        self.jobs.shutdown(timeout=1.0)

    def _on_done(self, generation: int, path: Path, result: JobResult) -> None:
        if generation != self._generation or result.status in ("cancelled", "superseded"):
            return
        value = result.value
        if result.status != "done":
            value = ImageLoadError(path, result.error.message if result.error else result.status)
        if isinstance(value, LoadedImage):
            self.loaded.emit(path, value)
        else:
            self.failed.emit(path, value)


def _decode(store: ImageStore, path: Path) -> LoadedImage | ImageLoadError:
    try:
        return store.load(path)
    except ImageLoadError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - reported in the messages dock, never fatal
        return ImageLoadError(path, f"{type(exc).__name__}: {exc}")

"""Decoding images off the GUI thread, with a byte-bounded cache shared with the inference jobs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal

from vfmstudio.core.cache import ByteLRUCache, nbytes_of
from vfmstudio.core.image import ImageLoadError, LoadedImage, load_image

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


class _Signals(QObject):
    loaded = Signal(int, object, object)  # generation, path, LoadedImage or ImageLoadError


class _LoadJob(QRunnable):
    def __init__(self, store: ImageStore, signals: _Signals, generation: int, path: Path):
        super().__init__()
        self.store, self.signals, self.generation, self.path = store, signals, generation, path

    def run(self) -> None:
        try:
            value: object = self.store.load(self.path)
        except ImageLoadError as exc:
            value = exc
        except Exception as exc:  # noqa: BLE001 - reported in the messages dock, never fatal
            value = ImageLoadError(self.path, f"{type(exc).__name__}: {exc}")
        self.signals.loaded.emit(self.generation, self.path, value)


class ImageLoader(QObject):
    """Loads the image the user asked for last; an answer for an older request is dropped."""

    loaded = Signal(object, object)  # path, LoadedImage
    failed = Signal(object, object)  # path, ImageLoadError

    def __init__(self, store: ImageStore, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _Signals()
        self._signals.loaded.connect(self._on_loaded, Qt.ConnectionType.QueuedConnection)
        self._generation = 0

    def request(self, path: Path) -> None:
        self._generation += 1
        cached = self.store.cached(path)
        if cached is not None:  # instant switch between images already decoded
            self.store.load(path)
            self.loaded.emit(path, cached)
            return
        self._pool.clear()
        self._pool.start(_LoadJob(self.store, self._signals, self._generation, path))

    def _on_loaded(self, generation: int, path: Path, value: object) -> None:
        if generation != self._generation:
            return
        if isinstance(value, LoadedImage):
            self.loaded.emit(path, value)
        else:
            self.failed.emit(path, value)

"""The per-image work both engines share: decode, batched preparation, run, write.

Keeping it in one place is what makes the local and Ray engines write identical files: the Ray
actor wraps a :class:`BatchWorker` and the local engine drives one on its inference thread.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vfmstudio import settings
from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.image import ImageLoadError, LoadedImage, load_image, reduction_note
from vfmstudio.core.tools import ToolSpec
from vfmstudio.engines.outputs import BatchOutput, SourceStat
from vfmstudio.engines.sources import Item

BATCH_FEATURE_CACHE_ENV = "VFMSTUDIO_BATCH_FEATURE_CACHE_MB"
DEFAULT_BATCH_FEATURE_CACHE_MB = int(settings.SETTINGS[BATCH_FEATURE_CACHE_ENV].default)


@dataclass(frozen=True)
class RunSpec:
    """What every image is run with; plain data, so it pickles into Ray workers."""

    tool: ToolSpec
    params: dict[str, Any]  # resolved by tool.resolve_params
    model: str | None
    out: str
    device: str = "auto"
    precision: str = "auto"
    plugin_readers: bool = True  # let plugins decode exotic formats (vfm_read_image)
    timeout: float | None = None  # seconds one image's run may take before it is abandoned as a failure
    reduced_decode: bool = True  # decode large images at the reduced size the tool declares it needs

    def decode_side(self) -> int | None:
        """The short side images may be decoded down to for this run (ADR 0160); None: full size."""
        return self.tool.input_side(self.params) if self.reduced_decode else None


@dataclass
class Loaded:
    """An item after decoding: the image, or the one-line reason it could not be read."""

    item: Item
    image: LoadedImage | None = None
    error: str | None = None
    stat: SourceStat | None = None


@dataclass(frozen=True)
class Outcome:
    item: Item
    ok: bool
    stage: str = ""  # "read", "run" or "write" when not ok
    reason: str = ""

    @property
    def key(self) -> str:
        return self.item.key


@dataclass
class _Counters:
    prepare_calls: int = 0
    prepare_failures: int = 0
    runs: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def batch_services():
    """Caches for a batch run: a model cache as usual and a :class:`BatchFeatureCache`."""
    from vfmstudio.core.cache import ByteLRUCache, model_cache_budget
    from vfmstudio.execution import Services

    return Services(
        models=ByteLRUCache(model_cache_budget(), name="models"),
        features=BatchFeatureCache(batch_feature_budget()),
    )


class BatchFeatureCache(ByteLRUCache):
    """A feature cache that, after each batch, keeps only the entries that batch used.

    An image's features are used by the batch that computed them and never again, so holding them
    until the LRU budget pushes them out would make memory grow with every batch up to the budget.
    Entries every batch uses (a label set's text embeddings) stay; the budget remains the ceiling.
    """

    def __init__(self, budget_bytes: int):
        super().__init__(budget_bytes, name="batch-features")
        self._used: set = set()
        self._used_lock = threading.Lock()

    def _mark(self, key) -> None:
        with self._used_lock:
            self._used.add(key)

    def get(self, key, default=None):
        self._mark(key)
        return super().get(key, default)

    def get_or_create(self, key, factory, nbytes=None):
        self._mark(key)
        return super().get_or_create(key, factory, nbytes)

    def put(self, key, value, nbytes=None):
        self._mark(key)
        return super().put(key, value, nbytes)

    def end_batch(self) -> int:
        """Drop what the batch just finished did not touch; returns how many entries went."""
        with self._used_lock:
            used, self._used = self._used, set()
        stale = [k for k in self.keys() if k not in used]
        for key in stale:
            self.pop(key)
        return len(stale)


def batch_feature_budget() -> int:
    """Bytes for a batch run's feature cache: ``$VFMSTUDIO_BATCH_FEATURE_CACHE_MB`` MiB, default 512."""
    return int(settings.get(BATCH_FEATURE_CACHE_ENV) * 1024 * 1024)


def load_item(item: Item, reader: Callable[..., Any] | None = None, min_side: int | None = None) -> Loaded:
    """Decode one image (runs in prefetch threads); never raises for a bad file. ``min_side``: see
    :func:`~vfmstudio.core.image.load_image` (:meth:`RunSpec.decode_side`)."""
    stat = SourceStat.of(item.path)
    try:
        image = load_image(item.path, reader=reader, min_side=min_side)
    except ImageLoadError as exc:
        return Loaded(item, error=exc.reason, stat=stat)
    except MemoryError:
        return Loaded(item, error="not enough memory to decode the image", stat=stat)
    return Loaded(item, image=image, stat=stat)


class BatchWorker:
    """Runs one tool over batches of decoded images and writes each prediction."""

    def __init__(
        self,
        spec: RunSpec,
        *,
        services=None,
        cancel: CancelToken | None = None,
        sink: Callable[[Item, Any, SourceStat | None], Any] | None = None,
    ):
        self.spec = spec
        self.output = BatchOutput(spec.out)
        # Where each prediction goes: a prediction file by default; the folder index keeps vectors instead.
        self.sink = sink or self.output.write_prediction
        self.services = services or batch_services()
        if services is not None and spec.decode_side() is not None:
            # Images decoded at a reduced size keep their content id: features a tool caches under
            # that id must not be served to a full-size run sharing these caches (ADR 0160).
            from vfmstudio.execution import Services

            self.services = Services(
                models=services.models, features=BatchFeatureCache(batch_feature_budget())
            )
        self.cancel = cancel or CancelToken()
        self.counters = _Counters()
        self.device: str | None = None  # where the last prediction ran ("cpu", "cuda:0"; None: no model)
        self.ran = False

    def reader(self) -> Callable[..., Any] | None:
        if not self.spec.plugin_readers:
            return None
        from vfmstudio._plugin_host import get_host

        return get_host().read_image

    def process(self, batch: Sequence[Loaded]) -> list[Outcome]:
        """Outcomes in the order of ``batch``. Read failures pass through; a failing image never
        stops the others. Raises only :class:`~vfmstudio.core.cancel.Cancelled`."""
        from vfmstudio.execution import ToolError, prepare_tool, run_tool

        spec = self.spec
        images = [ld.image for ld in batch if ld.image is not None]
        if spec.tool.prepare and images:
            self.counters.prepare_calls += 1
            try:
                prepare_tool(
                    spec.tool,
                    images,
                    spec.params,
                    model=spec.model,
                    device=spec.device,
                    precision=spec.precision,
                    cancel=self.cancel,
                    services=self.services,
                    timeout=spec.timeout,
                )
            except ToolError:
                # Per-image runs below report the real, per-image reason.
                self.counters.prepare_failures += 1
        outcomes = []
        for ld in batch:
            item = ld.item
            if ld.image is None:
                outcomes.append(Outcome(item, False, "read", ld.error or "unreadable"))
                continue
            self.cancel.raise_if_cancelled()
            t0 = time.perf_counter()
            try:
                prediction = run_tool(
                    spec.tool,
                    [ld.image],
                    spec.params,
                    model=spec.model,
                    device=spec.device,
                    precision=spec.precision,
                    cancel=self.cancel,
                    services=self.services,
                    timeout=spec.timeout,
                )
            except Cancelled:
                raise
            except ToolError as exc:
                outcomes.append(Outcome(item, False, "run", str(exc)))
                continue
            self.counters.runs += 1
            note = reduction_note(ld.image)
            if note:  # the prediction file records how its image was decoded
                prediction = dataclasses.replace(prediction, notes=(*prediction.notes, note))
            self.device, self.ran = prediction.device, True
            self.counters.extra["run_s"] = self.counters.extra.get("run_s", 0.0) + time.perf_counter() - t0
            try:
                self.sink(item, prediction, ld.stat)
            except (OSError, ValueError) as exc:
                outcomes.append(Outcome(item, False, "write", f"cannot write the prediction: {exc}"))
                continue
            outcomes.append(Outcome(item, True))
        end_batch = getattr(self.services.features, "end_batch", None)
        if end_batch is not None and images:  # a batch of failed reads used nothing, drops nothing
            end_batch()
        return outcomes

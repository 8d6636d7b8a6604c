"""Byte-bounded LRU caches: the one owner of the model cache and feature cache policy.

Sizes are found by duck typing so this module never imports torch: numpy arrays and torch tensors
report their own bytes, torch modules are summed over parameters and buffers.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from vfmstudio import settings

__all__ = [
    "ByteLRUCache",
    "feature_cache_budget",
    "model_cache_budget",
    "nbytes_of",
]

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# What an object we cannot measure is assumed to cost; only has to be small and non-zero.
SMALL_OBJECT_BYTES = 64

MODEL_CACHE_ENV = "VFMSTUDIO_MODEL_CACHE_MB"
FEATURE_CACHE_ENV = "VFMSTUDIO_FEATURE_CACHE_MB"
DEFAULT_MODEL_CACHE_MB = int(settings.SETTINGS[MODEL_CACHE_ENV].default)
DEFAULT_FEATURE_CACHE_MB = int(settings.SETTINGS[FEATURE_CACHE_ENV].default)
_MB = 1024 * 1024


# --------------------------------------------------------------------------------------------- sizes


def _as_size(n: object) -> int | None:
    """``n`` as a non-negative int if it is an integer (numpy ints included), else None."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        return None
    n = int(n)
    return n if n >= 0 else None


def _tensor_bytes(obj: Any) -> int | None:
    element_size = getattr(obj, "element_size", None)
    nelement = getattr(obj, "nelement", None)
    if not (callable(element_size) and callable(nelement)):
        return None
    a, b = _as_size(element_size()), _as_size(nelement())
    return None if a is None or b is None else a * b


def _module_tensors(obj: Any) -> list[Any] | None:
    parameters = getattr(obj, "parameters", None)
    buffers = getattr(obj, "buffers", None)
    if not (callable(parameters) and callable(buffers)):
        return None
    return [*parameters(), *buffers()]


def nbytes_of(obj: Any) -> int:
    """Approximate memory held by ``obj`` in bytes, without importing torch.

    numpy arrays and anything with an integer ``.nbytes`` report themselves; torch tensors are
    ``element_size() * nelement()``; torch modules sum their parameters and buffers; dicts, lists,
    tuples, sets and dataclasses are summed recursively, each object counted once (so shared
    arrays and reference cycles are safe); bytes and str count their length; anything else costs
    :data:`SMALL_OBJECT_BYTES`.
    """
    total = 0
    seen: set[int] = set()
    # An explicit stack: deeply nested results must not hit the recursion limit.
    stack: list[Any] = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
            continue
        if item is None or isinstance(item, bool | int | float | complex):
            total += SMALL_OBJECT_BYTES
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))  # ids stay valid: every item is kept alive by its parent or the stack

        try:
            size = _as_size(getattr(item, "nbytes", None))
            if size is None:
                size = _tensor_bytes(item)
            if size is not None:
                total += size
                continue
            tensors = _module_tensors(item)
        except Exception:  # a broken __getattr__ or a lazy module must not break cache accounting
            logger.debug("cannot measure %s; counting it as small", type(item).__name__, exc_info=True)
            total += SMALL_OBJECT_BYTES
            continue
        if tensors is not None:
            stack.extend(tensors)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name, None) for f in dataclasses.fields(item))
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        else:
            total += SMALL_OBJECT_BYTES
    return total


# --------------------------------------------------------------------------------------------- cache


def _check_budget(budget_bytes: int) -> int:
    size = _as_size(budget_bytes)
    if size is None:
        raise ValueError(f"cache budget must be a non-negative integer number of bytes, got {budget_bytes!r}")
    return size


class _InFlight:
    """One pending factory call that other threads asking for the same key wait on."""

    __slots__ = ("done", "error", "owner", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.owner = threading.get_ident()
        self.value: Any = None
        self.error: BaseException | None = None


class ByteLRUCache(Generic[K, V]):
    """A thread-safe least-recently-used cache bounded by the total bytes of its values.

    ``on_evict(key, value)`` is called, outside the cache's lock, for every value the cache lets
    go of on its own: evicted for room, dropped by a budget shrink, replaced by :meth:`put`, or
    removed by :meth:`clear`. :meth:`pop` hands the value back instead and does not call it.
    """

    def __init__(
        self,
        budget_bytes: int,
        *,
        name: str = "cache",
        sizeof: Callable[[Any], int] = nbytes_of,
        on_evict: Callable[[K, V], object] | None = None,
    ) -> None:
        self.name = name
        self._budget = _check_budget(budget_bytes)
        self._sizeof = sizeof
        self._on_evict = on_evict
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()  # oldest first
        self._total = 0
        self._inflight: dict[K, _InFlight] = {}
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    # ------------------------------------------------------------------ lookups

    def get(self, key: K, default: Any = None) -> V | Any:
        """The value for ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return default
            self._entries.move_to_end(key)
            self._hits += 1
            return entry[0]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries  # a peek: neither recency nor stats change

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list[K]:
        """A snapshot of the keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    # ------------------------------------------------------------------ updates

    def put(self, key: K, value: V, nbytes: int | None = None) -> bool:
        """Store ``value`` and evict least-recently-used entries until the total fits the budget.

        Returns False when ``value`` alone is larger than the whole budget: it is not stored and
        any older value under ``key`` is dropped, so the cache never serves a stale value.
        """
        size = self._measure(value, nbytes)  # outside the lock: measuring a big model walks it
        released: list[tuple[K, V]] = []
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= old[1]
                if old[0] is not value:
                    released.append((key, old[0]))
            stored = size <= self._budget
            if stored:
                self._entries[key] = (value, size)
                self._total += size
                released.extend(self._evict_locked())
        if not stored:
            logger.warning(
                "%s: item %r of %d bytes exceeds the whole budget of %d bytes; not cached",
                self.name,
                key,
                size,
                self._budget,
            )
        self._release(released)
        return stored

    def get_or_create(self, key: K, factory: Callable[[], V], nbytes: int | None = None) -> V:
        """The cached value for ``key``, else ``factory()`` stored and returned.

        Concurrent callers for the same key wait for one factory call and share its value (or
        its exception); callers for other keys are not blocked meanwhile. A value too large for
        the budget is still returned, just not kept.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return entry[0]
            pending = self._inflight.get(key)
            owner = pending is None
            if pending is None:
                pending = self._inflight[key] = _InFlight()
                self._misses += 1
            elif pending.owner == threading.get_ident():
                raise RuntimeError(f"{self.name}: factory for {key!r} asked for its own key (recursion)")

        if not owner:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            with self._lock:
                self._hits += 1
            return pending.value

        try:
            value = factory()
            pending.value = value
            self.put(key, value, nbytes)  # before the in-flight record goes, so no caller misses
            return value
        except BaseException as exc:
            pending.error = exc
            raise
        finally:
            with self._lock:
                if self._inflight.get(key) is pending:
                    del self._inflight[key]
            pending.done.set()

    def pop(self, key: K, default: Any = None) -> V | Any:
        """Remove ``key`` and hand its value back (``on_evict`` is not called)."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return default
            self._total -= entry[1]
            return entry[0]

    def clear(self) -> None:
        """Drop every entry, calling ``on_evict`` for each; statistics are kept."""
        with self._lock:
            released = [(k, v) for k, (v, _) in self._entries.items()]
            self._entries.clear()
            self._total = 0
        self._release(released)

    # ------------------------------------------------------------------ budget and stats

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total

    @property
    def budget_bytes(self) -> int:
        with self._lock:
            return self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        budget = _check_budget(value)
        with self._lock:
            self._budget = budget
            released = self._evict_locked()
        self._release(released)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self._hits,
                "misses": self._misses,
                "evictions": self._evictions,
                "entries": len(self._entries),
                "bytes": self._total,
                "budget": self._budget,
            }

    def __repr__(self) -> str:
        s = self.stats()
        return f"<ByteLRUCache {self.name!r} {s['entries']} entries, {s['bytes']}/{s['budget']} bytes>"

    # ------------------------------------------------------------------ internals

    def _measure(self, value: V, nbytes: int | None) -> int:
        raw = self._sizeof(value) if nbytes is None else nbytes
        size = _as_size(raw)
        if size is None:
            raise ValueError(
                f"{self.name}: size of a cache entry must be a non-negative integer, got {raw!r}"
            )
        return size

    def _evict_locked(self) -> list[tuple[K, V]]:
        released: list[tuple[K, V]] = []
        while self._total > self._budget and self._entries:
            key, (value, size) = self._entries.popitem(last=False)
            self._total -= size
            self._evictions += 1
            released.append((key, value))
        return released

    def _release(self, released: Iterable[tuple[K, V]]) -> None:
        # Outside the lock: on_evict may free GPU memory or even touch this cache again.
        if self._on_evict is None:
            return
        for key, value in released:
            try:
                self._on_evict(key, value)
            except Exception:
                logger.exception("%s: on_evict for %r raised; the entry is dropped anyway", self.name, key)


# --------------------------------------------------------------------------------------------- budgets


def _budget_from_env(var: str, default_mb: int) -> int:
    return int(settings.get(var) * _MB)


def model_cache_budget() -> int:
    """Bytes for loaded models: ``$VFMSTUDIO_MODEL_CACHE_MB`` MiB, default 16384."""
    return _budget_from_env(MODEL_CACHE_ENV, DEFAULT_MODEL_CACHE_MB)


def feature_cache_budget() -> int:
    """Bytes for per-image features: ``$VFMSTUDIO_FEATURE_CACHE_MB`` MiB, default 2048."""
    return _budget_from_env(FEATURE_CACHE_ENV, DEFAULT_FEATURE_CACHE_MB)

"""ByteLRUCache and nbytes_of: LRU order, byte budget, concurrency, env budgets. No torch, no Qt."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from vfmstudio.core import cache as cache_mod
from vfmstudio.core.cache import (
    SMALL_OBJECT_BYTES,
    ByteLRUCache,
    feature_cache_budget,
    model_cache_budget,
    nbytes_of,
)

WAIT = 5.0  # upper bound for event waits; tests normally pass in milliseconds


def sized(cache: ByteLRUCache, key, n: int) -> None:
    cache.put(key, f"value-{key}", nbytes=n)


# --------------------------------------------------------------------------------------------- nbytes_of


class FakeTensor:
    """Quacks like a torch tensor (no .nbytes, as in old torch versions)."""

    def __init__(self, n: int, itemsize: int = 4) -> None:
        self.n, self.itemsize = n, itemsize

    def element_size(self) -> int:
        return self.itemsize

    def nelement(self) -> int:
        return self.n


class FakeModule:
    def __init__(self, params, buffers) -> None:
        self._params, self._buffers = params, buffers

    def parameters(self):
        return iter(self._params)

    def buffers(self):
        return iter(self._buffers)


@dataclass(frozen=True)
class Result:
    values: np.ndarray
    label: str


def test_nbytes_of_arrays_bytes_and_strings():
    assert nbytes_of(np.zeros((10, 10), np.float32)) == 400
    assert nbytes_of(np.int64(3)) == 8
    assert nbytes_of(b"abcd") == 4
    assert nbytes_of("hello") == 5
    assert nbytes_of(object()) == SMALL_OBJECT_BYTES


def test_nbytes_of_duck_typed_tensors_and_modules():
    assert nbytes_of(FakeTensor(100, 2)) == 200
    shared = FakeTensor(10)
    module = FakeModule([FakeTensor(100), shared], [FakeTensor(5, 8), shared])
    assert nbytes_of(module) == 400 + 40 + 40  # the shared tensor counts once


def test_nbytes_of_containers_dataclasses_and_cycles():
    arr = np.zeros(100, np.uint8)
    nested = {"a": [arr, (arr, Result(np.zeros(10, np.float64), "xy"))]}
    # keys "a" (1) + arr once (100) + Result: values (80) + label (2)
    assert nbytes_of(nested) == 1 + 100 + 80 + 2
    cyclic: list = [arr]
    cyclic.append(cyclic)
    assert nbytes_of(cyclic) == 100
    deep: list = []
    for _ in range(10_000):  # deeper than the recursion limit
        deep = [deep]
    assert nbytes_of(deep) == 0


def test_nbytes_of_survives_broken_attributes():
    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("boom")

    assert nbytes_of(Broken()) == SMALL_OBJECT_BYTES


# --------------------------------------------------------------------------------------------- LRU


def test_lru_order_and_eviction_by_bytes():
    evicted = []
    c = ByteLRUCache(300, on_evict=lambda k, v: evicted.append(k))
    for k in "abc":
        sized(c, k, 100)
    assert c.keys() == ["a", "b", "c"] and c.total_bytes == 300
    assert c.get("a") == "value-a"  # a becomes most recent
    sized(c, "d", 100)
    assert c.keys() == ["c", "a", "d"]
    assert evicted == ["b"]
    sized(c, "e", 250)  # needs room for 250: evicts c, a, d in LRU order
    assert c.keys() == ["e"] and evicted == ["b", "c", "a", "d"]
    assert c.total_bytes == 250 and len(c) == 1


def test_contains_is_a_peek():
    c = ByteLRUCache(200)
    sized(c, "a", 100)
    sized(c, "b", 100)
    assert "a" in c and "zz" not in c
    sized(c, "c", 100)  # "a" stays least recent despite the `in` check
    assert c.keys() == ["b", "c"]
    assert c.stats()["hits"] == 0 and c.stats()["misses"] == 0


def test_sizes_measured_by_sizeof():
    c = ByteLRUCache(1000)
    c.put("arr", np.zeros(100, np.float32))
    assert c.total_bytes == 400
    c2 = ByteLRUCache(1000, sizeof=lambda v: 7)
    c2.put("x", object())
    assert c2.total_bytes == 7
    with pytest.raises(ValueError, match="non-negative"):
        c.put("bad", 1, nbytes=-1)


def test_replacing_a_key_updates_bytes_and_releases_the_old_value():
    evicted = []
    c = ByteLRUCache(1000, on_evict=lambda k, v: evicted.append((k, v)))
    c.put("k", "old", nbytes=600)
    c.put("k", "new", nbytes=300)
    assert c.total_bytes == 300 and c.get("k") == "new"
    assert evicted == [("k", "old")]
    c.put("k", "new", nbytes=400)  # same object: not "released"
    assert evicted == [("k", "old")] and c.total_bytes == 400


def test_oversize_item_is_not_stored_and_drops_the_stale_value(caplog):
    c = ByteLRUCache(100, name="feat")
    c.put("k", "small", nbytes=50)
    with caplog.at_level(logging.WARNING, logger=cache_mod.__name__):
        assert c.put("k", "huge", nbytes=101) is False
    assert "k" not in c and c.total_bytes == 0 and len(c) == 0
    assert "exceeds the whole budget" in caplog.text
    # get_or_create still hands the value back, it just is not kept.
    assert c.get_or_create("big", lambda: "huge", nbytes=500) == "huge"
    assert "big" not in c


def test_budget_shrink_evicts_lru_and_validates():
    evicted = []
    c = ByteLRUCache(400, on_evict=lambda k, v: evicted.append(k))
    for k in "abcd":
        sized(c, k, 100)
    c.get("a")
    c.budget_bytes = 200
    assert c.keys() == ["d", "a"] and evicted == ["b", "c"]
    assert c.budget_bytes == 200 and c.total_bytes == 200
    c.budget_bytes = 0
    assert len(c) == 0
    with pytest.raises(ValueError):
        c.budget_bytes = -1
    with pytest.raises(ValueError):
        ByteLRUCache(-5)


def test_pop_and_clear():
    evicted = []
    c = ByteLRUCache(1000, on_evict=lambda k, v: evicted.append(k))
    for k in "abc":
        sized(c, k, 100)
    assert c.pop("b") == "value-b" and c.pop("b", "gone") == "gone"
    assert evicted == [] and c.total_bytes == 200  # pop hands the value back, no on_evict
    c.clear()
    assert len(c) == 0 and c.total_bytes == 0 and evicted == ["a", "c"]


def test_raising_on_evict_is_logged_and_the_cache_goes_on(caplog):
    def on_evict(k, v):
        raise RuntimeError("cannot free")

    c = ByteLRUCache(100, on_evict=on_evict)
    sized(c, "a", 100)
    with caplog.at_level(logging.ERROR, logger=cache_mod.__name__):
        sized(c, "b", 100)
    assert c.keys() == ["b"] and "on_evict" in caplog.text


def test_stats():
    c = ByteLRUCache(250)
    sized(c, "a", 100)
    sized(c, "b", 100)
    c.get("a")
    c.get("missing")
    sized(c, "c", 100)
    assert c.get_or_create("c", lambda: "never") == "value-c"
    assert c.get_or_create("d", lambda: "made", nbytes=10) == "made"
    assert c.stats() == {"hits": 2, "misses": 2, "evictions": 1, "entries": 3, "bytes": 210, "budget": 250}


# --------------------------------------------------------------------------------------------- get_or_create


def test_concurrent_get_or_create_computes_once():
    calls = []
    entered = threading.Event()
    release = threading.Event()

    def factory():
        calls.append(1)
        entered.set()
        assert release.wait(WAIT)
        return object()

    c = ByteLRUCache(10_000)
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(c.get_or_create("m", factory, nbytes=10)))
        for _ in range(8)
    ]
    threads[0].start()
    assert entered.wait(WAIT)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(WAIT)
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert c.stats()["misses"] == 1 and c.stats()["hits"] == 7


def test_get_or_create_does_not_block_other_keys():
    a_started, b_done = threading.Event(), threading.Event()
    c = ByteLRUCache(10_000)

    def slow_a():
        a_started.set()
        assert b_done.wait(WAIT), "key b was blocked by key a's factory"
        return "a"

    t = threading.Thread(target=c.get_or_create, args=("a", slow_a))
    t.start()
    assert a_started.wait(WAIT)
    assert c.get_or_create("b", lambda: "b") == "b"
    b_done.set()
    t.join(WAIT)
    assert c.get("a") == "a"


def test_get_or_create_factory_error_is_shared_then_retried():
    entered, release = threading.Event(), threading.Event()

    def failing():
        entered.set()
        assert release.wait(WAIT)
        raise OSError("no weights")

    c = ByteLRUCache(1000)
    errors: list = []

    def call():
        try:
            c.get_or_create("m", failing)
        except OSError as exc:
            errors.append(exc)

    t1 = threading.Thread(target=call)
    t1.start()
    assert entered.wait(WAIT)
    t2 = threading.Thread(target=call)
    t2.start()
    release.set()
    t1.join(WAIT)
    t2.join(WAIT)
    assert len(errors) == 2 and "m" not in c
    assert c.get_or_create("m", lambda: "ok") == "ok"  # nothing poisoned


def test_get_or_create_recursion_on_same_key_raises():
    c = ByteLRUCache(1000)
    with pytest.raises(RuntimeError, match="recursion"):
        c.get_or_create("k", lambda: c.get_or_create("k", lambda: 1))
    assert c.get_or_create("k", lambda: 2) == 2


# --------------------------------------------------------------------------------------------- env budgets


def test_budgets_from_environment(monkeypatch):
    monkeypatch.delenv("VFMSTUDIO_MODEL_CACHE_MB", raising=False)
    monkeypatch.delenv("VFMSTUDIO_FEATURE_CACHE_MB", raising=False)
    assert model_cache_budget() == 16384 * 1024 * 1024
    assert feature_cache_budget() == 2048 * 1024 * 1024
    monkeypatch.setenv("VFMSTUDIO_MODEL_CACHE_MB", "512")
    monkeypatch.setenv("VFMSTUDIO_FEATURE_CACHE_MB", " 0.5 ")
    assert model_cache_budget() == 512 * 1024 * 1024
    assert feature_cache_budget() == 512 * 1024


@pytest.mark.parametrize("bad", ["lots", "-1", "nan", "inf", "1e400"])
def test_bad_budget_values_name_the_variable(monkeypatch, bad):
    monkeypatch.setenv("VFMSTUDIO_FEATURE_CACHE_MB", bad)
    with pytest.raises(ValueError, match="VFMSTUDIO_FEATURE_CACHE_MB"):
        feature_cache_budget()

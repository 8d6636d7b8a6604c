"""The embedding store and the searches on it, without models (Qt-free, torch-free)."""

from __future__ import annotations

import numpy as np
import pytest

from vfmstudio.index.groups import exact_copies, near_duplicate_rows, outlier_scores
from vfmstudio.index.search import Searcher, exact_search
from vfmstudio.index.store import EmbeddingStore, FileEntry, IndexStoreError

META = {"tool": "t.embed", "model": "m", "params": {"pool": "cls"}}


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_rows_survive_reopening_and_are_memory_mapped(tmp_path):
    store = EmbeddingStore.open(tmp_path / "s", META)
    vecs = unit_rows(5, 8)
    store.append([f"id{i}" for i in range(5)], vecs)
    store.append(["id0", "id9"], unit_rows(2, 8, seed=1))  # id0 is already there: skipped
    again = EmbeddingStore.open(tmp_path / "s", META)
    assert again.ids == ["id0", "id1", "id2", "id3", "id4", "id9"] and again.dim == 8
    assert isinstance(again.vectors(), np.memmap)
    np.testing.assert_array_equal(again.vectors()[:5], vecs)
    np.testing.assert_array_equal(again.vector("id9"), unit_rows(2, 8, seed=1)[1])


def test_a_torn_tail_from_a_killed_run_is_ignored_then_cut(tmp_path):
    store = EmbeddingStore.open(tmp_path / "s", META)
    store.append(["a", "b"], unit_rows(2, 4))
    with open(tmp_path / "s" / "vectors.f32", "ab") as fp:
        fp.write(b"\x00" * 7)  # half a row
    with open(tmp_path / "s" / "ids.txt", "a") as fp:
        fp.write("c\nd")  # one id without its row, one torn line
    again = EmbeddingStore.open(tmp_path / "s", META)
    assert again.ids == ["a", "b"]
    again.append(["e"], unit_rows(1, 4, seed=3))
    third = EmbeddingStore.open(tmp_path / "s", META)
    assert third.ids == ["a", "b", "e"]
    np.testing.assert_array_equal(third.vector("e"), unit_rows(1, 4, seed=3)[0])


def test_dropping_rows_keeps_the_others_in_order(tmp_path):
    store = EmbeddingStore.open(tmp_path / "s", META)
    vecs = unit_rows(4, 6)
    store.append(["a", "b", "c", "d"], vecs)
    assert store.drop({"b", "zzz"}) == 1
    again = EmbeddingStore.open(tmp_path / "s", META)
    assert again.ids == ["a", "c", "d"]
    np.testing.assert_array_equal(again.vectors(), vecs[[0, 2, 3]])


def test_a_store_made_for_other_settings_is_refused(tmp_path):
    EmbeddingStore.open(tmp_path / "s", META).save_files({"x.png": FileEntry("a", 1, 2)})
    with pytest.raises(IndexStoreError, match="made for other settings"):
        EmbeddingStore.open(tmp_path / "s", {**META, "params": {"pool": "mean"}})


def test_exact_search_equals_brute_force_across_chunks(monkeypatch):
    import vfmstudio.index.search as search_module

    monkeypatch.setattr(search_module, "CHUNK_ROWS", 37)  # several chunks
    vecs, queries = unit_rows(500, 16), unit_rows(7, 16, seed=5)
    hits = exact_search(vecs, queries, 10)
    brute = np.argsort(-(queries @ vecs.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(hits.rows, brute)  # recall 1.0, same order
    np.testing.assert_allclose(hits.scores, np.take_along_axis(queries @ vecs.T, brute, axis=1), rtol=1e-6)


def test_approximate_search_recalls_at_least_95_percent_at_k10(tmp_path):
    vecs, queries = unit_rows(5000, 32), unit_rows(100, 32, seed=9)
    ids = [f"id{i}" for i in range(len(vecs))]
    approx = Searcher(vecs, ids, tmp_path / "hnsw.usearch", exact=False)
    truth = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    got = approx.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got.rows, truth)])
    assert recall >= 0.95
    # The scores are the cosine similarities of the rows returned.
    np.testing.assert_allclose(got.scores, np.take_along_axis(queries @ vecs.T, got.rows, axis=1), atol=1e-4)
    # Opened again for the same rows, the saved graph is loaded rather than rebuilt.
    before = (tmp_path / "hnsw.usearch").stat().st_mtime_ns
    Searcher(vecs, ids, tmp_path / "hnsw.usearch", exact=False)
    assert (tmp_path / "hnsw.usearch").stat().st_mtime_ns == before


def test_exact_copies_and_near_duplicates_are_grouped():
    assert exact_copies({"a.png": "x", "b/a.png": "x", "c.png": "y", "d.png": "x"}) == [
        ["a.png", "b/a.png", "d.png"]
    ]
    base = unit_rows(50, 16)
    twin = base[7] + 0.01 * unit_rows(1, 16, seed=2)[0]
    vecs = np.vstack([base, twin / np.linalg.norm(twin)])
    searcher = Searcher(vecs, [str(i) for i in range(len(vecs))], exact=True)
    assert near_duplicate_rows(searcher, len(vecs), threshold=0.99) == [[7, 50]]


def test_the_odd_one_out_ranks_first_as_an_outlier():
    rng = np.random.default_rng(0)
    centre = unit_rows(1, 16)[0]
    cluster = centre + 0.05 * rng.standard_normal((40, 16))
    odd = -centre
    vecs = np.vstack([cluster, odd]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    scores = outlier_scores(Searcher(vecs, [str(i) for i in range(len(vecs))], exact=True), len(vecs), k=5)
    assert int(np.argmax(scores)) == 40


def test_kmeans_finds_well_separated_clusters():
    from vfmstudio.index.groups import kmeans_labels

    rng = np.random.default_rng(0)
    centres = unit_rows(4, 16, seed=3) * 10
    truth = rng.integers(0, 4, 400)
    vecs = (centres[truth] + rng.standard_normal((400, 16))).astype(np.float32)
    got = kmeans_labels(vecs, k=4)
    # The same partition, whatever the cluster numbers: each true cluster maps to one label.
    assert all(len(set(got[truth == t])) == 1 for t in range(4)) and len(set(got)) == 4

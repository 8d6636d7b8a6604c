"""The folder index: query speed at 100k vectors, and embedding throughput against the raw forward.

1. Search, synthetic unit vectors (768-d, the size of CLIP-L / DINOv2-B embeddings), in one process:
   exact numpy scan of the memory-mapped store vs usearch HNSW (build time, median query, recall@10
   against the exact result). Target: a query over 100k vectors under 20 ms.
2. Throughput, real-size CLIP-B/32 with random weights at 224 px: ``vfmstudio index`` (update_index:
   hashing, decode threads, batched prepare, the store) vs the raw batched forward
   (``get_image_features`` on ready tensors, same batch size). Target: >= 0.9.
3. An incremental update of an unchanged folder (hash check only; no forward).

    .venv/bin/python benchmarks/bench_index.py [--vectors 100000] [--images 48] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_clip_classify import build_clip_base, make_images  # noqa: E402

from vfmstudio.index.search import Searcher, exact_search  # noqa: E402
from vfmstudio.index.store import EmbeddingStore  # noqa: E402


def unit_rows(n: int, d: int, seed: int, clusters: int = 1000) -> np.ndarray:
    """Unit vectors around ``clusters`` centres, as image embeddings are (photos of the same kinds of
    things); i.i.d. Gaussian vectors in 768-d have no neighbour structure at all (every pair is nearly
    orthogonal), which no approximate index is built for."""
    out = np.empty((n, d), np.float32)
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(12345).standard_normal((clusters, d)).astype(np.float32)
    for start in range(0, n, 10_000):
        m = min(10_000, n - start)
        block = centres[rng.integers(0, clusters, m)] + 0.7 * rng.standard_normal((m, d)).astype(np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def bench_search(n: int, dim: int, work: Path) -> None:
    store = EmbeddingStore.open(work / "store", {"tool": "bench", "model": "synthetic", "params": {}})
    vecs = unit_rows(n, dim, seed=0)
    store.append([f"id{i}" for i in range(n)], vecs)
    del vecs
    mapped = store.vectors()
    queries = unit_rows(50, dim, seed=1)
    exact_ms = median_ms(lambda: exact_search(mapped, queries[:1], 10), 20)
    t0 = time.perf_counter()
    approx = Searcher(mapped, store.ids, work / "hnsw.usearch", exact=False)
    build_s = time.perf_counter() - t0
    approx_ms = median_ms(lambda: approx.search(queries[:1], 10), 50)
    truth = exact_search(mapped, queries, 10).rows
    got = approx.search(queries, 10).rows
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))
    t0 = time.perf_counter()
    Searcher(mapped, store.ids, work / "hnsw.usearch", exact=False)
    reopen_s = time.perf_counter() - t0
    print(
        f"search over {n} x {dim}: exact scan {exact_ms:.1f} ms, HNSW {approx_ms:.2f} ms "
        f"(exact/HNSW {exact_ms / approx_ms:.0f}x), recall@10 {recall:.3f}; HNSW build {build_s:.1f} s, "
        f"reopen {reopen_s * 1000:.0f} ms"
    )


def bench_throughput(n_images: int, batch_size: int, work: Path) -> None:
    import torch
    from vfmstudio_clip._model import load_bundle, pixel_values

    from vfmstudio._plugin_host import get_host
    from vfmstudio.core.image import load_image
    from vfmstudio.engines.worker import batch_services
    from vfmstudio.index.build import update_index

    model_dir = build_clip_base(work / "clip-b32")
    folder = work / "images"
    folder.mkdir()
    paths = make_images(folder, n_images)
    bundle = load_bundle(str(model_dir), "cpu", "fp32")
    tensors = [
        pixel_values(bundle, [load_image(p).pixels for p in paths[i : i + batch_size]])
        for i in range(0, len(paths), batch_size)
    ]
    with torch.inference_mode():
        bundle.model.get_image_features(pixel_values=tensors[0])  # warm-up
        t0 = time.perf_counter()
        for t in tensors:
            bundle.model.get_image_features(pixel_values=t)
        raw_s = time.perf_counter() - t0
    tool = get_host().tool("clip.embed")
    t0 = time.perf_counter()
    index = update_index(
        folder,
        model=str(model_dir),
        tool=tool,
        params={"batch_size": batch_size},
        batch_size=batch_size,
        services=batch_services(),
    )
    index_s = time.perf_counter() - t0
    assert index.report.embedded == n_images, index.report
    t0 = time.perf_counter()
    again = update_index(
        folder,
        model=str(model_dir),
        tool=tool,
        params={"batch_size": batch_size},
        batch_size=batch_size,
        services=batch_services(),
    )
    unchanged_s = time.perf_counter() - t0
    assert again.report.embedded == 0
    print(
        f"index {n_images} images, CLIP-B/32 at 224, batch {batch_size}: raw batched forward "
        f"{n_images / raw_s:.1f} images/s, vfmstudio index {n_images / index_s:.1f} images/s "
        f"(efficiency {raw_s / index_s:.2f}; includes model load, hashing, decoding, preprocessing); "
        f"update of the unchanged folder {unchanged_s * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench_search(args.vectors, args.dim, work)
        bench_throughput(args.images, args.batch_size, work)


if __name__ == "__main__":
    main()

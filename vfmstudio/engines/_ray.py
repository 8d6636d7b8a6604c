"""The Ray engine: the same per-image work as the local engine, as a Ray Data ``map_batches``
callable class on an actor pool, so a cluster of GPU machines works through one folder.

Each actor holds a :class:`~vfmstudio.engines.worker.BatchWorker` (its own model and feature
caches), decodes its batch with a few threads, and writes the prediction files itself; OUT must
therefore be a folder every node can write (a shared file system). The driver only books the small
outcome rows (failures file, progress, stop rule). Ray is imported here, when the engine is used.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vfmstudio.engines.job import BatchError, Plan, Progress, StopRule, record
from vfmstudio.engines.sources import Item
from vfmstudio.engines.worker import BatchWorker, Outcome, RunSpec, load_item

INSTALL_HINT = (
    "the Ray engine needs the 'ray' extra: pip install 'vfmstudio[ray]'  (or: pip install 'ray[data]')"
)
_DECODE_THREADS = 4


class RayUnavailable(Exception):
    """Ray is not installed, or the cluster cannot be reached; the message says what to do."""


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the extra, not just the core
    except ImportError:
        raise RayUnavailable(INSTALL_HINT) from None
    return ray


class BatchActor:
    """What Ray runs in each actor: ``__call__`` takes a batch of item columns and returns outcomes."""

    def __init__(self, spec: RunSpec, embeddings: bool = False):
        # embeddings: send each image's vector back to the driver (the folder index's store is written
        # by the driver alone) instead of writing prediction files.
        self.embeddings = embeddings
        self.vectors: dict[str, tuple[str, bytes]] = {}
        self.worker = BatchWorker(spec, sink=self._keep_embedding if embeddings else None)
        self.reader = self.worker.reader()
        self.pool = ThreadPoolExecutor(max_workers=_DECODE_THREADS, thread_name_prefix="vfm-decode")

    def _keep_embedding(self, item: Item, prediction, stat) -> None:
        from vfmstudio.index.build import embedding_of

        image_id, vector = embedding_of(prediction)
        self.vectors[item.key] = (image_id, np.ascontiguousarray(vector, np.float32).tobytes())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [Item(str(p), str(r), str(k)) for p, r, k in zip(batch["path"], batch["rel"], batch["key"])]
        side = self.worker.spec.decode_side()
        loaded = list(self.pool.map(lambda it: load_item(it, self.reader, side), items))
        outcomes = self.worker.process(loaded)
        extra = {}
        if self.embeddings:  # float32 bytes per row ("" for a failed image): one column type for Ray
            got = [self.vectors.pop(o.item.key, ("", b"")) for o in outcomes]
            extra = {
                "image_id": np.array([g[0] for g in got], dtype=object),
                "vector": np.array([g[1] for g in got], dtype=object),
            }
        return {
            **extra,
            "key": np.array([o.item.key for o in outcomes], dtype=object),
            "path": np.array([o.item.path for o in outcomes], dtype=object),
            "rel": np.array([o.item.rel for o in outcomes], dtype=object),
            "ok": np.array([o.ok for o in outcomes], dtype=bool),
            "stage": np.array([o.stage for o in outcomes], dtype=object),
            "reason": np.array([o.reason for o in outcomes], dtype=object),
        }


def _connect(ray, address: str | None, workers: int) -> bool:
    """Join ``address`` or start a small local instance; True when this call started Ray."""
    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    runtime_env = {"env_vars": env} if env else None
    if address:
        _probe(address)
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, logging_level="ERROR", log_to_driver=False)
        else:
            # One CPU per actor plus one spare, so the read stage is never starved of a CPU.
            ray.init(
                num_cpus=max(2, workers + 1),
                include_dashboard=False,
                runtime_env=runtime_env,
                logging_level="ERROR",
                log_to_driver=False,
            )
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RayUnavailable(f"cannot start or reach {where}: {' '.join(str(exc).split())}") from None
    return True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on an unreachable ``host:port`` (ray.init would retry for minutes)."""
    if address == "auto" or "://" in address:
        return  # "auto" reads the local cluster's address file; ray:// is Ray Client with its own timeout
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RayUnavailable(f"--ray-address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc})") from None


def preflight(address: str | None) -> None:
    """Before anything is written: the extra is installed and the cluster answers."""
    import_ray()
    if address:
        _probe(address)


def run_ray(
    plan: Plan,
    *,
    address: str | None = None,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    on_update: Callable[[Progress], None] | None = None,
    on_embedding: Callable[[str, np.ndarray], None] | None = None,
) -> Progress:
    """Process ``plan.todo`` on ``workers`` Ray actors; the files written equal the local engine's.

    With ``on_embedding(image_id, vector)`` the actors write nothing: each image's embedding comes
    back to the driver, which hands it over (the folder index appends it to its store)."""
    ray = import_ray()
    progress = Progress(total=len(plan.source.items), skipped=plan.skipped, on_update=on_update)
    if on_update is not None:
        on_update(progress)
    if not plan.todo:
        return progress
    started = _connect(ray, address, workers)
    try:
        # Our progress bar and summary replace Ray Data's own progress logging.
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        rows = [{"path": it.path, "rel": it.rel, "key": it.key} for it in plan.todo]
        blocks = max(1, min(len(rows) // plan.batch_size, 200))
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = ds.map_batches(
            BatchActor,
            fn_constructor_kwargs={"spec": plan.spec, "embeddings": on_embedding is not None},
            batch_size=plan.batch_size,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_gpus=gpus_per_worker or None,
            num_cpus=cpus_per_worker,
            batch_format="numpy",
        )
        stop = StopRule()
        try:
            for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                outcomes = [
                    Outcome(Item(str(p), str(rel), str(k)), bool(ok), str(s), str(r))
                    for k, p, rel, ok, s, r in zip(
                        out["key"], out["path"], out["rel"], out["ok"], out["stage"], out["reason"]
                    )
                ]
                if on_embedding is not None:
                    for ok, image_id, vector in zip(out["ok"], out["image_id"], out["vector"]):
                        if ok and vector:
                            on_embedding(str(image_id), np.frombuffer(vector, dtype=np.float32))
                record(plan, progress, stop, outcomes)
        except BatchError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray wraps worker failures in its own types
            raise BatchError(f"the Ray job failed: {_one_line(exc)}", user_error=False) from exc
    finally:
        if started:
            ray.shutdown()
    return progress


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # Ray's messages end with the worker's exception line, which is the informative part.
    last = text[-1].strip() if text else ""
    return last or type(exc).__name__

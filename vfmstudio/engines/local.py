"""The local engine: a bounded pool of threads decodes images for the inference thread, which
runs the tool on batches and writes each prediction as soon as it exists.

When the model runs on a GPU (or the tool has no model), decoding overlaps inference: the pool
keeps up to ``2 x batch + workers`` images decoded ahead. When the model runs on the CPU, the pool
decodes each batch while the inference thread waits, then stays idle during the forward pass:
torch already uses every core there, and one extra busy thread on a 2-core machine made a
CLIP-B/32 forward 5x slower (OpenMP threads wait on each other at every barrier), costing far
more than the decoding it hid. The first batch runs in that lock-step mode, since the device is
known only once a prediction names it.

Memory stays flat however many images there are: a bounded number of decoded images wait, the
batch feature cache keeps one batch of features, and predictions go to disk, never into a list.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from vfmstudio.core.cancel import CancelToken
from vfmstudio.engines.job import Plan, Progress, StopRule, record
from vfmstudio.engines.worker import BatchWorker, Loaded, load_item


def default_workers() -> int:
    """Decoding threads: enough to keep one accelerator fed; with a CPU model they take turns with it."""
    return max(1, min(4, os.cpu_count() or 2))


def overlaps(worker: BatchWorker, prefetch: str) -> bool:
    if prefetch != "auto":
        return prefetch == "overlap"
    return worker.ran and worker.device != "cpu"


def run_local(
    plan: Plan,
    *,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    on_update: Callable[[Progress], None] | None = None,
    services=None,
    prefetch: str = "auto",
    sink: Callable[..., object] | None = None,
) -> Progress:
    """Process ``plan.todo`` in batches of ``plan.batch_size``; returns the final counts.

    ``prefetch``: "auto" (overlap decoding with inference unless the model runs on the CPU),
    "overlap" or "lockstep" (benchmarks compare them). ``sink(item, prediction, stat)`` replaces writing
    prediction files (the folder index stores vectors).

    Raises :class:`~vfmstudio.engines.job.BatchError` when the stop rule fires and
    :class:`~vfmstudio.core.cancel.Cancelled` when ``cancel`` fires; everything finished until
    then is on disk and a ``--resume`` continues from there.
    """
    workers = workers or default_workers()
    progress = Progress(total=len(plan.source.items), skipped=plan.skipped, on_update=on_update)
    worker = BatchWorker(plan.spec, services=services, cancel=cancel, sink=sink)
    reader = worker.reader()
    min_side = plan.spec.decode_side()
    stop = StopRule()
    depth = 2 * plan.batch_size + workers  # overlap: one batch being run, one being decoded, slack
    pending: deque[Future[Loaded]] = deque()
    todo = iter(plan.todo)
    if on_update is not None:
        on_update(progress)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vfm-decode") as pool:

        def refill(limit: int) -> None:
            while len(pending) < limit:
                item = next(todo, None)
                if item is None:
                    return
                pending.append(pool.submit(load_item, item, reader, min_side))

        try:
            batch: list[Loaded] = []
            while True:
                if overlaps(worker, prefetch):
                    refill(depth)
                elif not pending:  # lock-step: decode just what the batch lacks, all threads at once
                    refill(plan.batch_size - len(batch))
                if not pending:
                    break
                loaded = pending.popleft().result()
                if loaded.image is None:  # no reason to hold a failed read until the batch is full
                    record(plan, progress, stop, worker.process([loaded]))
                    continue
                batch.append(loaded)
                if len(batch) == plan.batch_size:
                    worker.cancel.raise_if_cancelled()
                    record(plan, progress, stop, worker.process(batch))
                    batch = []
            if batch:
                record(plan, progress, stop, worker.process(batch))
        finally:
            for fut in pending:
                fut.cancel()
    return progress

"""The local engine: a bounded pool of threads decodes images ahead of the inference thread,
which runs the tool on batches and writes each prediction as soon as it exists.

Memory stays flat however many images there are: at most ``prefetch`` decoded images wait in the
queue, the feature cache is byte-bounded, and predictions go to disk, never into a list.
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
    """Decoding threads: enough to keep one model busy, few enough to leave it a core."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def run_local(plan: Plan, *, workers: int | None = None, cancel: CancelToken | None = None,
              on_update: Callable[[Progress], None] | None = None, services=None) -> Progress:
    """Process ``plan.todo`` in batches of ``plan.batch_size``; returns the final counts.

    Raises :class:`~vfmstudio.engines.job.BatchError` when the stop rule fires and
    :class:`~vfmstudio.core.cancel.Cancelled` when ``cancel`` fires; everything finished until
    then is on disk and a ``--resume`` continues from there.
    """
    workers = workers or default_workers()
    progress = Progress(total=len(plan.source.items), skipped=plan.skipped, on_update=on_update)
    worker = BatchWorker(plan.spec, services=services, cancel=cancel)
    reader = worker.reader()
    stop = StopRule()
    depth = 2 * plan.batch_size + workers  # one batch being run, one being decoded, slack for the pool
    pending: deque[Future[Loaded]] = deque()
    todo = iter(plan.todo)
    if on_update is not None:
        on_update(progress)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vfm-decode") as pool:
        def refill() -> None:
            while len(pending) < depth:
                item = next(todo, None)
                if item is None:
                    return
                pending.append(pool.submit(load_item, item, reader))

        try:
            refill()
            batch: list[Loaded] = []
            while pending:
                loaded = pending.popleft().result()
                refill()
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

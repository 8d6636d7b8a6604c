"""Bridges :class:`vfmstudio.core.jobs.JobRunner` to the GUI thread: the one idiom for every
background job in ``qt/`` (tool runs, image decoding, thumbnails, plugin loading; docs/adr/0120).

``submit(fn, on_done=..., on_progress=..., on_partial=...)`` runs ``fn`` on the runner's thread and
calls the given callbacks on the GUI thread, for that job only: nobody filters a broadcast by job
id. JobRunner calls back on its worker thread; each callback there only emits a private signal
connected with a *queued* connection, so the worker never waits for the GUI. The public signals
(``progressed``, ``partial``, ``finished``) still fire for every job, for monitors and tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from vfmstudio.core.jobs import Job, JobContext, JobPartial, JobProgress, JobResult, JobRunner

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.05


class QtJobRunner(QObject):
    progressed = Signal(object)  # JobProgress
    partial = Signal(object)  # JobPartial
    finished = Signal(object)  # JobResult

    _progress_from_worker = Signal(object)
    _partial_from_worker = Signal(object)
    _done_from_worker = Signal(object)

    def __init__(self, runner: JobRunner | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner or JobRunner()
        queued = Qt.ConnectionType.QueuedConnection
        self._progress_from_worker.connect(self._on_progress, queued)
        self._partial_from_worker.connect(self._on_partial, queued)
        self._done_from_worker.connect(self._on_done, queued)
        self._jobs: dict[int, Job] = {}
        self._callbacks: dict[int, tuple[Callable | None, Callable | None, Callable | None]] = {}
        self._last_progress: dict[int, float] = {}  # job id -> when progress was last forwarded (worker)

    def submit(
        self,
        fn: Callable[[JobContext], Any],
        *,
        key: str | None = None,
        source: str = "",
        timeout: float | None = None,
        priority: int = 0,
        on_done: Callable[[JobResult], object] | None = None,
        on_progress: Callable[[JobProgress], object] | None = None,
        on_partial: Callable[[JobPartial], object] | None = None,
    ) -> Job:
        """Queue ``fn``; each callback given here is called on the GUI thread for this job only
        (``on_done`` exactly once, whatever the outcome)."""
        # Results come back as queued events on this (the GUI) thread, so registering the callbacks
        # after the runner took the job is still in time even for a job that ends at once.
        job = self.runner.submit(
            fn,
            key=key,
            source=source,
            timeout=timeout,
            priority=priority,
            on_progress=self._forward_progress,
            on_partial=self._forward_partial,
            on_done=self._forward_done,
        )
        self._jobs[job.job_id] = job
        if on_done or on_progress or on_partial:
            self._callbacks[job.job_id] = (on_done, on_progress, on_partial)
        return job

    def pending(self) -> int:
        """Jobs submitted here whose result has not been delivered yet."""
        return len(self._jobs)

    def cancel_where(self, predicate: Callable[[Job], bool]) -> int:
        n = 0
        for job in list(self._jobs.values()):
            if predicate(job) and job.cancel():
                n += 1
        return n

    def shutdown(self, timeout: float = 5.0) -> bool:
        return self.runner.shutdown(wait=True, timeout=timeout)

    # -- worker-thread side: emit only -------------------------------------------------------
    def _forward_progress(self, update: JobProgress) -> None:
        # A tool may report progress in a tight loop; a queued event per report would flood the GUI
        # thread (posted events starve its timers and input). At most one per interval per job.
        now = time.monotonic()
        last = self._last_progress.get(update.job_id, 0.0)
        if now - last < PROGRESS_INTERVAL_S and (update.fraction or 0.0) < 1.0:
            return
        self._last_progress[update.job_id] = now
        self._progress_from_worker.emit(update)

    def _forward_partial(self, update: JobPartial) -> None:
        self._partial_from_worker.emit(update)

    def _forward_done(self, result: JobResult) -> None:
        self._last_progress.pop(result.job_id, None)
        self._done_from_worker.emit(result)

    # -- GUI-thread side ----------------------------------------------------------------------
    def _on_progress(self, update: JobProgress) -> None:
        _call("progress", self._callbacks.get(update.job_id, (None, None, None))[1], update)
        self.progressed.emit(update)

    def _on_partial(self, update: JobPartial) -> None:
        _call("partial", self._callbacks.get(update.job_id, (None, None, None))[2], update)
        self.partial.emit(update)

    def _on_done(self, result: JobResult) -> None:
        self._jobs.pop(result.job_id, None)
        _call("done", self._callbacks.pop(result.job_id, (None, None, None))[0], result)
        self.finished.emit(result)


def _call(what: str, callback: Callable[[Any], object] | None, arg: Any) -> None:
    """A raising callback is logged; the job's other deliveries still happen."""
    if callback is None:
        return
    try:
        callback(arg)
    except Exception:  # noqa: BLE001 - one broken receiver must not break the runner
        log.exception("%s callback of job %s raised", what, getattr(arg, "job_id", "?"))

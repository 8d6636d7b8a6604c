"""Bridges :class:`vfmstudio.core.jobs.JobRunner` to Qt signals.

JobRunner calls back on the inference thread. Each callback only emits a private signal that is
connected to this object with a *queued* connection, so the public signals (``progressed``,
``partial``, ``finished``) always fire on the GUI thread, and the worker never waits for the GUI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from vfmstudio.core.jobs import Job, JobContext, JobPartial, JobProgress, JobResult, JobRunner

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
        self._progress_from_worker.connect(self.progressed, queued)
        self._partial_from_worker.connect(self.partial, queued)
        self._done_from_worker.connect(self._on_done, queued)
        self._jobs: dict[int, Job] = {}
        self._last_progress: dict[int, float] = {}  # job id -> when progress was last forwarded (worker)

    def submit(self, fn: Callable[[JobContext], Any], *, key: str | None = None, source: str = "",
               timeout: float | None = None) -> Job:
        job = self.runner.submit(
            fn,
            key=key,
            source=source,
            timeout=timeout,
            on_progress=self._forward_progress,
            on_partial=self._forward_partial,
            on_done=self._forward_done,
        )
        self._jobs[job.job_id] = job
        return job

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
    def _on_done(self, result: JobResult) -> None:
        self._jobs.pop(result.job_id, None)
        self.finished.emit(result)

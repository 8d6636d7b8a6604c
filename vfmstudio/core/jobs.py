"""The inference job queue: one worker thread, cooperative cancel, supersede by view key.

Qt-free and torch-free: the CLI and batch engines use it directly, ``qt/runner.py`` only forwards
its callbacks to Qt signals. Callbacks run on the worker thread, so they must be quick and must
never wait on the GUI thread.

Delivery rules:

- Every job ends exactly once with a :class:`JobResult` whose status is one of
  :data:`FINAL_STATUSES`, and ``on_done`` is called exactly once with it.
- A job whose token fired before it finished never reports ``"done"``: its value is dropped, so a
  stale result can never be drawn on the wrong image.
- For a job that ran, ``on_done`` has returned before :meth:`Job.result` returns. A job dropped
  from the queue (cancelled, superseded, shut down) is final at once, and its ``on_done`` follows
  on the worker thread as soon as the worker is free.
- Jobs run highest ``priority`` first, first in first out within a priority: background work
  (feature prefetch) uses a negative priority so whatever the user asks for jumps ahead of it.
- A job given a ``timeout`` that is still running when it expires ends as ``"error"`` (kind
  ``TimeoutError``) and is abandoned: its token fires, a fresh worker thread takes over the queue,
  and whatever the stuck function eventually returns is dropped. Python cannot kill a thread, so
  worker threads are daemons: a hung plugin never keeps the process from exiting.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from vfmstudio.core.cancel import Cancelled, CancelToken

__all__ = [
    "FINAL_STATUSES",
    "THREAD_NAME",
    "ErrorRecord",
    "Job",
    "JobContext",
    "JobPartial",
    "JobProgress",
    "JobRecord",
    "JobResult",
    "JobRunner",
    "JobStatus",
    "JobTimings",
    "run_sync",
]

logger = logging.getLogger(__name__)

THREAD_NAME: Final = "vfmstudio-inference"
JobStatus = Literal["done", "error", "cancelled", "superseded"]
FINAL_STATUSES: Final = frozenset({"done", "error", "cancelled", "superseded"})

# How often an idle worker checks whether the interpreter is exiting (see _worker).
_IDLE_POLL_S = 0.5
_MAX_MESSAGE_CHARS = 500

# Ids are unique across runners so a GUI bridge can tell any two jobs apart.
_job_ids = itertools.count(1)
_job_ids_lock = threading.Lock()


def _next_job_id() -> int:
    with _job_ids_lock:
        return next(_job_ids)


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A failure attributed to its source (plugin or tool), safe to show and to send across threads."""

    kind: str  # exception class name
    message: str  # one line
    traceback: str
    source: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, source: str = "") -> ErrorRecord:
        text = str(exc).strip()
        first = text.splitlines()[0].strip() if text else ""
        if len(first) > _MAX_MESSAGE_CHARS:
            first = first[: _MAX_MESSAGE_CHARS - 1] + "…"
        return cls(
            kind=type(exc).__name__,
            message=first or type(exc).__name__,
            traceback="".join(traceback.format_exception(exc)),
            source=source,
        )


@dataclass(frozen=True, slots=True)
class JobTimings:
    queued_s: float  # submit -> start (or -> drop, for a job that never ran)
    run_s: float  # start -> end; 0 for a job that never ran


@dataclass(frozen=True, slots=True)
class JobResult:
    job_id: int
    key: str | None
    status: JobStatus
    value: Any = None
    error: ErrorRecord | None = None
    timings: JobTimings = JobTimings(0.0, 0.0)
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "done"


JobRecord = JobResult


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Passed to ``on_progress``; ``fraction`` is in [0, 1] or None when the amount is unknown."""

    job_id: int
    key: str | None
    fraction: float | None
    message: str


@dataclass(frozen=True, slots=True)
class JobPartial:
    """Passed to ``on_partial``: one streamed piece of output (e.g. generated text tokens)."""

    job_id: int
    key: str | None
    value: Any


ProgressCallback = Callable[[JobProgress], object]
PartialCallback = Callable[[JobPartial], object]
DoneCallback = Callable[[JobResult], object]


def _call_back(what: str, job: Job, callback: Callable[[Any], object] | None, arg: object) -> None:
    """Call a user callback; a raising one is logged, never allowed to kill the worker."""
    if callback is None:
        return
    try:
        callback(arg)
    except BaseException:
        logger.exception("%s callback of job %d (%s) raised; ignored", what, job.job_id, job.source or "?")


# --------------------------------------------------------------------------------------------- jobs


class JobContext:
    """What a job function receives: its cancel token and the ways to report back."""

    __slots__ = ("_job", "cancel", "job_id", "key", "source")

    def __init__(self, job: Job) -> None:
        self._job = job
        self.job_id = job.job_id
        self.key = job.key
        self.source = job.source
        self.cancel: CancelToken = job._token

    def progress(self, fraction: float | None = None, message: str = "") -> None:
        """Report progress; dropped once the job is cancelled, since nobody wants it any more."""
        if self.cancel.cancelled:
            return
        if fraction is not None:
            fraction = float(fraction)
            fraction = None if math.isnan(fraction) else min(1.0, max(0.0, fraction))
        update = JobProgress(self.job_id, self.key, fraction, str(message))
        _call_back("on_progress", self._job, self._job._on_progress, update)

    def partial(self, obj: Any) -> None:
        """Stream a piece of output; dropped once the job is cancelled (it would be stale)."""
        if self.cancel.cancelled:
            return
        _call_back("on_partial", self._job, self._job._on_partial, JobPartial(self.job_id, self.key, obj))


class Job:
    """Handle to a submitted job. Made by :meth:`JobRunner.submit`, not directly."""

    def __init__(
        self,
        runner: JobRunner,
        fn: Callable[[JobContext], Any],
        key: str | None,
        source: str,
        on_progress: ProgressCallback | None,
        on_done: DoneCallback | None,
        on_partial: PartialCallback | None,
    ) -> None:
        self.job_id = _next_job_id()
        self.key = key
        self.source = source
        self._runner = runner
        self._fn: Callable[[JobContext], Any] | None = fn
        self._on_progress = on_progress
        self._on_done = on_done
        self._on_partial = on_partial
        self._token = CancelToken()
        # All below change only under the runner's lock.
        self._state: Literal["queued", "running", "final"] = "queued"
        self._drop_reason: str | None = None  # first of "cancelled", "superseded", "shutdown"
        self._result: JobResult | None = None
        self._finished = threading.Event()
        self._submitted_at = time.perf_counter()
        self._started_at: float | None = None
        self.priority = 0
        self.timeout: float | None = None

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    @property
    def status(self) -> str:
        """One of "queued", "running", or the final status."""
        result = self._result
        return result.status if result is not None else self._state

    def cancel(self) -> bool:
        """Ask the job to stop. Returns False if it had already finished.

        A queued job ends at once as "cancelled"; a running job's token fires and it ends as
        "cancelled" when its function returns, whatever it returns.
        """
        return self._runner._cancel_job(self, "cancelled")

    def result(self, timeout: float | None = None) -> JobResult:
        """Block until the job is final; raises TimeoutError after ``timeout`` seconds."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"job {self.job_id} not finished after {timeout} s")
        assert self._result is not None
        return self._result

    def __repr__(self) -> str:
        return f"<Job {self.job_id} key={self.key!r} source={self.source!r} {self.status}>"


# --------------------------------------------------------------------------------------------- runner


class JobRunner:
    """Runs jobs one at a time, first in first out, on a single worker thread.

    The thread (named ``vfmstudio-inference``) starts with the first job. It is a daemon, so a hung
    plugin never keeps the process from exiting; it also shuts itself down once the main thread has
    finished. Use as a context manager or call :meth:`shutdown`.
    """

    def __init__(self, *, thread_name: str = THREAD_NAME) -> None:
        self._thread_name = thread_name
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Job] = deque()
        self._current: Job | None = None
        self._undelivered: deque[Job] = deque()  # dropped jobs whose on_done is still owed
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ public API

    def submit(
        self,
        fn: Callable[[JobContext], Any],
        *,
        key: str | None = None,
        source: str = "",
        on_progress: ProgressCallback | None = None,
        on_done: DoneCallback | None = None,
        on_partial: PartialCallback | None = None,
        priority: int = 0,
        timeout: float | None = None,
    ) -> Job:
        """Queue ``fn(ctx)``. A job with the same ``key`` still queued or running is superseded.

        ``priority``: higher runs first (ties first in, first out). ``timeout``: seconds of running
        after which the job is abandoned as an error (see the module notes).
        """
        if not callable(fn):
            raise TypeError(f"job function must be callable, got {type(fn).__name__}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        with self._cond:
            if self._closed:
                raise RuntimeError("JobRunner has been shut down; create a new one to run more jobs")
            job = Job(self, fn, key, source, on_progress, on_done, on_partial)
            job.priority, job.timeout = int(priority), timeout
            if key is not None:
                self._supersede_locked(key)
            self._enqueue_locked(job)
            self._start_locked()
            self._cond.notify_all()
        return job

    def run_sync(
        self,
        fn: Callable[[JobContext], Any],
        *,
        timeout: float | None = None,
        key: str | None = None,
        source: str = "",
        on_progress: ProgressCallback | None = None,
        on_done: DoneCallback | None = None,
        on_partial: PartialCallback | None = None,
    ) -> JobResult:
        """Submit and wait. On timeout or interrupt (Ctrl-C) the job is cancelled and the error raised."""
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "run_sync on the inference thread would wait on itself; call the function directly"
            )
        job = self.submit(
            fn, key=key, source=source, on_progress=on_progress, on_done=on_done, on_partial=on_partial
        )
        try:
            return job.result(timeout)
        except BaseException:
            job.cancel()
            raise

    def pending(self) -> int:
        """Jobs not yet final: queued plus the one running."""
        with self._cond:
            return len(self._queue) + (self._current is not None)

    def cancel_all(self) -> int:
        """Cancel every queued job and the running one; returns how many were cancelled."""
        with self._cond:
            return self._cancel_everything_locked("cancelled")

    def shutdown(self, wait: bool = True, timeout: float | None = 5.0) -> bool:
        """Cancel everything, stop the worker and (with ``wait``) join it.

        Returns True when the worker has stopped (or never started). A job that ignores its token
        keeps the thread alive past ``timeout``; that is logged and False returned.
        """
        with self._cond:
            if not self._closed:
                self._closed = True
                self._cancel_everything_locked("shutdown")
                self._cond.notify_all()
            thread = self._thread
        if thread is None:
            return True
        if wait and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning(
                    "inference thread still busy %s s after shutdown; a job ignores its token", timeout
                )
        return not thread.is_alive()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    # ------------------------------------------------------------------ locked helpers

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name=self._thread_name, daemon=True)
            self._thread.start()

    def _enqueue_locked(self, job: Job) -> None:
        # Insert before the first job of lower priority: FIFO within a priority.
        for index, queued in enumerate(self._queue):
            if queued.priority < job.priority:
                self._queue.insert(index, job)
                return
        self._queue.append(job)

    def _on_timeout(self, job: Job) -> None:
        """Timer thread: abandon a job still running past its timeout and start a fresh worker."""
        with self._cond:
            if job._state != "running" or self._current is not job:
                return
            job._drop_reason = "timeout"
            job._token.cancel("timeout")
            job._state = "final"
            what = job.source or f"job {job.job_id}"
            job._result = JobResult(
                job.job_id,
                job.key,
                "error",
                error=ErrorRecord(
                    "TimeoutError",
                    f"{what} did not finish within {job.timeout:g} s and was abandoned",
                    "",
                    job.source,
                ),
                timings=JobTimings(
                    (job._started_at or 0.0) - job._submitted_at,
                    time.perf_counter() - (job._started_at or 0.0),
                ),
                source=job.source,
            )
            # The result carries the error; its receiver reports it (the CLI in one line).
            logger.info("job %d (%s) timed out after %s s; abandoned", job.job_id, what, job.timeout)
            self._current = None
            self._thread = None  # the stuck thread notices it was replaced and exits when it returns
            job._finished.set()
            self._undelivered.append(job)  # on_done is delivered by the new worker
            self._start_locked()
            self._cond.notify_all()

    def _supersede_locked(self, key: str) -> None:
        for job in [j for j in self._queue if j.key == key]:
            self._drop_queued_locked(job, "superseded")
        if self._current is not None and self._current.key == key:
            self._cancel_running_locked(self._current, "superseded")

    def _cancel_everything_locked(self, reason: str) -> int:
        count = 0
        while self._queue:
            self._drop_queued_locked(self._queue[0], reason)
            count += 1
        if self._current is not None and self._current._drop_reason is None:
            self._cancel_running_locked(self._current, reason)
            count += 1
        return count

    def _cancel_job(self, job: Job, reason: str) -> bool:
        with self._cond:
            if job._state == "queued":
                self._drop_queued_locked(job, reason)
                return True
            if job._state == "running":
                self._cancel_running_locked(job, reason)
                return True
            return False

    def _drop_queued_locked(self, job: Job, reason: str) -> None:
        self._queue.remove(job)
        job._drop_reason = reason
        job._token.cancel(reason)
        job._state = "final"
        job._fn = None
        job._result = JobResult(
            job.job_id,
            job.key,
            _status_for_drop(reason),
            timings=JobTimings(time.perf_counter() - job._submitted_at, 0.0),
            source=job.source,
        )
        job._finished.set()
        # on_done is owed on the worker thread, which drains these before its next job.
        self._undelivered.append(job)
        self._cond.notify_all()

    @staticmethod
    def _cancel_running_locked(job: Job, reason: str) -> None:
        if job._drop_reason is None:
            job._drop_reason = reason
        job._token.cancel(reason)

    # ------------------------------------------------------------------ worker thread

    def _worker(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                if self._thread is not me:
                    return  # replaced after a timeout
                while True:
                    # A non-daemon worker would keep the interpreter from exiting if nobody called
                    # shutdown(); once the main thread has finished, shut down by ourselves.
                    if not self._closed and not threading.main_thread().is_alive():
                        self._closed = True
                        self._cancel_everything_locked("shutdown")
                    if self._queue or self._undelivered or self._closed:
                        break
                    self._cond.wait(_IDLE_POLL_S)
                owed = list(self._undelivered)
                self._undelivered.clear()
                job = None
                if self._queue:
                    job = self._queue.popleft()
                    job._state = "running"
                    job._started_at = time.perf_counter()
                    self._current = job
                elif not owed:
                    return  # closed, and nothing left to run or deliver
            for dropped in owed:
                self._deliver(dropped)
            if job is not None:
                self._run(job)

    def _run(self, job: Job) -> None:
        assert job._fn is not None and job._started_at is not None
        fn, job._fn = job._fn, None  # release captured images/models as soon as possible
        value: Any = None
        error: ErrorRecord | None = None
        cancelled = False
        timer = None
        if job.timeout is not None:
            timer = threading.Timer(job.timeout, self._on_timeout, args=(job,))
            timer.daemon = True
            timer.start()
        try:
            value = fn(JobContext(job))
        except Cancelled:
            cancelled = True
        except BaseException as exc:  # a job must never take the worker down with it
            error = ErrorRecord.from_exception(exc, job.source)
        ended = time.perf_counter()
        del fn
        if timer is not None:
            timer.cancel()
            timer.join()  # ends at once once cancelled; leaves no thread behind a finished job

        with self._cond:
            if job._state == "final":
                return  # abandoned after its timeout: already reported, whatever fn returned is dropped
            self._current = None
            reason = job._drop_reason
            if reason is not None:
                # The token fired: whatever fn produced is stale, never "done".
                status: JobStatus = _status_for_drop(reason)
                value, error = None, None
            elif cancelled:
                status = "cancelled"
                value = None
            elif error is not None:
                status = "error"
            else:
                status = "done"
            job._state = "final"
            job._result = JobResult(
                job.job_id,
                job.key,
                status,
                value=value,
                error=error,
                timings=JobTimings(job._started_at - job._submitted_at, ended - job._started_at),
                source=job.source,
            )
        if error is not None:
            logger.warning(
                "job %d (%s) failed: %s: %s", job.job_id, job.source or "?", error.kind, error.message
            )
        self._deliver(job)
        job._finished.set()

    @staticmethod
    def _deliver(job: Job) -> None:
        on_done = job._on_done
        # Drop callbacks so closures (and the images or models they hold) can be freed.
        job._on_done = job._on_progress = job._on_partial = None
        _call_back("on_done", job, on_done, job._result)


def _status_for_drop(reason: str) -> JobStatus:
    return "superseded" if reason == "superseded" else "cancelled"


def run_sync(
    fn: Callable[[JobContext], Any],
    *,
    runner: JobRunner | None = None,
    timeout: float | None = None,
    key: str | None = None,
    source: str = "",
    on_progress: ProgressCallback | None = None,
    on_done: DoneCallback | None = None,
    on_partial: PartialCallback | None = None,
) -> JobResult:
    """Run ``fn`` as a job and wait for its result, on ``runner`` or on a short-lived runner."""
    kwargs: dict[str, Any] = dict(
        timeout=timeout,
        key=key,
        source=source,
        on_progress=on_progress,
        on_done=on_done,
        on_partial=on_partial,
    )
    if runner is not None:
        return runner.run_sync(fn, **kwargs)
    with JobRunner() as temporary:
        return temporary.run_sync(fn, **kwargs)

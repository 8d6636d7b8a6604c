"""JobRunner: FIFO, callbacks, cancel, supersede, errors, shutdown, and a submit/cancel storm."""

from __future__ import annotations

import collections
import logging
import random
import threading
import time

import pytest

from vfmstudio.core import jobs as jobs_mod
from vfmstudio.core.cancel import Cancelled
from vfmstudio.core.jobs import FINAL_STATUSES, THREAD_NAME, JobContext, JobRunner, run_sync

WAIT = 5.0  # upper bound for any wait; passing tests take milliseconds


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    assert r.shutdown(wait=True, timeout=WAIT)


def gate_job(runner: JobRunner, **kw):
    """Occupy the worker until the returned event is set, so later jobs stay queued."""
    started, release = threading.Event(), threading.Event()

    def fn(ctx: JobContext):
        started.set()
        assert release.wait(WAIT)
        return "gate"

    job = runner.submit(fn, **kw)
    assert started.wait(WAIT)
    return job, release


def runner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


# --------------------------------------------------------------------------------------------- basics


def test_fifo_order_ids_and_worker_thread(runner):
    gate, release = gate_job(runner)
    order, threads = [], set()

    def make(i):
        def fn(ctx):
            order.append(i)
            threads.add(threading.current_thread().name)
            return i * 10

        return fn

    jobs = [runner.submit(make(i)) for i in range(5)]
    assert runner.pending() == 6
    release.set()
    results = [j.result(WAIT) for j in jobs]
    assert order == [0, 1, 2, 3, 4]
    assert [r.value for r in results] == [0, 10, 20, 30, 40]
    assert all(r.status == "done" and r.ok and r.error is None for r in results)
    ids = [gate.job_id] + [j.job_id for j in jobs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert threads == {THREAD_NAME}
    assert results[0].timings.queued_s > 0 and results[0].timings.run_s >= 0
    assert runner.pending() == 0 and jobs[0].done and jobs[0].status == "done"


def test_progress_partial_and_done_callbacks_run_on_worker(runner):
    progress, partials, done, where = [], [], [], set()

    def fn(ctx: JobContext):
        ctx.progress(0.25, "loading")
        ctx.progress(None, "thinking")
        ctx.progress(7.0)  # clamped
        for tok in ["a ", "cat"]:
            ctx.partial(tok)
        return "a cat"

    def on_done(result):
        where.add(threading.current_thread().name)
        done.append(result)

    job = runner.submit(
        fn,
        key="img1",
        source="clip.caption",
        on_progress=lambda p: (
            progress.append((p.job_id, p.key, p.fraction, p.message)),
            where.add(threading.current_thread().name),
        ),
        on_partial=lambda p: partials.append(p.value),
        on_done=on_done,
    )
    result = job.result(WAIT)
    assert done == [result]  # on_done has run before result() returns
    assert result.value == "a cat" and result.key == "img1" and result.source == "clip.caption"
    jid = job.job_id
    assert progress == [
        (jid, "img1", 0.25, "loading"),
        (jid, "img1", None, "thinking"),
        (jid, "img1", 1.0, ""),
    ]
    assert partials == ["a ", "cat"]
    assert where == {THREAD_NAME}


def test_run_sync_method_and_function():
    assert run_sync(lambda ctx: ctx.job_id > 0).value is True  # short-lived runner
    with JobRunner() as r:
        assert r.run_sync(lambda ctx: 41 + 1, source="t").value == 42
        res = run_sync(lambda ctx: 1 / 0, runner=r, source="div")
        assert res.status == "error" and res.error.kind == "ZeroDivisionError" and res.error.source == "div"


def test_run_sync_timeout_cancels_the_job():
    with JobRunner() as r:
        with pytest.raises(TimeoutError):
            r.run_sync(lambda ctx: ctx.cancel.wait(WAIT), timeout=0.05)
        assert r.run_sync(lambda ctx: "next", timeout=WAIT).value == "next"


# --------------------------------------------------------------------------------------------- cancel


def test_cancel_running_job_returns_quickly(runner):
    started = threading.Event()
    seen_progress = []

    def fn(ctx: JobContext):
        started.set()
        while True:
            ctx.cancel.raise_if_cancelled()
            ctx.progress(0.5)
            time.sleep(0.001)

    job = runner.submit(fn, on_progress=seen_progress.append)
    assert started.wait(WAIT)
    assert job.cancel() is True
    result = job.result(timeout=30)  # the job checks its token between steps: it ends, it is not waited out
    assert result.status == "cancelled" and result.value is None and result.error is None
    assert job.cancel() is False  # already final
    assert runner.run_sync(lambda ctx: "alive", timeout=WAIT).value == "alive"


def test_cancelled_running_job_that_ignores_the_token_is_not_done(runner):
    started, release = threading.Event(), threading.Event()

    def stubborn(ctx):
        started.set()
        assert release.wait(WAIT)
        return "stale"

    job = runner.submit(stubborn)
    assert started.wait(WAIT)
    job.cancel()
    release.set()
    result = job.result(WAIT)
    assert result.status == "cancelled" and result.value is None


def test_cancel_queued_job_never_runs(runner):
    gate, release = gate_job(runner)
    ran, done = [], threading.Event()
    results = []
    job = runner.submit(lambda ctx: ran.append(1), on_done=lambda r: (results.append(r), done.set()))
    assert job.status == "queued"
    assert job.cancel() is True
    res = job.result(timeout=0)  # final at once, even though the worker is still busy
    assert res.status == "cancelled" and res.timings.run_s == 0.0
    assert runner.pending() == 1
    release.set()
    assert done.wait(WAIT)
    assert results == [res] and ran == []
    assert gate.result(WAIT).status == "done"


def test_fn_raising_cancelled_is_cancelled(runner):
    def fn(ctx):
        raise Cancelled("stopped by a stopping criterion")

    assert runner.run_sync(fn, timeout=WAIT).status == "cancelled"


def test_cancel_all(runner):
    started = threading.Event()

    def loop(ctx):
        started.set()
        ctx.cancel.wait(WAIT)
        ctx.cancel.raise_if_cancelled()

    running = runner.submit(loop)
    assert started.wait(WAIT)
    queued = [runner.submit(lambda ctx: "never") for _ in range(3)]
    assert runner.cancel_all() == 4
    assert {j.result(WAIT).status for j in [running, *queued]} == {"cancelled"}
    assert runner.run_sync(lambda ctx: "ok", timeout=WAIT).value == "ok"


# --------------------------------------------------------------------------------------------- supersede


def test_supersede_queued_job(runner):
    gate, release = gate_job(runner, key="other")
    ran, done_for = [], collections.Counter()
    on_done = lambda r: done_for.update([r.job_id])  # noqa: E731
    old = runner.submit(lambda ctx: ran.append("old"), key="view", on_done=on_done)
    new = runner.submit(lambda ctx: ran.append("new") or "fresh", key="view", on_done=on_done)
    assert old.result(0).status == "superseded"
    release.set()
    assert new.result(WAIT).value == "fresh"
    assert gate.result(WAIT).status == "done"  # other keys are untouched
    assert ran == ["new"]
    assert done_for == {old.job_id: 1, new.job_id: 1}


def test_supersede_running_job_that_ignores_its_token(runner):
    started, release = threading.Event(), threading.Event()
    reasons = []

    def stale(ctx: JobContext):
        started.set()
        assert release.wait(WAIT)
        reasons.append(ctx.cancel.reason)
        ctx.partial("late token")  # dropped: the job is stale
        return "stale image result"

    partials = []
    old = runner.submit(stale, key="view", on_partial=partials.append)
    assert started.wait(WAIT)
    new = runner.submit(lambda ctx: "fresh", key="view")
    release.set()
    old_res, new_res = old.result(WAIT), new.result(WAIT)
    assert old_res.status == "superseded" and old_res.value is None
    assert reasons == ["superseded"] and partials == []
    assert new_res.status == "done" and new_res.value == "fresh"


def test_supersede_running_job_that_checks_its_token(runner):
    started = threading.Event()

    def loop(ctx):
        started.set()
        while not ctx.cancel.wait(0.005):
            pass
        ctx.cancel.raise_if_cancelled()

    old = runner.submit(loop, key="v")
    assert started.wait(WAIT)
    new = runner.submit(lambda ctx: 1, key="v")
    assert old.result(1.0).status == "superseded"
    assert new.result(WAIT).value == 1


# --------------------------------------------------------------------------------------------- errors


def test_raising_fn_gives_error_record_and_runner_keeps_working(runner, caplog):
    def broken_tool(ctx):
        raise ValueError("bad threshold 1.5\nsecond line of detail")

    with caplog.at_level(logging.WARNING, logger=jobs_mod.__name__):
        res = runner.submit(broken_tool, source="dinov2.segment").result(WAIT)
    assert res.status == "error" and res.value is None
    err = res.error
    assert err.kind == "ValueError" and err.source == "dinov2.segment"
    assert err.message == "bad threshold 1.5"
    assert "Traceback" in err.traceback and "broken_tool" in err.traceback
    assert "dinov2.segment" in caplog.text
    assert runner.run_sync(lambda ctx: "still alive", timeout=WAIT).value == "still alive"


def test_error_message_falls_back_to_class_name(runner):
    def fn(ctx):
        raise KeyError()

    assert runner.run_sync(fn, timeout=WAIT).error.message == "KeyError"


def test_raising_callbacks_do_not_kill_the_worker(runner, caplog):
    def boom(*_):
        raise RuntimeError("callback bug")

    def fn(ctx):
        ctx.progress(0.5)
        ctx.partial("x")
        return "value"

    with caplog.at_level(logging.ERROR, logger=jobs_mod.__name__):
        job = runner.submit(fn, on_progress=boom, on_partial=boom, on_done=boom)
        assert job.result(WAIT).status == "done"
        gate, release = gate_job(runner)
        dropped = runner.submit(lambda ctx: None, on_done=boom)
        dropped.cancel()
        release.set()
        assert runner.run_sync(lambda ctx: "ok", timeout=WAIT).value == "ok"
    assert caplog.text.count("callback bug") >= 4
    assert runner_threads()[0].is_alive()


# --------------------------------------------------------------------------------------------- shutdown


def test_shutdown_cancels_everything_and_leaves_no_threads():
    before = set(threading.enumerate())
    r = JobRunner()
    assert runner_threads() == []  # lazy: no thread until the first job
    started = threading.Event()

    def loop(ctx):
        started.set()
        while True:
            ctx.cancel.raise_if_cancelled()
            ctx.cancel.wait(0.01)

    done = collections.Counter()
    running = r.submit(loop, on_done=lambda res: done.update([res.job_id]))
    assert started.wait(WAIT)
    queued = r.submit(lambda ctx: "never", on_done=lambda res: done.update([res.job_id]))
    assert r.shutdown(wait=True, timeout=WAIT) is True
    assert set(threading.enumerate()) == before
    assert running.result(0).status == "cancelled" and queued.result(0).status == "cancelled"
    assert done == {running.job_id: 1, queued.job_id: 1}  # owed on_done delivered before exit
    with pytest.raises(RuntimeError, match="shut down"):
        r.submit(lambda ctx: None)
    assert r.shutdown() is True  # idempotent


def test_context_manager_and_unused_runner():
    before = set(threading.enumerate())
    with JobRunner() as r:
        assert r.run_sync(lambda ctx: 3, timeout=WAIT).value == 3
    with JobRunner():
        pass
    assert set(threading.enumerate()) == before
    assert r.closed


# --------------------------------------------------------------------------------------------- stress


def test_rapid_submit_cancel_supersede_cycles():
    rng = random.Random(1234)
    lock = threading.Lock()
    done_counts: collections.Counter = collections.Counter()
    delivered: dict[int, str] = {}

    def on_done(res):
        with lock:
            done_counts[res.job_id] += 1
            delivered[res.job_id] = res.status

    worker_rng = random.Random(99)  # the worker's own generator: Random is not shared across threads

    def work(ctx: JobContext):
        for _ in range(worker_rng.randint(0, 3)):
            ctx.cancel.raise_if_cancelled()
            ctx.progress(0.5)
            time.sleep(0.0002)
        if worker_rng.random() < 0.1:
            raise RuntimeError("flaky")
        return ctx.job_id

    before = set(threading.enumerate())
    runner = JobRunner()
    submitted = []
    for _ in range(200):
        key = rng.choice([None, "view-a", "view-b", "view-c"])
        job = runner.submit(work, key=key, on_done=on_done, on_progress=lambda p: None)
        submitted.append(job)
        action = rng.random()
        if action < 0.25:
            job.cancel()
        elif action < 0.35:
            rng.choice(submitted).cancel()
        elif action < 0.4:
            runner.cancel_all()
    # The last job per key and any unkeyed job can still finish; wait for all of them.
    results = [j.result(WAIT) for j in submitted]
    assert runner.shutdown(wait=True, timeout=WAIT)
    assert set(threading.enumerate()) == before

    assert all(r.status in FINAL_STATUSES for r in results)
    assert len(done_counts) == 200 and set(done_counts.values()) == {1}
    assert all(delivered[j.job_id] == r.status for j, r in zip(submitted, results))
    for r in results:
        if r.status == "done":
            assert r.value == r.job_id
    statuses = collections.Counter(r.status for r in results)
    assert statuses["superseded"] > 0 and statuses["cancelled"] > 0 and statuses["done"] > 0


# ----------------------------------------------------------------------------- priority and timeout


def test_higher_priority_jobs_jump_ahead_of_background_work():
    order = []
    gate = threading.Event()
    with JobRunner() as r:
        r.submit(lambda ctx: gate.wait(5))
        r.submit(lambda ctx: order.append("prefetch-1"), priority=-10)
        r.submit(lambda ctx: order.append("prefetch-2"), priority=-10)
        r.submit(lambda ctx: order.append("user-1"))
        last = r.submit(lambda ctx: order.append("user-2"))
        gate.set()
        last.result(5)
        r.shutdown()
    assert order == ["user-1", "user-2", "prefetch-1", "prefetch-2"]


def test_a_hung_job_is_abandoned_after_its_timeout_and_the_queue_goes_on():
    release = threading.Event()
    late = []
    done = []

    def hang(ctx):
        release.wait(10)  # ignores its token, like a plugin stuck in native code
        late.append("returned")
        return "stale"

    with JobRunner() as r:
        stuck = r.submit(hang, source="fake.hang", timeout=0.2, on_done=done.append)
        after = r.submit(lambda ctx: threading.current_thread().name)
        res = stuck.result(5)
        assert res.status == "error" and res.error.kind == "TimeoutError"
        assert "fake.hang did not finish within 0.2 s" in res.error.message
        assert after.result(5).status == "done"
        assert stuck.status == "error"
        release.set()
        deadline = time.monotonic() + 5
        while not late and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.shutdown(timeout=5)
    assert late == ["returned"]
    assert [d.status for d in done] == ["error"]  # the late return never reports "done"
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME and t.is_alive()]


def test_timeout_must_be_positive():
    with JobRunner() as r, pytest.raises(ValueError, match="timeout"):
        r.submit(lambda ctx: None, timeout=0)

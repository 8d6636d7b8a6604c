"""One idiom for background jobs: each job's outcome goes to the callbacks given at submit time."""

from __future__ import annotations

import threading

from vfmstudio.qt.runner import QtJobRunner


def test_each_job_reaches_only_its_own_callbacks_on_the_gui_thread(qtbot):
    bridge = QtJobRunner()
    gui = threading.get_ident()
    got: dict[str, list] = {"a": [], "b": []}

    def job(name):
        def fn(ctx):
            ctx.partial(f"{name}-piece")
            ctx.progress(1.0, name)
            return name

        return fn

    for name in ("a", "b"):
        bridge.submit(
            job(name),
            source="test",
            on_done=lambda r, n=name: got[n].append(("done", r.value, threading.get_ident())),
            on_partial=lambda u, n=name: got[n].append(("partial", u.value, threading.get_ident())),
            on_progress=lambda u, n=name: got[n].append(("progress", u.message, threading.get_ident())),
        )
    qtbot.waitUntil(lambda: bridge.pending() == 0, timeout=10000)
    for name in ("a", "b"):
        assert [(kind, value) for kind, value, _ in got[name]] == [
            ("partial", f"{name}-piece"),
            ("progress", name),
            ("done", name),
        ]
        assert all(tid == gui for *_, tid in got[name])
    assert bridge.shutdown()


def test_a_raising_callback_does_not_stop_the_delivery(qtbot, caplog):
    bridge = QtJobRunner()
    finished = []
    bridge.finished.connect(finished.append)

    def broken(_result):
        raise RuntimeError("receiver gone")

    job = bridge.submit(lambda ctx: 1, on_done=broken)
    qtbot.waitUntil(lambda: bool(finished), timeout=10000)
    assert finished[0].job_id == job.job_id and bridge.pending() == 0
    assert any(
        "receiver gone" in (r.exc_text or "") or "done callback" in r.getMessage() for r in caplog.records
    )
    assert bridge.shutdown()

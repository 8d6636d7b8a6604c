"""The Qt bridge over JobRunner: every signal arrives on the GUI thread; progress is throttled."""

from __future__ import annotations

import threading
import time

from vfmstudio.qt.runner import PROGRESS_INTERVAL_S, QtJobRunner


def test_signals_arrive_on_the_gui_thread_and_progress_floods_are_thinned(qtbot):
    bridge = QtJobRunner()
    seen: dict[str, list] = {"progress": [], "partial": [], "done": []}
    gui = threading.get_ident()
    bridge.progressed.connect(lambda u: seen["progress"].append((threading.get_ident(), u.fraction)))
    bridge.partial.connect(lambda u: seen["partial"].append((threading.get_ident(), u.value)))
    bridge.finished.connect(lambda r: seen["done"].append((threading.get_ident(), r.status, r.value)))

    def job(ctx):
        t0 = time.perf_counter()
        for i in range(5000):  # a tool reporting in a tight loop
            ctx.progress(i / 5000, "busy")
        ctx.partial("a")
        ctx.partial("b")
        ctx.progress(1.0, "done")
        return time.perf_counter() - t0

    bridge.submit(job, key="k", source="test")
    qtbot.waitUntil(lambda: bool(seen["done"]), timeout=10000)
    assert all(tid == gui for tid, *_ in seen["progress"] + seen["partial"] + seen["done"])
    assert [v for _, v in seen["partial"]] == ["a", "b"]  # partials are never dropped
    elapsed = seen["done"][0][2]
    assert len(seen["progress"]) <= elapsed / PROGRESS_INTERVAL_S + 2  # not one event per report
    assert seen["progress"][-1][1] == 1.0  # the final report always gets through
    assert seen["done"][0][1] == "done"
    assert bridge.shutdown()

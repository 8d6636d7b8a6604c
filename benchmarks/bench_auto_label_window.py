"""Run › Run on All Images… against ``vfmstudio batch``: the GUI stall during a folder run, and the
window run's throughput next to the command line's on the same tool and images, in one process.

The tool is a cheap numpy "detector" (one box per image quadrant, labelled by brightness), in a
plugin made for this script and announced by an entry point, so the command line finds it the way
it finds any plugin; it runs in-process on both sides (``VFMSTUDIO_PLUGIN_ISOLATION=never``) so
the figures are the engine's and the window's, not a worker process's. Images are small generated
PNGs (``--images``, default 500, of ``--size`` px).

(a) Stall: a 5 ms QTimer heartbeat on the GUI thread of an offscreen window; the longest gap
    between two beats is the longest the window was frozen. Measured from the menu action (the
    survey, adding the images to the project, the confirmation answered at once) to
    ``run_finished``, and over the run alone. Target: < 50 ms. A run of its own: 200 Python
    callbacks a second on the GUI thread take the GIL from the run (~5% at this tool's speed).
(b) Throughput: the window run (menu action to ``run_finished``, the panel and the 100 ms drain
    running, no heartbeat) against ``vfmstudio.cli.main(["batch", ...])`` on a copy of the same
    images, and into a project's store without a window (``batch --into``, or the engine it runs),
    in rotating order ``--rounds`` times. Reported: the engine's images/s (over the images it
    processed) and the wall time of the run; the ratio window / batch (target: >= 0.9), and
    window / into the store (the window's own cost). Every side runs with the default per-image
    time limit, as the command line does (it costs a thread per image).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_auto_label_window.py [--images 500] [--rounds 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PLUGIN = """
import numpy as np
from vfmstudio.plugin_api import Detections, Param, ParamType, ToolSpec, hookimpl

QUAD = ToolSpec(
    id="benchquad.detect",
    title="Quadrant detector",
    run="vfmstudio_benchquad:detect",
    params=(Param("round", ParamType.INT, 0, help="a different value is a different run"),),
    returns=("detections",),
)


@hookimpl
def vfm_register_tools():
    return [QUAD]


def detect(ctx, images, params):
    image = images[0]
    grey = image.pixels.astype(np.float32).mean(axis=2)
    h, w = grey.shape
    boxes, labels, scores = [], [], []
    for y0, y1 in ((0, h // 2), (h // 2, h)):
        for x0, x1 in ((0, w // 2), (w // 2, w)):
            mean = float(grey[y0:y1, x0:x1].mean())
            boxes.append([x0, y0, x1, y1])
            labels.append("bright" if mean >= 128 else "dark")
            scores.append(abs(mean - 127.5) / 127.5)
    return [Detections(np.array(boxes, np.float32), tuple(labels), np.array(scores), image_id=image.id)]
"""


def install_plugin(site: Path) -> None:
    (site / "vfmstudio_benchquad.py").write_text(PLUGIN)
    info = site / "vfmstudio_benchquad-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vfmstudio-benchquad\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[vfmstudio]\nbenchquad = vfmstudio_benchquad\n")
    sys.path.insert(0, str(site))


def make_images(folder: Path, n: int, size: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size * 3 // 4, size, 3), dtype=np.uint8)).save(
            folder / f"im{i:05d}.png"
        )


def copy_images(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def runqueue_wait_s() -> float:
    """Seconds this thread has been runnable but waiting for a CPU (Linux schedstat; 0 elsewhere):
    the part of a stall that other busy processes on the machine caused."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class Heartbeat:
    """The longest gap between beats of a 5 ms timer on the GUI thread since :meth:`reset`, and
    how much of that gap the thread spent waiting for a CPU."""

    def __init__(self):
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._beat)
        self.reset()
        self.timer.start()

    def reset(self) -> None:
        self.last = time.perf_counter()
        self.last_wait = runqueue_wait_s()
        self.max_gap = 0.0
        self.max_gap_wait = 0.0
        self.beats = 0

    def _beat(self) -> None:
        now, wait = time.perf_counter(), runqueue_wait_s()
        if now - self.last > self.max_gap:
            self.max_gap, self.max_gap_wait = now - self.last, wait - self.last_wait
        self.last, self.last_wait = now, wait
        self.beats += 1


def build_window(settings_dir: Path):
    from PySide6.QtCore import QCoreApplication, QSettings

    from vfmstudio._plugin_host import get_host
    from vfmstudio.qt.main_window import MainWindow

    settings = QSettings(str(settings_dir / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(host=get_host(), settings=settings)
    w.show()
    deadline = time.monotonic() + 60
    while w.tools.tree.topLevelItemCount() == 0 and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.005)
    return w


def wait_for(window, heartbeat, start) -> tuple[dict, tuple[float, float], tuple, tuple]:
    """Run ``start()`` and spin the event loop until ``run_finished``: (summary, (seconds of the
    survey before the run, seconds of the run), (longest stall, its CPU wait) overall and once the
    run job started)."""
    from PySide6.QtCore import QEventLoop

    loop = QEventLoop()
    got: dict = {}
    stall_before_run = [(0.0, 0.0)]

    def finished(summary):
        got.update(summary)
        loop.quit()

    t_run = [0.0]

    def started_run():  # the confirmed run starts: the stall from here on is the run's alone
        t_run[0] = time.perf_counter()
        stall_before_run[0] = (heartbeat.max_gap, heartbeat.max_gap_wait)
        heartbeat.max_gap = heartbeat.max_gap_wait = 0.0

    window.auto_label.run_finished.connect(finished)
    original_start = window.auto_label.start

    def start_and_mark(*a, **k):
        started_run()
        return original_start(*a, **k)

    window.auto_label.start = start_and_mark
    heartbeat.reset()
    t0 = time.perf_counter()
    start()
    loop.exec()
    t_end = time.perf_counter()
    wall = (t_run[0] - t0, t_end - t_run[0])
    window.auto_label.start = original_start
    window.auto_label.run_finished.disconnect(finished)
    during = (heartbeat.max_gap, heartbeat.max_gap_wait)
    return got, wall, max(stall_before_run[0], during), during


def window_round(window, heartbeat, folder: Path, round_: int, *, beat: bool):
    from PySide6.QtCore import QCoreApplication

    window.open_paths([folder])
    # The folder's thumbnails are made when it opens, long before a user picks a tool and runs it;
    # the run is timed once they are done, not while they compete for the same two cores.
    while window.browser.thumbnails.jobs.pending():
        QCoreApplication.processEvents()
        time.sleep(0.005)
    assert window.tools.select_tool("benchquad.detect")
    window.tools.form.set_value("round", round_)
    window.auto_label.confirm = lambda text: True
    os.sync()
    if beat:
        heartbeat.timer.start()
    try:
        return wait_for(window, heartbeat, window.auto_label.run_on_all)
    finally:
        heartbeat.timer.stop()


def cli_round(folder: Path, out: Path, round_: int) -> tuple[dict, float]:
    from vfmstudio.cli import main

    argv = ["batch", str(folder), "--tool", "benchquad.detect", "--out", str(out), "--json"]
    argv += ["--param", f"round={round_}"]
    buf = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    wall = time.perf_counter() - t0
    assert rc == 0, rc
    return json.loads(buf.getvalue().strip().splitlines()[-1]), wall


INTO = ""  # how the into-the-store side runs (set in main)


def has_batch_into() -> bool:
    import importlib.util

    return importlib.util.find_spec("vfmstudio.commands.batch_into") is not None


def into_round(folder: Path, round_: int) -> tuple[float, float]:
    """Into a project's pending store without a window: ``vfmstudio batch --into`` where this
    vfmstudio has it, else the engine it runs (``plan_into_project`` + ``run_local``). Separates the
    window's own cost from the cost of writing into the store."""
    if has_batch_into():
        from vfmstudio.cli import main

        argv = ["batch", str(folder), "--tool", "benchquad.detect", "--into", str(folder / "vfmstudio.json")]
        argv += ["--json", "--param", f"round={round_}"]
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            rc = main(argv)
        wall = time.perf_counter() - t0
        assert rc == 0, rc
        return json.loads(buf.getvalue().strip().splitlines()[-1])["images_per_s"], wall

    from vfmstudio._plugin_host import get_host
    from vfmstudio.core.project import Project
    from vfmstudio.engines.into_project import plan_into_project, sink_for
    from vfmstudio.engines.local import run_local
    from vfmstudio.engines.worker import RunSpec

    project = Project(folder / "vfmstudio.json")
    for p in sorted(folder.glob("*.png")):
        project.add_image(p)
    from vfmstudio.execution import tool_timeout_s

    tool = get_host().tool("benchquad.detect")
    params = tool.resolve_params({"round": round_})
    spec = RunSpec(tool=tool, params=params, model=None, out="", timeout=tool_timeout_s(None))
    t0 = time.perf_counter()
    plan = plan_into_project(spec, project)
    progress = run_local(plan, sink=sink_for(plan))
    return progress.rate, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--size", type=int, default=96, help="image width in px (height 3/4 of it)")
    ap.add_argument("--rounds", type=int, default=4, help="each side goes first once per 4 rounds")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["VFMSTUDIO_PLUGIN_ISOLATION"] = "never"
    os.environ["VFMSTUDIO_PREFETCH"] = "0"

    from PySide6.QtWidgets import QApplication

    from vfmstudio._plugin_host import reset_host

    print(f"# {platform.platform()} · Python {platform.python_version()} · {os.cpu_count()} CPUs")
    with open("/proc/loadavg") as f:
        print(f"# loadavg at start: {f.read().strip()}")
    global INTO
    INTO = "batch --into" if has_batch_into() else "engine into the store without a window"
    print(f"# {args.images} images of {args.size}x{args.size * 3 // 4} px, tool benchquad.detect (numpy)")
    with tempfile.TemporaryDirectory(prefix="vfm-bench-autolabel-") as tmp:
        tmp_path = Path(tmp)
        site = tmp_path / "site"
        site.mkdir()
        install_plugin(site)
        reset_host()
        source = tmp_path / "source"
        make_images(source, args.images, args.size)
        app = QApplication.instance() or QApplication([])
        window = build_window(tmp_path)
        heartbeat = Heartbeat()
        heartbeat.timer.stop()  # beats only during the stall run
        rows = []
        for r in range(args.rounds):
            sides = ("cli", "window", "into", "stall")
            order = sides[r % 4 :] + sides[: r % 4]
            row = {}
            # Every prediction file is fsync-ed, so a side run right after copying its images would
            # also pay for writing the copies out: copy first, flush, then time.
            folders = {side: copy_images(source, tmp_path / f"{side}{r}") for side in sides}
            for side in order:
                os.sync()
                if side == "into":
                    row["into"] = into_round(folders["into"], r + 1)
                elif side == "cli":
                    summary, wall = cli_round(folders["cli"], tmp_path / f"out{r}", r + 1)
                    row["cli"] = (summary["images_per_s"], wall)
                elif side == "window":
                    summary, (survey_s, wall), _, _ = window_round(
                        window, heartbeat, folders["window"], r + 1, beat=False
                    )
                    assert summary["status"] == "done" and summary["done"] == args.images, summary
                    row["window"] = (summary["images_per_s"], wall)
                    row["survey"] = survey_s
                else:
                    summary, _, stall_all, stall_run = window_round(
                        window, heartbeat, folders["stall"], 1000 + r, beat=True
                    )
                    assert summary["status"] == "done" and summary["done"] == args.images, summary
                    row["stall"] = (stall_all, stall_run, heartbeat.beats)
            rows.append(row)
            (w_rate, w_wall), (c_rate, c_wall), (i_rate, _) = row["window"], row["cli"], row["into"]
            (s_all, w_all), (s_run, w_run), beats = row["stall"]
            print(
                f"round {r + 1}: window {w_rate:7.1f} img/s ({w_wall:5.2f} s wall, "
                f"{row['survey']:.2f} s survey before) · batch {c_rate:7.1f} img/s "
                f"({c_wall:5.2f} s wall) · ratio {w_rate / c_rate:.3f} (wall {c_wall / w_wall:.3f}) · "
                f"{INTO} {i_rate:7.1f} img/s (window/that {w_rate / i_rate:.3f}) · "
                f"GUI stall max {s_all * 1000:.1f} ms ({w_all * 1000:.1f} waiting for a CPU), during the run "
                f"{s_run * 1000:.1f} ms ({w_run * 1000:.1f} waiting), {beats} beats"
            )
        ratio = statistics.median(r["window"][0] / r["cli"][0] for r in rows)
        wall_ratio = statistics.median(r["cli"][1] / r["window"][1] for r in rows)
        into_ratio = statistics.median(r["window"][0] / r["into"][0] for r in rows)
        worst = max(r["stall"][0] for r in rows)
        worst_run = max(r["stall"][1] for r in rows)
        own = max(gap - wait for r in rows for gap, wait in r["stall"][:2])
        print(
            f"median throughput ratio window/batch: {ratio:.3f} (engine img/s), {wall_ratio:.3f} (wall) "
            f"· target >= 0.90; window/{INTO}: {into_ratio:.3f}"
        )
        print(
            f"worst GUI stall: {worst[0] * 1000:.1f} ms overall, {worst_run[0] * 1000:.1f} ms during the run; "
            f"minus the time spent waiting for a CPU, at most {own * 1000:.1f} ms · target < 50 ms"
        )
        with open("/proc/loadavg") as f:
            print(f"# loadavg at end: {f.read().strip()}")
        window.close()
        app.processEvents()
        reset_host()
    return 0


if __name__ == "__main__":
    sys.exit(main())

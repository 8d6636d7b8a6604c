"""Drive the studio window and write PNGs of its main views into docs/images/.

    QT_QPA_PLATFORM=offscreen python scripts/screenshots.py        # or under xvfb-run
    python scripts/screenshots.py --model-dir DIR                  # models from DIR/<name>

Without real weights (no hub here) it builds the tiny random checkpoints of vfmstudio.testing,
so the pictures show the window and every panel, but the maps themselves are noise. With
``--dinov2 facebook/dinov2-small`` (and so on) cached locally, the same script shows real output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--samples", type=Path, default=ROOT / "resources" / "samples")
    ap.add_argument("--dinov2", help="DINOv2 model ref (default: a tiny random checkpoint)")
    ap.add_argument("--clip", help="CLIP model ref (default: a tiny random checkpoint)")
    ap.add_argument("--paligemma", help="PaliGemma model ref (default: a tiny random checkpoint)")
    ap.add_argument("--size", default="1400x900")
    args = ap.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.qt.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="vfm-shots-"))
    refs = {name: getattr(args, name) for name in ("dinov2", "clip", "paligemma")}
    for name, ref in refs.items():
        if ref is None:
            from vfmstudio.testing.fixtures import tiny_model_dir

            refs[name] = str(tiny_model_dir(name, tmp / "models"))

    args.out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.size.split("x"))
    host = PluginHost(entry_points=False).load()
    win = MainWindow(host=host, settings=QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    win.resize(w, h)
    win.show()

    def pump(seconds: float = 0.3) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait_jobs(timeout: float = 300) -> None:
        end = time.perf_counter() + timeout
        while (win._jobs or win.runner.runner.pending()) and time.perf_counter() < end:
            pump(0.05)
        pump(0.3)

    def shot(name: str) -> None:
        path = args.out / f"{name}.png"
        win.grab().save(str(path))
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    def select(image_name: str) -> None:
        names = [p.name for p in win.browser.paths()]
        win.browser.list.setCurrentRow(names.index(image_name))
        end = time.perf_counter() + 20
        while (win.current is None or win.current_path.name != image_name) and time.perf_counter() < end:
            pump(0.05)

    def run(tool_id: str, model: str, **params) -> None:
        win.tools.select_tool(tool_id)
        win.tools.set_model_ref(model)
        for k, v in params.items():
            win.tools.form.set_value(k, v)
        win.run_current_tool()
        wait_jobs()

    pump(0.5)
    win.open_paths([args.samples])
    names = [p.name for p in win.browser.paths()]
    first = "chelsea.png" if "chelsea.png" in names else names[0]
    select(first)
    pump(1.5)  # thumbnails
    shot("window")

    run("dinov2.pca", refs["dinov2"], resolution=224)
    win.dock_layers.raise_()
    shot("dinov2-pca")

    run("dinov2.norms", refs["dinov2"], resolution=224)
    shot("dinov2-norms")

    pair = [n for n in ("astronaut.jpg", "grace_hopper.jpg") if n in names] or names[:2]
    select(pair[0])
    for row, name in enumerate(names):
        win.browser.list.item(row).setSelected(name in pair)
    run("dinov2.matches", refs["dinov2"], resolution=224, k=20)
    shot("pair-matches")
    win.central_tabs.setCurrentWidget(win.canvas)

    select("coffee.jpg" if "coffee.jpg" in names else names[-1])
    run("clip.classify", refs["clip"], labels="a cup of coffee, a cat, a rocket, a person")
    win.dock_results.raise_()
    shot("clip-classify")

    run("paligemma.caption", refs["paligemma"])
    win.results.setCurrentWidget(win.results.text)
    shot("paligemma-caption")

    win.dock_messages.raise_()
    shot("messages")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Screenshots of auto-labelling a folder (docs/auto-label.md): the run paused halfway in the
status bar, then review mode on a predicted image.

    xvfb-run -s "-screen 0 1280x720x24" python scripts/screenshot_auto_label.py

No model is needed: a demonstration plugin finds the coloured fruit of generated table pictures
by their colour (boxes, a score from how much of the box the colour fills) and takes ``delay``
seconds per image, so the run can be photographed while it is under way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from _qt_pump import pump as pump_events

ROOT = Path(__file__).resolve().parents[1]
FRUIT = {"apple": (200, 30, 40), "pear": (120, 200, 60), "plum": (90, 40, 140), "lemon": (235, 215, 50)}


def demo_plugin() -> types.ModuleType:
    from vfmstudio.plugin_api import Detections, Param, ParamType, ToolSpec, hookimpl

    module = types.ModuleType("shots")

    @hookimpl
    def vfm_register_tools():
        return [
            ToolSpec(
                id="shots.detect",
                title="Fruit detector",
                run="shots:detect",
                returns=("detections",),
                params=(Param("delay", ParamType.FLOAT, 0.0, minimum=0.0, maximum=10.0),),
            )
        ]

    def detect(ctx, images, params):
        image = images[0]
        time.sleep(params["delay"])
        px = image.pixels.astype(np.int32)
        boxes, labels, scores = [], [], []
        for name, rgb in FRUIT.items():
            hit = (np.abs(px - np.array(rgb)).sum(axis=2) < 60).astype(np.uint8)
            ys, xs = np.nonzero(hit)
            if len(xs) < 50:
                continue
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            boxes.append([x0, y0, x1, y1])
            labels.append(name)
            scores.append(round(float(hit[y0:y1, x0:x1].mean()) * 1.2 - 0.3 * (name == "lemon"), 2))
        return [
            Detections(
                np.array(boxes, dtype=np.float32).reshape(-1, 4),
                tuple(labels),
                np.array(scores),
                image_id=image.id,
            )
        ]

    module.vfm_register_tools = vfm_register_tools
    module.detect = detect
    return module


def table_pictures(folder: Path, n: int) -> None:
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        im = Image.new("RGB", (640, 480), (210, 190, 170))
        d = ImageDraw.Draw(im)
        d.rectangle([0, 360, 640, 480], fill=(130, 100, 70))
        names = rng.choice(list(FRUIT), size=int(rng.integers(2, 5)), replace=False)
        for j, name in enumerate(names):
            cx, cy, r = (
                90 + j * 150 + int(rng.integers(-20, 20)),
                300 - int(rng.integers(0, 60)),
                int(rng.integers(45, 70)),
            )
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=FRUIT[name])
        im.filter(ImageFilter.GaussianBlur(1.2)).save(folder / f"table{i:02d}.png")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    sys.modules["shots"] = demo_plugin()
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.qt.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="vfm-autolabel-"))
    folder = tmp / "table"
    table_pictures(folder, 12)
    host = PluginHost(builtins=("shots",), entry_points=False).load()
    win = MainWindow(host=host, settings=QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    w, h = (int(v) for v in args.size.split("x"))
    win.resize(w, h)
    win.show()

    def pump(seconds: float = 0.3) -> None:
        pump_events(app, seconds)

    def until(cond, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            pump(0.05)
        if not cond():
            raise SystemExit(f"timed out at line {sys._getframe(1).f_lineno}")

    def shot(name: str) -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        if not win.grab().save(str(args.out / name)):
            raise SystemExit(f"cannot write {args.out / name}")
        print("wrote", args.out / name)

    until(lambda: win.tools.tree.topLevelItemCount() > 0)
    win.open_paths([folder])
    until(lambda: win.current is not None)
    assert win.tools.select_tool("shots.detect")
    win.tools.form.set_value("delay", 0.4)
    win.auto_label.confirm = lambda text: True
    assert win.auto_label.run_on_all()
    until(lambda: sum(win.browser.review_state(p) == "predicted" for p in win.browser.paths()) >= 5)
    win.auto_label.pause()
    until(lambda: not win.auto_label.busy)
    win.browser.select_path(folder / "table03.png")
    pump(1.0)
    shot("auto-label-paused.png")
    assert win.auto_label.resume()
    until(lambda: not win.auto_label.busy)
    win.review.set_mode(True)
    win.browser.select_path(folder / "table05.png")
    pump(1.0)
    shot("auto-label-review.png")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

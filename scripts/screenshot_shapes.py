"""Write docs/images/labelling-shapes.png: a rotated box, an ellipse and a polyline on a sample
image, selected so their edit handles show, and keypoints being drawn along the class skeleton.

    xvfb-run -s "-screen 0 1400x900x24" python scripts/screenshot_shapes.py     # or offscreen
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _qt_pump import pump as pump_events

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "labelling-shapes.png")
    ap.add_argument("--samples", type=Path, default=ROOT / "resources" / "samples")
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()

    from PIL import Image
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.core.annotations import Ellipse, Polyline, RotatedBox, Skeleton
    from vfmstudio.qt.main_window import MainWindow

    def pump(seconds: float = 0.3) -> None:
        pump_events(app, seconds)

    tmp = Path(tempfile.mkdtemp(prefix="vfm-shapes-"))
    folder = tmp / "samples"  # the project autosaves next to the images: a copy, resources/ stays clean
    shutil.copytree(args.samples, folder)
    host = PluginHost(entry_points=False).load()
    win = MainWindow(host=host, settings=QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    w, h = (int(v) for v in args.size.split("x"))
    win.resize(w, h)
    win.show()
    pump(0.5)
    win.open_paths([folder])
    names = [p.name for p in win.browser.paths()]
    win.browser.list.setCurrentRow(names.index("astronaut.jpg"))
    lab = win.labelling
    lab.session.autosave.setInterval(600_000)  # no "saved" message over the status bar's hint
    end = time.perf_counter() + 20
    while lab.controller.image_path != folder / "astronaut.jpg" and time.perf_counter() < end:
        pump(0.05)
    for name, colour in (
        ("shuttle", "#4363d8"),
        ("ring", "#ffe119"),
        ("strap", "#3cb44b"),
        ("person", "#f032e6"),
    ):
        lab.panel.add_class(name, colour)
    lab.session.labels.skeletons["person"] = Skeleton(
        ("nose", "neck", "right shoulder", "left shoulder", "left hand", "right hand"),
        ((0, 1), (1, 2), (1, 3), (3, 4), (2, 5)),
    )
    ctl = lab.controller
    ids = []
    for cls, shape in (
        ("shuttle", RotatedBox(408, 150, 100, 250, 6)),
        ("ring", Ellipse(210, 222, 97, 58, 12)),
        ("strap", Polyline(((242, 298), (247, 340), (243, 400), (251, 470)))),
    ):
        lab.panel.select_class(cls)
        ids.append(ctl.add_shape(shape))
    win.layer_store.clear_image(win.current.id)
    lab.set_mode("select")
    ctl.select(ids)  # every shape's handles show
    # Keypoints half drawn: five of six clicked (the hand behind the helmet with Shift).
    lab.panel.select_class("person")
    lab.set_mode("keypoints")
    vp = win.canvas.viewport()
    for x, y, mod in (
        (222, 135, Qt.KeyboardModifier.NoModifier),
        (222, 200, Qt.KeyboardModifier.NoModifier),
        (95, 290, Qt.KeyboardModifier.NoModifier),
        (335, 295, Qt.KeyboardModifier.NoModifier),
        (372, 430, Qt.KeyboardModifier.ShiftModifier),
    ):
        QTest.mouseClick(vp, Qt.MouseButton.LeftButton, mod, win.canvas.mapFromScene(x, y))
        QTest.qWait(600)  # apart, so no two clicks make a double-click
    lab.dock.raise_()
    pump(0.5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(args.out))
    Image.open(args.out).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
        args.out, optimize=True
    )
    print(f"wrote {args.out}")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

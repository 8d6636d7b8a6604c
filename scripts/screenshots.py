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

from _qt_pump import pump as pump_events

ROOT = Path(__file__).resolve().parents[1]
LAYOUT_SIZES = ((1600, 1000), (1280, 720), (1024, 640))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--samples", type=Path, default=ROOT / "resources" / "samples")
    ap.add_argument("--dinov2", help="DINOv2 model ref (default: a tiny random checkpoint)")
    ap.add_argument("--clip", help="CLIP model ref (default: a tiny random checkpoint)")
    ap.add_argument("--paligemma", help="PaliGemma model ref (default: a tiny random checkpoint)")
    ap.add_argument("--size", default="1280x820")
    ap.add_argument("--full-colour", action="store_true", help="keep 24-bit PNGs")
    ap.add_argument(
        "--layout-only",
        action="store_true",
        help="only the window at 1600x1000, 1280x720 and 1024x640 (window-WxH.png)",
    )
    args = ap.parse_args()

    import numpy as np
    from PIL import Image
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
        pump_events(app, seconds)

    def wait_jobs(timeout: float = 300) -> None:
        end = time.perf_counter() + timeout
        while (win.jobs or win.runner.runner.pending()) and time.perf_counter() < end:
            pump(0.05)
        pump(0.3)

    def shot(name: str) -> None:
        path = args.out / f"{name}.png"
        win.grab().save(str(path))
        if not args.full_colour:  # a 256-colour palette keeps the docs light (about 4x smaller)
            Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
                path, optimize=True
            )
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    def select(image_name: str) -> None:
        names = [p.name for p in win.browser.paths()]
        win.browser.list.setCurrentRow(names.index(image_name))
        end = time.perf_counter() + 20
        while (win.current is None or win.current_path.name != image_name) and time.perf_counter() < end:
            pump(0.05)

    def run(tool_id: str, model: str, **params) -> None:
        for path in [win.current_path, *win.browser.selected_paths()]:  # one tool's layers per picture
            image = win.images.cached(path) if path is not None else None
            if image is not None:
                win.layer_store.clear_image(image.id)
        win.tools.select_tool(tool_id)
        win.tools.set_model_ref(model)
        for k, v in params.items():
            win.tools.form.set_value(k, v)
        if win.run_current_tool() is None:
            print(f"{tool_id}: not run (see the messages dock)")
        wait_jobs()
        for text in win.messages.texts("error")[seen_errors[0] :]:
            print(f"  message: {text}")
        seen_errors[0] = len(win.messages.texts("error"))

    seen_errors = [0]

    def select_set(image_names: list[str]) -> None:
        select(image_names[0])
        for row, name in enumerate(names):
            win.browser.list.item(row).setSelected(name in image_names)

    def show_tab(widget) -> None:
        win.central_tabs.setCurrentWidget(widget)
        pump(0.2)

    pump(0.5)
    win.open_paths([args.samples])
    names = [p.name for p in win.browser.paths()]

    def pick(*wanted: str) -> list[str]:
        found = [n for n in wanted if n in names]
        return found + [n for n in names if n not in found][: max(0, len(wanted) - len(found))]

    cat, coffee, rocket = pick("chelsea.png")[0], pick("coffee.jpg")[0], pick("rocket.jpg")[0]
    people = pick("astronaut.jpg", "grace_hopper.jpg")
    select(cat)
    pump(1.5)  # thumbnails
    # The layout at a desktop, a laptop and a small laptop screen (docs/adr/0122).
    win.tools.select_tool("dinov2.similarity")
    for size in LAYOUT_SIZES:
        win.resize(*size)
        pump(0.5)
        shot(f"window-{size[0]}x{size[1]}")
    if args.layout_only:
        win.close()
        return 0
    win.resize(w, h)
    pump(0.5)
    shot("window")

    run("dinov2.pca", refs["dinov2"], resolution=224)
    win.dock_layers.raise_()
    shot("dinov2-pca")
    run("dinov2.norms", refs["dinov2"], resolution=224)
    shot("dinov2-norms")

    select_set([people[0], people[1], cat])
    run("dinov2.joint-pca", refs["dinov2"], resolution=224)
    shot("dinov2-joint-pca")
    run("dinov2.similarity", refs["dinov2"], resolution=224, points=((256.0, 200.0),))
    shot("dinov2-similarity")

    mask_png = tmp / "reference-mask.png"
    first = win.images.load(win.browser.paths()[names.index(people[0])])
    label = np.zeros((first.height, first.width), np.uint8)
    label[first.height // 5 : first.height * 4 // 5, first.width // 4 : first.width * 3 // 4] = 1
    Image.fromarray(label).save(mask_png)
    select_set([people[0], people[1]])
    run("dinov2.propagate", refs["dinov2"], resolution=224, masks=str(mask_png))
    shot("dinov2-propagate")

    select_set(people)
    run("dinov2.matches", refs["dinov2"], resolution=224, k=20)
    shot("dinov2-matches")

    select_set([coffee, cat, rocket])
    run("clip.classify", refs["clip"], labels=("a cup of coffee", "a cat", "a rocket", "a person"))
    show_tab(win.canvas)
    win.dock_results.raise_()
    shot("clip-classify")
    select(cat)
    run("clip.segment", refs["clip"], labels=("cat", "background wall"))
    show_tab(win.canvas)
    shot("clip-segment")
    select_set(names)
    run("clip.search", refs["clip"], query="a rocket launch at night")
    win.results.setCurrentWidget(win.results.ranking)
    shot("clip-search")

    select(coffee)
    run("paligemma.caption", refs["paligemma"], max_new_tokens=24)
    run("paligemma.ask", refs["paligemma"], question="what is in the cup?", max_new_tokens=16)
    win.results.setCurrentWidget(win.results.text_page)
    show_tab(win.canvas)
    shot("paligemma-text")
    run("paligemma.detect", refs["paligemma"], classes=("cup", "spoon"))
    shot("paligemma-detect")

    labelling_shots(win, args, tmp, coffee, pump, shot)

    win.tools.select_tool("dinov2.pca")
    win.tools.set_model_ref("facebook/dinov2-giant")  # not downloaded here: a clear message, no crash
    win.run_current_tool()
    wait_jobs()
    win.dock_messages.raise_()
    shot("messages")
    win.close()
    return 0


def labelling_shots(win, args, tmp: Path, image_name: str, pump, shot) -> None:
    """Labels dock, canvas annotations, history and the export dialog, on a copy of the samples (the
    project file autosaves next to the images, and resources/ must stay clean)."""
    import shutil

    import numpy as np
    from PIL import Image

    from vfmstudio.core.annotations import Box, Mask, Polygon

    folder = tmp / "labelling"
    shutil.copytree(args.samples, folder)
    win.open_paths([folder])
    names = [p.name for p in win.browser.paths()]
    win.browser.list.setCurrentRow(names.index(image_name))
    end = time.perf_counter() + 20
    lab = win.labelling
    while lab.controller.image_path != folder / image_name and time.perf_counter() < end:
        pump(0.05)
    for name, colour in (("cup", "#e6194b"), ("saucer", "#4363d8"), ("spoon", "#3cb44b")):
        lab.panel.add_class(name, colour)
    w, h = win.current.width, win.current.height
    lab.panel.select_class("saucer")
    lab.controller.add_shape(
        Polygon.simple(
            [
                (w * 0.12, h * 0.55),
                (w * 0.5, h * 0.42),
                (w * 0.88, h * 0.55),
                (w * 0.8, h * 0.8),
                (w * 0.5, h * 0.88),
                (w * 0.2, h * 0.8),
            ]
        )
    )
    lab.panel.select_class("cup")
    cup = lab.controller.add_shape(Box(w * 0.3, h * 0.15, w * 0.7, h * 0.6))
    lab.panel.select_class("spoon")
    yy, xx = np.mgrid[0:h, 0:w]
    lab.controller.add_shape(
        Mask.from_array(((xx - w * 0.62) / (w * 0.08)) ** 2 + ((yy - h * 0.66) / (h * 0.1)) ** 2 < 1)
    )
    lab.panel.tags_edit.setText("coffee, table")
    lab.panel.apply_tags()
    lab.panel.caption_edit.setPlainText("an espresso cup on a saucer, a spoon beside it")
    lab.panel.apply_caption()
    lab.set_mode("select")
    lab.controller.select([cup])  # its resize handles show
    win.layer_store.clear_image(win.current.id)  # the annotations alone, without the last run's layers
    lab.dock_history.raise_()
    pump(0.5)
    shot("labelling")
    dialog = lab.export_dialog()
    dialog.set_format("coco")
    pump(0.3)
    path = args.out / "export-dialog.png"
    dialog.grab().save(str(path))
    if not args.full_colour:
        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
            path, optimize=True
        )
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    dialog.close()
    lab.set_mode("view")
    win.dock_layers.raise_()


if __name__ == "__main__":
    sys.exit(main())

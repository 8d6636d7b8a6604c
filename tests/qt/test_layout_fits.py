"""The window fits a laptop: at 1600x1000, 1280x720 and 1024x640 no two widgets of a dock overlap,
none spills out of its dock, and the image keeps a fair share of the width."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QDockWidget, QLayout, QWidget

SIZES = [(1600, 1000), (1280, 720), (1024, 640)]


def _laid_out(widget: QWidget) -> list[QWidget]:
    """The visible widgets ``widget``'s own layout places (those a squeeze could pile up)."""
    out: list[QWidget] = []

    def walk(layout: QLayout) -> None:
        for i in range(layout.count()):
            item = layout.itemAt(i)
            if item.widget() is not None:
                out.append(item.widget())
            elif item.layout() is not None:
                walk(item.layout())

    if widget.layout() is not None:
        walk(widget.layout())
    return [w for w in out if w.isVisible() and not w.geometry().isEmpty()]


def layout_problems(dock: QDockWidget) -> list[str]:
    problems = []
    content = dock.widget()
    if not dock.rect().adjusted(-1, -1, 1, 1).contains(content.geometry()):
        problems.append(f"{dock.windowTitle()}: content {content.geometry()} spills out of {dock.rect()}")
    for parent in [content, *content.findChildren(QWidget)]:
        if not parent.isVisible():
            continue
        kids = _laid_out(parent)
        room: QRect = parent.rect().adjusted(-1, -1, 1, 1)
        for kid in kids:
            if not room.contains(kid.geometry()):
                problems.append(
                    f"{dock.windowTitle()}: {type(kid).__name__} {kid.geometry()} spills out of "
                    f"{type(parent).__name__} {parent.rect()}"
                )
        for i, a in enumerate(kids):
            for b in kids[i + 1 :]:
                common = a.geometry().intersected(b.geometry())
                if common.width() > 1 and common.height() > 1:
                    problems.append(
                        f"{dock.windowTitle()}: {type(a).__name__} {a.geometry()} overlaps "
                        f"{type(b).__name__} {b.geometry()}"
                    )
    return problems


@pytest.fixture(scope="module")
def builtin_host():
    from vfmstudio._plugin_host import PluginHost

    return PluginHost(entry_points=False).load()


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_no_dock_overlaps_or_spills_at(size, qtbot, builtin_host, tmp_path, image_folder):
    from PySide6.QtCore import QSettings

    from vfmstudio.qt.main_window import MainWindow

    w = MainWindow(host=builtin_host, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    qtbot.waitUntil(lambda: w.tools.tree.topLevelItemCount() > 0, timeout=10000)
    w.open_paths([image_folder])
    assert w.tools.select_tool("dinov2.similarity")  # a long description and a form
    qtbot.wait(50)
    assert (w.width(), w.height()) == size  # the window may be this small
    problems = []
    for raised in (w.dock_layers, w.labelling.dock):
        raised.raise_()
        qtbot.wait(20)
        for dock in w.findChildren(QDockWidget):
            if dock.isVisible() and not dock.visibleRegion().isEmpty():
                problems += layout_problems(dock)
    assert not problems, "\n".join(problems)
    if size[0] >= 1280:
        assert w.centralWidget().width() >= 0.4 * size[0]
    w.close()

"""Review mode: step through the images with pending predictions and accept, reject or fix them.

The Review dock (View › Review) lists the open pending items of the image on view, grouped by
run, each checkable (label -> project class, score); the checked ones are drawn on the canvas and
are what "accept all" takes. The score slider checks exactly the items that pass it, live. Review
mode (View › Review Mode, Ctrl+Shift+R) turns the keys on:

    A           accept all shown (the others open on the image are rejected)
    X / Delete  reject all (Delete deletes the selected annotation when there is one)
    Enter       accept the items selected in the list
    N / P       next / previous image still to review (in the image list's order and filter)

Each key is one undo step (Ctrl+Z brings the pending items back and removes the annotations, and
shows that image again). Keys the window uses for other things (A: previous image, P: polygon)
are lent to review mode while it is on and given back when it is off. See ADR 0178.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
)
from shiboken6 import isValid

from vfmstudio.core import commands as cmd
from vfmstudio.core.review import mapped_label, open_items, review_command
from vfmstudio.qt.review_dock import ITEM_ROLE, ReviewPanel
from vfmstudio.qt.review_overlay import ReviewOverlay
from vfmstudio.qt.review_states import ReviewStates

if TYPE_CHECKING:
    from vfmstudio.core.pending import PendingEntry
    from vfmstudio.core.review import PendingItem

SETTING_POLYGONS = "review/masks_as_polygons"
SETTING_ROTATED = "review/masks_as_rotated_boxes"
SETTING_ADVANCE = "review/advance"
SETTING_MIN_SCORE = "review/min_score"


class ReviewStep(cmd.Macro):
    """One review key press on one image (all its runs): one undo step."""

    def __init__(self, key: str, commands: list, text: str):
        super().__init__(commands, text)
        self.key = key


class Review(QObject):
    """The review mode of a window: ``window.review``; owns ``window.pending``."""

    def __init__(self, window: Any):
        super().__init__(window)
        self.window = window
        self.session = window.labelling.session
        self.settings: QSettings = window.settings
        self.states = ReviewStates(window)
        window.pending = self.states.pending
        self.panel = ReviewPanel(self.session.push, window)
        self.panel.set_min_score(float(self.settings.value(SETTING_MIN_SCORE, 0.0) or 0.0))
        polygons, rotated = (
            _flag(self.settings.value(SETTING_POLYGONS)),
            _flag(self.settings.value(SETTING_ROTATED)),
        )
        self.panel.masks_combo.setCurrentIndex(2 if rotated else 1 if polygons else 0)
        self.panel.advance_check.setChecked(_flag(self.settings.value(SETTING_ADVANCE, True)))
        self.dock = QDockWidget("Review", window)
        self.dock.setObjectName("dock_review")
        self.dock.setWidget(self.panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        window.tabifyDockWidget(window.dock_layers, self.dock)
        self.dock.hide()
        self.overlay = ReviewOverlay(window)
        self.key: str | None = None  # the image on view's project key
        self.entries: list[PendingEntry] = []  # its open entries, as listed
        self._lent: list[tuple[QAction, list[QKeySequence]]] = []
        self._unreadable: set[tuple[str, str]] = set()  # (run, file) already reported
        self._build_actions()
        self._wire()

    # ---------------------------------------------------------------- set-up
    def _build_actions(self) -> None:
        w = self.window
        view = w.menus.view
        self.dock_action = self.dock.toggleViewAction()
        self.dock_action.setText("&Review")
        view.addAction(self.dock_action)
        self.mode_action = QAction("Review &Mode", w)
        self.mode_action.setCheckable(True)
        self.mode_action.setShortcut(QKeySequence("Ctrl+Shift+R"))
        self.mode_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.mode_action.setToolTip("Step through pending predictions with single keys")
        self.mode_action.toggled.connect(self.set_mode)
        w.addAction(self.mode_action)
        view.addAction(self.mode_action)
        p = self.panel
        self.key_actions: dict[str, QAction] = {}
        for name, keys, slot in (
            ("accept_all", ["A"], self.accept_shown),
            ("reject_all", ["X"], self.reject_all),
            ("delete", ["Delete"], self._delete_or_reject),
            ("accept_selected", ["Return", "Enter"], self.accept_selected),
            ("next", ["N"], lambda: self.step(+1)),
            ("previous", ["P"], lambda: self.step(-1)),
        ):
            action = QAction(name.replace("_", " ").capitalize(), w)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setEnabled(False)
            action.triggered.connect(slot)
            w.addAction(action)
            self.key_actions[name] = action
        p.accept_button.clicked.connect(self.accept_shown)
        p.reject_button.clicked.connect(self.reject_all)
        p.accept_selected_button.clicked.connect(self.accept_selected)
        p.next_button.clicked.connect(lambda: self.step(+1))
        p.previous_button.clicked.connect(lambda: self.step(-1))

    def _wire(self) -> None:
        w, p = self.window, self.panel
        w.browser.current_changed.connect(lambda _path: self.refresh())
        self.states.refreshed.connect(self._on_rows_refreshed)
        self.session.stack.indexChanged.connect(self._on_undo_index)
        self._stack_index = self.session.stack.index()
        p.slider_moved.connect(self._on_slider)
        p.checks_changed.connect(self.redraw)
        p.class_map.changed.connect(lambda *_: self.states.flush())  # the list shows the new classes
        p.tree.itemSelectionChanged.connect(self.redraw)
        p.masks_combo.currentIndexChanged.connect(self._remember_masks_choice)
        p.advance_check.toggled.connect(lambda on: self.settings.setValue(SETTING_ADVANCE, on))
        self.dock.visibilityChanged.connect(lambda visible: visible and self.refresh())
        self.connect_auto_label()
        # The window connects its own slots after this object is built: ours must run after its
        # image-loaded slot (which puts the new image on the canvas) and may meet the run side.
        QTimer.singleShot(0, self._connect_late)

    def _connect_late(self) -> None:
        self.window.loader.loaded.connect(lambda _path, _image: self.redraw())
        self.connect_auto_label()

    def connect_auto_label(self) -> None:
        """Follow Run on All Images: each finished image's row and panel update at once."""
        auto = getattr(self.window, "auto_label", None)
        if auto is None or getattr(self, "_auto_connected", None) is auto:
            return
        auto.predicted.connect(self.add_prediction)
        self._auto_connected = auto

    # ---------------------------------------------------------------- state
    @property
    def pending(self):
        return self.states.pending

    @property
    def active(self) -> bool:
        return self.mode_action.isChecked()

    @property
    def masks_as_polygons(self) -> bool:
        return self.panel.masks_combo.currentData() == "polygon"

    @property
    def masks_as_rotated_boxes(self) -> bool:
        return self.panel.masks_combo.currentData() == "rotated"

    def _remember_masks_choice(self, _index: int) -> None:
        self.settings.setValue(SETTING_POLYGONS, self.masks_as_polygons)
        self.settings.setValue(SETTING_ROTATED, self.masks_as_rotated_boxes)

    @property
    def min_score(self) -> float:
        return self.panel.min_score

    def set_mode(self, on: bool) -> None:
        """Review mode on (keys lent to it, pending items drawn) or off."""
        if self.mode_action.isChecked() != on:
            self.mode_action.setChecked(on)  # comes back here through toggled
            return
        for action in self.key_actions.values():
            action.setEnabled(on)
        if on:
            self._lend_keys()
            self.dock.show()
            self.dock.raise_()
            # the list and the class map need the column's height more than the tool tree does
            w = self.window
            w.resizeDocks([w.dock_tools, self.dock], [160, 10_000], Qt.Orientation.Vertical)
            self.refresh()
            if self.key is None or not self.entries:
                self.step(+1)
        else:
            self._return_keys()
            self.redraw()

    def _lend_keys(self) -> None:
        """Take our keys from the window's other actions while review mode is on."""
        ours = {a for a in self.key_actions.values()}
        wanted = {s.toString() for a in ours for s in a.shortcuts()}
        self._lent = []
        for action in self.window.actions():
            if action in ours or action is self.mode_action:
                continue
            shortcuts = action.shortcuts()
            kept = [s for s in shortcuts if s.toString() not in wanted]
            if len(kept) != len(shortcuts):
                self._lent.append((action, shortcuts))
                action.setShortcuts(kept)

    def _return_keys(self) -> None:
        for action, shortcuts in self._lent:
            action.setShortcuts(shortcuts)
        self._lent = []

    def add_prediction(self, key: str, entry: PendingEntry) -> None:
        self.states.add(key, entry)

    # ---------------------------------------------------------------- the panel
    def refresh(self) -> None:
        """List the image on view's open items (checks from the slider) and redraw them."""
        w = self.window
        self.key = self.states.key_of(w.browser.current_path())
        key = self.key
        self.entries = self.pending.open_entries(key) if key is not None else []
        if not self.active and not self.dock.isVisible():
            self.overlay.clear()
            return  # filled when the dock is shown
        labels = self.pending.labels
        groups = []
        for n, entry in enumerate(self.entries):
            rows = []
            for it in open_items(entry, labels, key):
                mapped = mapped_label(labels, entry.tool, it.label)
                rows.append((n, it, mapped, self._passes(it)))
            model = f" · {entry.model}" if entry.model else ""
            groups.append((f"{entry.tool}{model} ({len(rows)} open)", rows))
        self.panel.fill(groups)
        path = w.browser.current_path()
        if key is None:
            self.panel.title.setText(
                f"{html.escape(path.name)}: not in the project (no predictions)" if path else "No image"
            )
        else:
            n = sum(len(rows) for _, rows in groups)
            state = self.pending.state(key)
            name = html.escape(path.name if path else key)  # a file name is text, not markup
            self.panel.title.setText(f"<b>{name}</b> · {state} · {n} open")
        self._show_class_map()
        self.redraw()

    def _show_class_map(self) -> None:
        if self.key is None:
            self.panel.class_map.show_map(self.pending.labels, [])
            return
        tools = list(dict.fromkeys(e.tool for e in self.pending.entries(self.key)))
        seen = self.states.predicted_labels()
        rows = [(t, label) for t in tools for label in seen.get(t, [])]
        self.panel.class_map.show_map(self.pending.labels, rows)

    def _passes(self, it: PendingItem) -> bool:
        return it.default and it.passes(self.min_score if self.min_score > 0 else None)

    def _on_slider(self, value: float) -> None:
        self.settings.setValue(SETTING_MIN_SCORE, value)
        checked = set()
        for child in self.panel.rows():
            n, ref = child.data(0, ITEM_ROLE)
            it = next(i for i in self.entries[n].items if i.ref == tuple(ref))
            if self._passes(it):
                checked.add((n, ref))
        self.panel.set_checks(checked)
        self.redraw()

    def _on_rows_refreshed(self, keys) -> None:
        if keys is None or self.key in keys or self.key is None:
            self.refresh()

    def shown(self) -> dict[int, list[tuple[int, int]]]:
        """The checked items of the image on view: entry index -> item refs."""
        out: dict[int, list[tuple[int, int]]] = {}
        for n, ref in self.panel.checked():
            out.setdefault(n, []).append(tuple(ref))
        return out

    # ---------------------------------------------------------------- drawing
    def redraw(self) -> None:
        w = self.window
        on_view = w.current is not None and w.image_id_of(w.browser.current_path()) == w.current.id
        if not self.active or self.key is None or not on_view or not self.entries:
            self.overlay.clear()
            return
        shown = self.shown()
        selected = {(n, tuple(ref)) for n, ref in self.panel.selected()}
        draw = []
        for n, entry in enumerate(self.entries):
            refs = shown.get(n, [])
            prediction = self._prediction(entry) if refs else None
            if prediction is not None:
                draw.append((prediction, refs, {r for m, r in selected if m == n}))
        self.overlay.show(draw, (w.current.width, w.current.height))

    def _prediction(self, entry: PendingEntry):
        """The prediction behind ``entry``; None (said once in Messages) when its file is unreadable."""
        from vfmstudio.core.pending import PendingStoreError

        try:
            return self.pending.prediction(entry, self.key)
        except PendingStoreError as exc:
            if (entry.run, entry.file_key) not in self._unreadable:
                self._unreadable.add((entry.run, entry.file_key))
                self.window.messages.post("error", f"{exc}; its items can be rejected, not accepted")
            return None

    # ---------------------------------------------------------------- review steps
    def accept_shown(self) -> bool:
        """Accept the checked items of the image on view and reject its other open ones."""
        shown = self.shown()
        return self._review(
            lambda n, entry, items: ([r for r in shown.get(n, [])], [i.ref for i in items]),
            advance=True,
            look=True,
        )

    def reject_all(self) -> bool:
        return self._review(lambda n, entry, items: ([], [i.ref for i in items]), advance=True, look=True)

    def accept_selected(self) -> bool:
        chosen: dict[int, list[tuple[int, int]]] = {}
        for n, ref in self.panel.selected():
            chosen.setdefault(n, []).append(tuple(ref))
        if not chosen:
            self.window.statusBar().showMessage("select items in the Review list to accept them", 3000)
            return False
        return self._review(lambda n, entry, items: (chosen.get(n, []), []), advance=False)

    def _delete_or_reject(self) -> bool:
        edit = self.window.labelling.controller
        if edit.selected:
            return edit.delete_selected()
        return self.reject_all()

    def _review(self, choose, *, advance: bool, look: bool = False) -> bool:
        """One undo step over the image's open runs: ``choose(n, entry, open items)`` -> (accept,
        reject). ``look``: a run that found nothing is marked as looked at (else it stays open)."""
        key = self.key
        if key is None or not self.entries:
            return False
        labels = self.pending.labels
        steps, accepted, rejected = [], 0, 0
        for n, entry in enumerate(self.entries):
            items = open_items(entry, labels, key)
            accept, reject = choose(n, entry, items)
            reject = [r for r in reject if r not in set(accept)]
            if not accept and not reject and (items or not look):
                continue
            prediction = self._prediction(entry) if accept else _NO_PREDICTION
            if prediction is None:
                continue  # unreadable: nothing of it can become an annotation
            plan = review_command(
                labels,
                key,
                entry,
                prediction,
                accept=accept,
                reject=reject,
                masks_as_polygons=self.masks_as_polygons,
                masks_as_rotated_boxes=self.masks_as_rotated_boxes,
            )
            steps.append(plan.command)
            accepted, rejected = accepted + plan.accepted, rejected + plan.rejected
        if not steps:
            return False
        text = f"Review {key}: accept {accepted}, reject {rejected}"
        if not self.session.push(ReviewStep(key, steps, text)):
            return False
        self.states.flush()  # the row and the panel follow at once
        if advance and self.panel.advance_check.isChecked() and self.active:
            self.step(+1)
        return True

    def step(self, direction: int) -> str | None:
        """Show the next (+1) / previous (-1) image still to review, in the list's order."""
        w = self.window
        order = [k for k in (self.states.key_of(p) for p in w.browser.visible_rows()) if k is not None]
        found = self.pending.next_open(order, self.key, direction)
        if found is None:
            w.statusBar().showMessage("no other image to review", 3000)
            return None
        path = self.states.path_of(found)
        if path is not None:
            w.browser.select_path(path)
        return found

    def _on_undo_index(self, index: int) -> None:
        """An undo or redo of a review step on another image brings that image back on view."""
        before, self._stack_index = self._stack_index, index
        if index == before or not isValid(self.session.stack) or not self.active:
            return
        command = self.session.stack.command(min(index, before))
        step = getattr(command, "command", None)
        if isinstance(step, ReviewStep) and step.key != self.key and index < before:
            path = self.states.path_of(step.key)
            if path is not None:
                self.states.flush()
                self.window.browser.select_path(path)


class _NoPrediction:
    """Stands in for the prediction of a step that accepts nothing (no file is read)."""

    results = ()
    image_ids = ()


_NO_PREDICTION: Any = _NoPrediction()


def _flag(value: Any) -> bool:
    """A QSettings boolean (INI files give strings back)."""
    return value in (True, 1) or str(value).lower() in ("true", "1", "yes")

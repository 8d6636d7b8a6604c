"""The Labels dock: editing tools, the class list, the image's annotations, tags and caption.

Every change goes through :meth:`ProjectSession.push` as a core command, so each is one undo step.
Methods that would ask the user (a name, a colour) take the answer as an argument, which is what
tests and scripts pass; without it they open the dialog.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import Annotation, AnnotationError
from vfmstudio.qt.edit_tools import EditController
from vfmstudio.qt.project_session import ProjectSession


def color_icon(color: str, size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(color))
    return QIcon(pix)


def describe(ann: Annotation) -> str:
    prov = ann.provenance
    source = prov.tool or prov.source
    score = f" {prov.score:.2f}" if prov.score is not None else ""
    return f"{ann.label} · {ann.shape.kind} · {source}{score}"


def _small_button(text: str, parent: QWidget) -> QToolButton:
    b = QToolButton(parent)
    b.setText(text)
    return b


class LabelsPanel(QWidget):
    accept_requested = Signal()

    def __init__(
        self,
        session: ProjectSession,
        controller: EditController,
        tool_actions: dict[str, QAction],
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.session = session
        self.controller = controller
        self._syncing = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)

        tools = QGridLayout()  # two short rows: the dock must stay narrow next to the canvas
        tools.setSpacing(2)
        self.tool_grid = tools
        self._tool_buttons: list[QToolButton] = []
        for action in tool_actions.values():
            b = QToolButton(self)
            b.setDefaultAction(action)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self._tool_buttons.append(b)
        self.brush_size = QDoubleSpinBox(self)
        self.brush_size.setRange(1.0, 500.0)
        self.brush_size.setDecimals(1)
        self.brush_size.setValue(controller.brush_radius)
        self.brush_size.setPrefix("r ")
        self.brush_size.setToolTip("brush radius in image pixels ([ and ] change it)")
        self.brush_size.valueChanged.connect(lambda v: setattr(controller, "brush_radius", float(v)))
        self._place_tools()
        tools.setColumnStretch(4, 1)
        layout.addLayout(tools)

        classes = QGroupBox("Classes", self)
        classes.setToolTip("new shapes get the selected class")
        cl = QVBoxLayout(classes)
        self.class_list = QListWidget(self)
        self.class_list.setMaximumHeight(110)
        self.class_list.setMinimumHeight(40)
        self.class_list.currentTextChanged.connect(self._on_class_selected)
        self.class_list.itemDoubleClicked.connect(lambda item: self.rename_class(item.text()))
        cl.addWidget(self.class_list)
        row = QGridLayout()  # five buttons in one row overflowed the dock beside a scroll bar
        row.setSpacing(2)
        for i, (text, tip, slot) in enumerate(
            (
                ("Add", "add a class", lambda: self.add_class()),
                ("Rename", "rename the selected class", lambda: self.rename_class()),
                ("Colour", "recolour the selected class", lambda: self.recolor_class()),
                ("Delete", "delete the class and its annotations", lambda: self.delete_class()),
                (
                    "Skeleton",
                    "the keypoint names and edges of the selected class",
                    lambda: self.edit_skeleton(),
                ),
            )
        ):
            b = _small_button(text, self)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            row.addWidget(b, i // 3, i % 3)
        cl.addLayout(row)
        layout.addWidget(classes)

        anns = QGroupBox("Annotations of this image", self)
        al = QVBoxLayout(anns)
        self.ann_list = QListWidget(self)
        self.ann_list.setMinimumHeight(40)
        self.ann_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.ann_list.itemSelectionChanged.connect(self._on_ann_selection)
        al.addWidget(self.ann_list)
        row = QHBoxLayout()
        self.accept_button = _small_button("Accept…", self)
        self.accept_button.setToolTip("turn this image's predictions into annotations (Ctrl+Return)")
        self.accept_button.clicked.connect(self.accept_requested)
        set_class = _small_button("Set class", self)
        set_class.setToolTip("give the selected annotations the selected class")
        set_class.clicked.connect(lambda: self.controller.set_class_of_selected(self.current_class()))
        delete = _small_button("Delete", self)
        delete.clicked.connect(self.controller.delete_selected)
        for b in (self.accept_button, set_class, delete):
            row.addWidget(b)
        al.addLayout(row)
        layout.addWidget(anns, 1)

        image = QGroupBox("Image", self)
        form = QFormLayout(image)
        self.tags_edit = QLineEdit(self)
        self.tags_edit.setPlaceholderText("comma-separated tags")
        self.tags_edit.editingFinished.connect(self.apply_tags)
        form.addRow("Tags", self.tags_edit)
        self.caption_edit = QPlainTextEdit(self)
        self.caption_edit.setFixedHeight(48)
        form.addRow("Caption", self.caption_edit)
        apply = _small_button("Apply caption", self)
        apply.clicked.connect(self.apply_caption)
        form.addRow("", apply)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        form.addRow(self.status)
        layout.addWidget(image)

        session.labels_changed.connect(self.refresh)
        controller.selection_changed.connect(self._on_canvas_selection)
        self.refresh()

    # ---------------------------------------------------------------- classes
    def current_class(self) -> str:
        item = self.class_list.currentItem()
        return item.text() if item is not None else self.controller.current_class

    def add_tool_button(self, button: QToolButton) -> None:
        """Another canvas tool (e.g. the Smart tool) joins the grid of tool buttons."""
        self._tool_buttons.append(button)
        self._place_tools()

    def _place_tools(self) -> None:
        """Four buttons a row, then the brush radius in the first two free cells."""
        grid = self.tool_grid
        for w in (*self._tool_buttons, self.brush_size):
            grid.removeWidget(w)
        for i, b in enumerate(self._tool_buttons):
            grid.addWidget(b, i // 4, i % 4)
        n = len(self._tool_buttons)
        if n % 4 and n % 4 <= 2:  # room at the end of the last row of tools
            grid.addWidget(self.brush_size, n // 4, 2, 1, 2)
        else:
            grid.addWidget(self.brush_size, (n + 3) // 4, 0, 1, 2)

    def _on_class_selected(self, name: str) -> None:
        if name:
            self.controller.current_class = name

    def add_class(self, name: str | None = None, color: str = "") -> bool:
        if name is None:
            name, ok = QInputDialog.getText(self, "Add class", "Class name:")
            if not ok:
                return False
        try:
            command = cmd.AddClass(name, color)
        except AnnotationError as exc:
            self.session.message.emit("warning", str(exc))
            return False
        if self.session.push(command):
            self.select_class(command.cls.name)
            return True
        return False

    def rename_class(self, old: str | None = None, new: str | None = None) -> bool:
        old = old or self.current_class()
        if self.session.labels.get_class(old) is None:
            return False
        if new is None:
            new, ok = QInputDialog.getText(self, "Rename class", f"New name for {old}:", text=old)
            if not ok:
                return False
        if self.session.push(cmd.EditClass(old, new_name=new)):
            self.select_class(new.strip())
            return True
        return False

    def recolor_class(self, name: str | None = None, color: str | None = None) -> bool:
        name = name or self.current_class()
        cls = self.session.labels.get_class(name)
        if cls is None:
            return False
        if color is None:
            chosen = QColorDialog.getColor(QColor(cls.color), self, f"Colour of {name}")
            if not chosen.isValid():
                return False
            color = chosen.name()
        return self.session.push(cmd.EditClass(name, color=color))

    def edit_skeleton(
        self, name: str | None = None, names_text: str | None = None, edges_text: str = ""
    ) -> bool:
        """Set the keypoint skeleton of a class (asked in a dialog unless ``names_text`` is given)."""
        from vfmstudio.session.skeletons import parse_skeleton

        name = name or self.current_class()
        if self.session.labels.get_class(name) is None:
            self.session.message.emit("warning", "add or select a class to give it keypoints")
            return False
        old = self.session.labels.skeletons.get(name)
        if names_text is None:
            from vfmstudio.qt.skeleton_dialog import ask_skeleton

            typed = ask_skeleton(self, name, old)
            if typed is None:
                return False
            names_text, edges_text = typed
        try:
            skeleton = parse_skeleton(names_text, edges_text)
        except AnnotationError as exc:
            self.session.message.emit("warning", str(exc))
            return False
        if skeleton == old:
            return False
        return self.session.push(cmd.SetSkeleton(name, skeleton))

    def delete_class(self, name: str | None = None) -> bool:
        name = name or self.current_class()
        if self.session.labels.get_class(name) is None:
            return False
        return self.session.push(cmd.RemoveClass(name))

    def select_class(self, name: str) -> None:
        for i in range(self.class_list.count()):
            if self.class_list.item(i).text() == name:
                self.class_list.setCurrentRow(i)
                return

    # ---------------------------------------------------------------- tags and caption
    def apply_tags(self) -> bool:
        key = self.controller.ensure_key()
        if key is None:
            return False
        tags = tuple(t.strip() for t in self.tags_edit.text().split(",") if t.strip())
        if tags == self.session.labels.tags.get(key, ()):
            return False
        return self.session.push(cmd.SetTags(key, tags))

    def apply_caption(self) -> bool:
        key = self.controller.ensure_key()
        if key is None:
            return False
        text = self.caption_edit.toPlainText().strip()
        if text == self.session.labels.captions.get(key, ""):
            return False
        return self.session.push(cmd.SetCaption(key, text))

    # ---------------------------------------------------------------- sync
    def refresh(self) -> None:
        labels = self.session.labels
        self._syncing = True
        try:
            current = self.current_class()
            self.class_list.clear()
            for c in labels.classes:
                QListWidgetItem(color_icon(c.color), c.name, self.class_list)
            if labels.get_class(current) is not None:
                self.select_class(current)
            elif self.class_list.count():
                self.class_list.setCurrentRow(0)
            key = self.controller.image_key
            self.ann_list.clear()
            for ann in labels.annotations(key) if key else ():
                item = QListWidgetItem(color_icon(labels.color_of(ann.label)), describe(ann), self.ann_list)
                item.setData(Qt.ItemDataRole.UserRole, ann.id)
                item.setSelected(ann.id in self.controller.selected)
            if not self.tags_edit.hasFocus():
                self.tags_edit.setText(", ".join(labels.tags.get(key, ())) if key else "")
            if not self.caption_edit.hasFocus():
                self.caption_edit.setPlainText(labels.captions.get(key, "") if key else "")
            project = self.session.project
            state = (
                "read-only: " + self.session.refused_reason
                if self.session.read_only and self.session.refused_reason
                else project.path.name
            )
            self.status.setText(f"{len(labels)} annotations in {state}")
        finally:
            self._syncing = False

    def _on_ann_selection(self) -> None:
        if self._syncing:
            return
        ids = [item.data(Qt.ItemDataRole.UserRole) for item in self.ann_list.selectedItems()]
        self.controller.select(ids)

    def _on_canvas_selection(self, ids: list) -> None:
        self._syncing = True
        try:
            for i in range(self.ann_list.count()):
                item = self.ann_list.item(i)
                item.setSelected(item.data(Qt.ItemDataRole.UserRole) in ids)
        finally:
            self._syncing = False

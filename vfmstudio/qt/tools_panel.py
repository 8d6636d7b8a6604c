"""The tools dock: tools grouped by family, model choice, parameter form, Run / progress / Cancel,
and the device and precision in use, always visible."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core.tools import InputKind, ModelChoice, ToolSpec
from vfmstudio.qt.layout import vertical_scroller
from vfmstudio.qt.model_picker import add_browse_item
from vfmstudio.qt.param_form import ParamForm

TOOL_ROLE = Qt.ItemDataRole.UserRole
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_INPUT_HINT = {
    InputKind.IMAGE: "the current image",
    InputKind.PAIR: "two selected images (source, target)",
    InputKind.SET: "the selected images",
}


def _model_label(m: ModelChoice, cached: bool | None) -> str:
    size = f" · {m.params_millions:g} M" if m.params_millions else ""
    state = "" if cached is None else (" · cached" if cached else " · not downloaded")
    gated = " · gated" if m.gated else ""
    return f"{m.title or m.ref}{size}{state}{gated}"


def _is_cached(ref: str) -> bool | None:
    try:
        from vfmstudio.ml.hub import is_cached

        return bool(is_cached(ref))
    except Exception:  # noqa: BLE001 - a local folder or an odd ref: just don't say
        return None


class ToolsPanel(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()
    devices_requested = Signal()
    tool_changed = Signal(object)  # ToolSpec or None
    params_edited = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        style = QApplication.style()
        self.tree = QTreeWidget(self)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setMinimumHeight(80)
        self.tree.currentItemChanged.connect(self._on_tool)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: palette(mid);")
        # Exactly three lines here (word-wrapped; the whole text is in the tooltip): a fixed height
        # the layout can count on, so the text is never drawn over the tool tree.
        self.description.setFixedHeight(self.description.fontMetrics().lineSpacing() * 3 + 2)
        self.description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.model_combo = QComboBox(self)
        self.model_combo.setEditable(True)  # a local folder or any hub id also works
        self.model_combo.setToolTip("Hugging Face model id (optionally @revision) or a local folder")
        self.device_combo = QComboBox(self)
        self.device_combo.addItems(DEVICES)
        self.precision_combo = QComboBox(self)
        self.precision_combo.addItems(PRECISIONS)
        self.form_area = QScrollArea(self)
        self.form_area.setWidgetResizable(True)
        self.form_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.form_area.setMinimumHeight(60)
        self.form: ParamForm | None = None
        self.run_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Run", self)
        self.run_button.setToolTip("Run the tool (Ctrl+R)")
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_BrowserStop), "Cancel", self
        )
        self.cancel_button.setToolTip("Cancel the running job (Esc)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.live_check = QCheckBox("Rerun on every edit", self)
        self.live_check.setToolTip(
            "Once the tool has run on this image, each parameter change reruns it on the "
            "cached features (no new forward pass for tools that cache them)"
        )
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.device_label = QLabel("device: auto", self)
        self.device_label.setObjectName("device_label")
        self.devices_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_ComputerIcon), "Devices…", self
        )
        self.devices_button.setToolTip("What torch sees: CUDA devices and memory, MPS, CPU threads")
        self.devices_button.clicked.connect(self.devices_requested)

        settings = QFormLayout()
        settings.addRow("Model", self.model_combo)
        row = QHBoxLayout()
        row.addWidget(self.device_combo)
        row.addWidget(QLabel("Precision", self))
        row.addWidget(self.precision_combo)
        settings.addRow("Device", row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        device_row = QHBoxLayout()
        device_row.addWidget(self.device_label, 1)
        device_row.addWidget(self.devices_button)

        # The choices scroll on a short screen; Run, the progress and the device stay in sight below.
        upper = QWidget(self)
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addWidget(self.tree, 3)
        upper_layout.addWidget(self.description)
        upper_layout.addLayout(settings)
        upper_layout.addWidget(self.form_area, 3)
        upper_layout.addWidget(self.live_check)
        self.choices_area = vertical_scroller(upper, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.choices_area, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addLayout(device_row)
        self._tools: dict[str, ToolSpec] = {}

    # ---------------------------------------------------------------- tools
    def set_tools(self, tools: list[ToolSpec]) -> None:
        self.tree.clear()
        tools = [t for t in tools if t.for_window]
        self._tools = {t.id: t for t in tools}
        families: dict[str, QTreeWidgetItem] = {}
        for tool in sorted(tools, key=lambda t: (t.family, t.title)):
            parent = families.get(tool.family)
            if parent is None:
                parent = QTreeWidgetItem(self.tree, [tool.family])
                parent.setFlags(Qt.ItemFlag.ItemIsEnabled)
                families[tool.family] = parent
            item = QTreeWidgetItem(parent, [tool.title])
            item.setData(0, TOOL_ROLE, tool.id)
            item.setToolTip(0, f"{tool.id} — {tool.description or tool.title}")
        self.tree.expandAll()
        self._on_tool(None, None)

    def select_tool(self, tool_id: str) -> bool:
        """Select a tool by its id or a former id (alias); False when no listed tool answers to it."""
        tool_id = next((t.id for t in self._tools.values() if tool_id in t.aliases), tool_id)
        it = self.tree.invisibleRootItem()
        for i in range(it.childCount()):
            fam = it.child(i)
            for j in range(fam.childCount()):
                if fam.child(j).data(0, TOOL_ROLE) == tool_id:
                    self.tree.setCurrentItem(fam.child(j))
                    return True
        return False

    @property
    def tool(self) -> ToolSpec | None:
        item = self.tree.currentItem()
        tool_id = item.data(0, TOOL_ROLE) if item is not None else None
        return self._tools.get(tool_id) if tool_id else None

    def model_ref(self) -> str | None:
        data = self.model_combo.currentData()
        text = self.model_combo.currentText().strip()
        if data and self.model_combo.itemText(self.model_combo.currentIndex()) == text:
            return str(data)
        return text or None

    def set_model_ref(self, ref: str) -> None:
        i = self.model_combo.findData(ref)
        if i >= 0:
            self.model_combo.setCurrentIndex(i)
        else:
            self.model_combo.setEditText(ref)
        self.model_combo.lineEdit().setCursorPosition(0)  # a long label shows its start, not its end

    def _on_tool(self, current, _previous) -> None:
        tool = self.tool
        # Filling the combo is not the user choosing a model (settings listen to its changes).
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        if tool is None:
            self.model_combo.blockSignals(False)
            self.description.setText("Pick a tool.")
            self.form_area.takeWidget()
            self.form = None
            self.run_button.setEnabled(False)
            self.tool_changed.emit(None)
            return
        full = tool.description or tool.title
        first = full.split(". ")[0].rstrip(".") + "."
        self.description.setText(f"Runs on {_INPUT_HINT[tool.inputs]}. {first}")
        self.description.setToolTip(full)
        for m in tool.models:
            self.model_combo.addItem(_model_label(m, _is_cached(m.ref)), m.ref)
        add_browse_item(self.model_combo)
        if tool.default_model:
            self.set_model_ref(tool.default_model)
        self.model_combo.setEnabled(bool(tool.models) or tool.default_model is not None)
        self.model_combo.blockSignals(False)
        self.form = ParamForm(tool)
        self.form.edited.connect(self.params_edited)
        self.form_area.setWidget(self.form)
        self.run_button.setEnabled(True)
        self.tool_changed.emit(tool)

    # ---------------------------------------------------------------- running state
    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first progress report
            self.progress.setFormat("starting…")
        else:
            self.progress.setRange(0, 1000)

    def show_progress(self, fraction: float | None, message: str) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{message} %p%" if message and fraction is not None else (message or "%p%"))

    def show_finished(self, text: str) -> None:
        self.set_running(False)
        self.progress.setValue(1000 if text == "done" else 0)
        self.progress.setFormat(text)

    def show_device(self, device: str | None, precision: str | None, source: str = "") -> None:
        text = f"device: {device or '?'} · {precision or 'auto'}"
        self.device_label.setText(f"{text} ({source})" if source else text)

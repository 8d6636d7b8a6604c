"""Run › Models…: every known model of every family with its size, access (open, or gated with a
licence and a token) and whether it is cached; Download with progress (bytes, speed), Cancel, resume,
and the access-token prompt for gated models. Downloads run on ModelDownloads' own thread."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core.jobs import JobResult
from vfmstudio.qt.download_dialog import TokenDialog
from vfmstudio.qt.model_downloads import ModelDownloads

REF_ROLE = Qt.ItemDataRole.UserRole
COLUMNS = ("Model", "Family", "Size", "Access", "State")
STATE_COLUMN = COLUMNS.index("State")


def _access(model: dict) -> str:
    from vfmstudio.ml.catalog import get_known

    known = get_known(model["ref"])
    licence = getattr(known, "licence", None) or getattr(known, "license", None)
    kind = "gated: licence + token" if model.get("gated") else "open"
    return f"{kind} · {licence}" if licence else kind


class ModelManagerDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.downloads = ModelDownloads.of(parent.window() if parent is not None else self)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setFormat("")
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.download_button = QPushButton("Download", self)
        self.download_button.clicked.connect(self.download_selected)
        self.cancel_button = QPushButton("Cancel download", self)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.token_button = QPushButton("Access token…", self)
        self.token_button.setToolTip(
            "Store a Hugging Face token for gated models (where huggingface_hub reads it)"
        )
        self.token_button.clicked.connect(lambda: self.ask_token(self.selected_ref() or "a gated model"))
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.token_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(760, 460)
        self.downloads.progressed.connect(self._on_progress)
        self.downloads.finished.connect(self._on_finished)
        self._retry_after_token: str | None = None
        self.refresh()

    # ---- rows
    def refresh(self) -> None:
        from vfmstudio.ml.catalog import list_models
        from vfmstudio.ml.errors import format_bytes
        from vfmstudio.ml.hub import list_cached

        selected = self.selected_ref()
        models = list_models()
        on_disk = {entry["ref"]: entry["size_on_disk"] for entry in list_cached()}
        self.table.setRowCount(len(models))
        for row, m in enumerate(models):
            size = f"{m['size']} parameters"
            if m["ref"] in on_disk:
                size += f" · {format_bytes(on_disk[m['ref']])} on disk"
            cells = (f"{m['title']}  ({m['ref']})", m["family"], size, _access(m), "")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(REF_ROLE, m["ref"])
                self.table.setItem(row, column, item)
            self._set_state(row, m["ref"], bool(m["cached"]))
        if selected:
            self.select(selected)
        self._update_buttons()

    def _row_of(self, ref: str) -> int | None:
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is not None and item.data(REF_ROLE) == ref:
                return row
        return None

    def _set_state(self, row: int, ref: str, cached: bool | None = None, text: str | None = None) -> None:
        if text is None:
            text = self._state_text(ref, cached)
        self.table.item(row, STATE_COLUMN).setText(text)

    def _state_text(self, ref: str, cached: bool | None) -> str:
        from vfmstudio.ml.download import partial_bytes
        from vfmstudio.ml.errors import format_bytes
        from vfmstudio.ml.hub import is_cached

        status = self.downloads.status(ref)
        if status == "queued":
            return "queued"
        if status == "running":
            return "downloading…"
        if cached if cached is not None else is_cached(ref):
            return "cached"
        kept = partial_bytes(ref)
        return f"partly downloaded ({format_bytes(kept)} kept)" if kept else "not downloaded"

    def state_of(self, ref: str) -> str:
        row = self._row_of(ref)
        return self.table.item(row, STATE_COLUMN).text() if row is not None else ""

    def select(self, ref: str) -> bool:
        row = self._row_of(ref)
        if row is None:
            return False
        self.table.selectRow(row)
        return True

    def selected_ref(self) -> str | None:
        items = self.table.selectedItems()
        return str(items[0].data(REF_ROLE)) if items else None

    def _update_buttons(self) -> None:
        ref = self.selected_ref()
        active = ref is not None and self.downloads.is_active(ref)
        self.download_button.setEnabled(ref is not None and not active and self.state_of(ref) != "cached")
        self.cancel_button.setEnabled(active)

    # ---- actions
    def download_selected(self) -> None:
        ref = self.selected_ref()
        if ref is None:
            return
        from vfmstudio.ml.catalog import get_known
        from vfmstudio.ml.hub_auth import read_token

        known = get_known(ref)
        if known is not None and known.gated and read_token() is None:
            self.ask_token(ref, then_download=True)  # a gated download without a token can only fail
            return
        self.start(ref)

    def start(self, ref: str) -> None:
        self.downloads.start(ref)
        row = self._row_of(ref)
        if row is not None:
            self._set_state(row, ref)
        self.progress.setRange(0, 0)
        self.status.setText(f"{ref}: connecting…")
        self._update_buttons()

    def cancel_selected(self) -> None:
        ref = self.selected_ref()
        if ref is not None:
            self.downloads.cancel(ref)

    def ask_token(self, ref: str, *, then_download: bool = False) -> TokenDialog:
        dialog = TokenDialog(self, ref)
        if then_download:
            dialog.accepted.connect(lambda: self.start(ref))
        dialog.accepted.connect(lambda: self.status.setText("Access token stored."))
        dialog.open()
        return dialog

    # ---- download events (GUI thread)
    def _on_progress(self, ref: str, p) -> None:
        row = self._row_of(ref)
        percent = f" {p.fraction:.0%}" if p.fraction is not None else ""
        if row is not None:
            self._set_state(row, ref, text=f"downloading{percent}")
        if p.fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(p.fraction * 1000))
        self.status.setText(f"{ref}: {p.describe()}" + (f" · {p.file}" if p.file else ""))

    def _on_finished(self, ref: str, result: JobResult) -> None:
        if result.status == "done":
            self.refresh()  # state and size on disk
        row = self._row_of(ref)
        if row is not None:
            self._set_state(row, ref)
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000 if result.status == "done" else 0)
        if result.status == "done":
            self.status.setText(f"{ref}: downloaded.")
        elif result.status == "cancelled":
            self.status.setText(f"{ref}: cancelled; what was fetched is kept and Download resumes it.")
        else:
            message = result.error.message if result.error is not None else result.status
            self.status.setText(message)
            if result.error is not None and result.error.kind == "GatedModelError" and self.isVisible():
                self.ask_token(ref, then_download=True)
        self._update_buttons()


def open_model_manager(window: QWidget) -> ModelManagerDialog:
    """Show the window's model manager (one per window), refreshed."""
    dialog = window.findChild(ModelManagerDialog)
    if dialog is None:
        dialog = ModelManagerDialog(window)
    else:
        dialog.refresh()
    dialog.show()
    dialog.raise_()
    return dialog

"""File > Export: a format from the plugins, an output folder, the format's options; the export
runs on the job runner (off the GUI thread) with progress and Cancel.

The project is copied (through its JSON form) before the job starts, so edits made while the
export runs neither race with it nor leak into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vfmstudio.core.project import Project
from vfmstudio.core.tools import FormatSpec
from vfmstudio.qt.param_form import ParamForm


class _FormatParams:
    """What :class:`ParamForm` needs of a tool, for a format's parameters."""

    def __init__(self, spec: FormatSpec):
        self.spec = spec
        self.params = spec.params

    def param(self, name: str):
        return next(p for p in self.params if p.name == name)

    def resolve_params(self, values: dict[str, Any], from_text: bool = False) -> dict[str, Any]:
        from vfmstudio.core.exchange import _resolve

        return _resolve(self.spec, values, from_text)


def snapshot(project: Project) -> Project:
    """An independent copy of ``project`` for a job on another thread."""
    return Project.from_json(project.path, project.to_json())


class ExportDialog(QDialog):
    finished_export = Signal(str, object)  # status ("done", "cancelled", "error"), files or error text

    def __init__(self, formats: list[FormatSpec], project: Project, runner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        self.formats = [f for f in formats if f.exporter]
        self.project = project
        self.runner = runner
        self.job = None
        self.form: ParamForm | None = None
        self.result_status = ""
        self.warnings: list[str] = []
        layout = QVBoxLayout(self)
        top = QFormLayout()
        self.format_combo = QComboBox(self)
        for f in self.formats:
            self.format_combo.addItem(f"{f.title} ({f.id})", f.id)
        self.format_combo.currentIndexChanged.connect(self._on_format)
        top.addRow("Format", self.format_combo)
        row = QHBoxLayout()
        self.out_edit = QLineEdit(str(project.root / "export"), self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        top.addRow("Output folder", row)
        layout.addLayout(top)
        self.description = QLabel("", self)
        self.description.setWordWrap(True)
        layout.addWidget(self.description)
        self.form_holder = QVBoxLayout()
        layout.addLayout(self.form_holder)
        layout.addStretch(1)  # extra height goes below the options, not between the rows
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        layout.addWidget(self.progress)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.export_button = QPushButton("Export", self)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Close", self)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        runner.progressed.connect(self._on_progress)
        runner.finished.connect(self._on_finished)
        self._on_format()
        self.resize(520, 420)

    # ---------------------------------------------------------------- choices
    @property
    def spec(self) -> FormatSpec | None:
        i = self.format_combo.currentIndex()
        return self.formats[i] if 0 <= i < len(self.formats) else None

    def set_format(self, format_id: str) -> None:
        i = self.format_combo.findData(format_id)
        if i < 0:
            raise ValueError(f"no exporter for format {format_id!r}")
        self.format_combo.setCurrentIndex(i)

    def _on_format(self) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        spec = self.spec
        if spec is None:
            self.description.setText("no export formats are registered (is the formats plugin disabled?)")
            self.export_button.setEnabled(False)
            return
        self.description.setText(spec.description)
        self.form = ParamForm(_FormatParams(spec), self)  # type: ignore[arg-type]
        self.form_holder.addWidget(self.form)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into folder", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    # ---------------------------------------------------------------- running
    def start(self) -> int | None:
        """Queue the export on the job runner; returns the job id (None when the form is wrong)."""
        from vfmstudio.core.tools import ParamError

        spec = self.spec
        if spec is None or self.job is not None:
            return None
        out = self.out_edit.text().strip()
        if not out:
            self._show_error("choose an output folder")
            return None
        try:
            params = self.form.resolved() if self.form is not None else {}
        except ParamError as exc:
            self._show_error(f"{spec.id}: {exc}")
            return None
        project = snapshot(self.project)
        out_dir = Path(out)

        def job(ctx) -> tuple[list[str], list[str]]:
            from vfmstudio.core.exchange import export_project

            result = export_project(spec, project, out_dir, params, cancel=ctx.cancel,
                                    on_progress=lambda f, m: ctx.progress(f, m))
            return [str(p) for p in result.files], list(result.warnings)

        self.job = self.runner.submit(job, key=f"export:{out_dir}", source=f"export · {spec.id}")
        self.export_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.progress.setValue(0)
        self.progress.setFormat(f"{spec.id}: starting…")
        return self.job.job_id

    def _cancel_or_close(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.progress.setFormat("cancelling…")
        else:
            self.reject()

    def _on_progress(self, update) -> None:
        if self.job is None or update.job_id != self.job.job_id:
            return
        if update.fraction is not None:
            self.progress.setValue(int(update.fraction * 1000))
        self.progress.setFormat(f"%p %  {update.message}")

    def _on_finished(self, result) -> None:
        if self.job is None or result.job_id != self.job.job_id:
            return
        self.job = None
        self.result_status = result.status
        self.export_button.setEnabled(True)
        self.cancel_button.setText("Close")
        if result.status == "done":
            self.progress.setValue(1000)
            files, self.warnings = result.value
            self.progress.setFormat(f"done: {len(files)} files")
            self.finished_export.emit("done", files)
        elif result.status == "cancelled":
            self.progress.setValue(0)
            self.progress.setFormat("cancelled")
            self.finished_export.emit("cancelled", None)
        else:
            message = result.error.message if result.error is not None else "export failed"
            self._show_error(message)
            self.finished_export.emit("error", message)

    def _show_error(self, text: str) -> None:
        self.progress.setFormat(text)
        self.description.setText(text)

    def done(self, r: int) -> None:  # closing the dialog cancels a running export
        if self.job is not None:
            self.job.cancel()
        try:
            self.runner.progressed.disconnect(self._on_progress)
            self.runner.finished.disconnect(self._on_finished)
        except (RuntimeError, TypeError):
            pass
        super().done(r)

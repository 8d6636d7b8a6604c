"""File > Export: a format from the plugins, an output folder, the format's options; the export
runs on the job runner (off the GUI thread) with progress and Cancel.

The project is copied (through its JSON form) before the job starts, so edits made while the
export runs neither race with it nor leak into it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QWidget

from vfmstudio.core.project import Project
from vfmstudio.core.tools import FormatSpec
from vfmstudio.qt.format_job_dialog import FormatJobDialog, snapshot


class ExportDialog(FormatJobDialog):
    finished_export = Signal(str, object)  # status ("done", "cancelled", "error"), files or error text

    def __init__(self, formats: list[FormatSpec], project: Project, runner, parent: QWidget | None = None):
        super().__init__(
            formats, project, runner, parent, title="Export annotations", verb="Export", kind="exporter"
        )
        self.warnings: list[str] = []
        self.report = ""  # what the last export kept, converted and dropped
        self.export_button = self.run_button  # the name callers and tests know
        self.export_button.setDefault(True)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.resize(520, 420)

    def _add_target_row(self, top: QFormLayout) -> None:
        row = QHBoxLayout()
        self.out_edit = QLineEdit(str(self.project.root / "export"), self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        top.addRow("Output folder", row)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into folder", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)

    # ---------------------------------------------------------------- running
    def start(self) -> int | None:
        """Queue the export on the job runner; returns the job id (None when the form is wrong)."""
        spec = self.spec
        if spec is None or self.job is not None:
            return None
        out = self.out_edit.text().strip()
        if not out:
            self._show_error("choose an output folder")
            return None
        params = self._params(spec, self._show_error)
        if params is None:
            return None
        project = snapshot(self.project)
        out_dir = Path(out)

        def job(ctx) -> tuple[list[str], list[str], str]:
            from vfmstudio.core.exchange import export_project

            result = export_project(
                spec, project, out_dir, params, cancel=ctx.cancel, on_progress=lambda f, m: ctx.progress(f, m)
            )
            return [str(p) for p in result.files], list(result.warnings), result.report.summary()

        job_id = self._submit(job, key=f"export:{out_dir}", source=f"export · {spec.id}")
        self.progress.setFormat(f"{spec.id}: starting…")
        return job_id

    def _cancel_or_close(self) -> None:
        running = self.job is not None
        super()._cancel_or_close()
        if running:  # the job stops at its next check; say so meanwhile
            self.progress.setFormat("cancelling…")

    def _job_done(self, result) -> None:
        if result.status == "done":
            self.progress.setValue(1000)
            files, self.warnings, self.report = result.value
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

"""File > Import: read a dataset with a format's importer off the GUI thread and add it to the
project as one undo step.

The job reads the dataset and merges it into a copy of the project with
:meth:`Project.merge` (path matching, duplicate skipping, id clashes); back on the GUI thread the
difference between that copy and the project as it was is pushed as one command (classes with
their colours, annotations, tags, captions). Images new to the project are added to it directly
(an image record is not a label edit).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QWidget

from vfmstudio.core.project import Project
from vfmstudio.core.tools import FormatSpec
from vfmstudio.qt.format_job_dialog import FormatJobDialog, snapshot


class ImportDialog(FormatJobDialog):
    imported = Signal(object, object, object)  # snapshot before, merged project, warnings

    def __init__(self, formats: list[FormatSpec], project: Project, runner, parent: QWidget | None = None):
        super().__init__(
            formats, project, runner, parent, title="Import annotations", verb="Import", kind="importer"
        )
        self.import_button = self.run_button  # the name callers and tests know
        self.report = ""  # what the last import read: kept, converted, dropped
        self.resize(520, 380)

    def _add_target_row(self, top: QFormLayout) -> None:
        row = QHBoxLayout()
        self.source_edit = QLineEdit(self)
        self.source_edit.setPlaceholderText("a file or folder of the dataset")
        for text, folder in (("File…", False), ("Folder…", True)):
            b = QPushButton(text, self)
            b.clicked.connect(lambda _=False, f=folder: self._browse(f))
            row.addWidget(b)
        row.insertWidget(0, self.source_edit, 1)
        top.addRow("Source", row)

    def _browse(self, folder: bool) -> None:
        path = (
            QFileDialog.getExistingDirectory(self, "Dataset folder")
            if folder
            else QFileDialog.getOpenFileName(self, "Dataset file")[0]
        )
        if path:
            self.source_edit.setText(path)

    def start(self) -> int | None:
        spec = self.spec
        if spec is None or self.job is not None:
            return None
        source = self.source_edit.text().strip()
        if not source:
            self.description.setText("choose the file or folder to import")
            return None
        params = self._params(spec, self.description.setText)
        if params is None:
            return None
        before = snapshot(self.project)
        scratch = snapshot(self.project)

        def job(ctx):
            from vfmstudio.core.exchange import import_dataset

            imported, ectx = import_dataset(
                spec,
                Path(source),
                params,
                cancel=ctx.cancel,
                on_progress=lambda f, m: ctx.progress(None if f is None else f / 2, m),
            )
            scratch.merge(imported, cancel=ctx.cancel, on_progress=lambda f, m: ctx.progress(0.5 + f / 2, m))
            return before, scratch, list(ectx.warnings), ectx.report.summary()

        return self._submit(job, key=f"import:{source}", source=f"import · {spec.id}")

    def _on_progress(self, update) -> None:
        if update.fraction is not None:  # steps without a fraction were never shown here
            super()._on_progress(update)

    def _job_done(self, result) -> None:
        if result.status == "done":
            self.progress.setValue(1000)
            self.progress.setFormat("done")
            *value, self.report = result.value
            self.imported.emit(*value)
        else:
            self._show_error(result.error.message if result.error is not None else result.status)

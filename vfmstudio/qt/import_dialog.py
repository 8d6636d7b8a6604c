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

from vfmstudio.core import commands as cmd
from vfmstudio.core.project import Project
from vfmstudio.core.tools import FormatSpec
from vfmstudio.qt.export_dialog import _FormatParams, snapshot
from vfmstudio.qt.param_form import ParamForm


def merge_command(before: Project, merged: Project) -> tuple[cmd.Command | None, dict, dict]:
    """The edit that turns ``before``'s labels into ``merged``'s, plus the image records that are new
    and the counts. ``merged`` is ``before`` after :meth:`Project.merge`."""
    old, new = before.labels, merged.labels
    commands: list[cmd.Command] = []
    for c in new.classes:
        if old.get_class(c.name) is None:
            commands.append(cmd.AddClass(c.name, c.color))
    added = [a for a in new.annotations() if a.id not in old]
    if added:
        commands.append(cmd.AddAnnotations(added))
    for key in new.images():
        if new.tags.get(key, ()) != old.tags.get(key, ()):
            commands.append(cmd.SetTags(key, new.tags.get(key, ())))
        if new.captions.get(key, "") != old.captions.get(key, ""):
            commands.append(cmd.SetCaption(key, new.captions.get(key, "")))
    images = {k: r for k, r in merged.images.items() if k not in before.images}
    counts = {"annotations": len(added), "images": len(images),
              "classes": sum(isinstance(c, cmd.AddClass) for c in commands)}
    if not commands:
        return None, images, counts
    return cmd.Macro(commands, f"Import {counts['annotations']} annotations"), images, counts


class ImportDialog(QDialog):
    imported = Signal(object, object, object)  # snapshot before, merged project, warnings

    def __init__(self, formats: list[FormatSpec], project: Project, runner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import annotations")
        self.formats = [f for f in formats if f.importer]
        self.project = project
        self.runner = runner
        self.job = None
        self.form: ParamForm | None = None
        self.result_status = ""
        layout = QVBoxLayout(self)
        top = QFormLayout()
        self.format_combo = QComboBox(self)
        for f in self.formats:
            self.format_combo.addItem(f"{f.title} ({f.id})", f.id)
        self.format_combo.currentIndexChanged.connect(self._on_format)
        top.addRow("Format", self.format_combo)
        row = QHBoxLayout()
        self.source_edit = QLineEdit(self)
        self.source_edit.setPlaceholderText("a file or folder of the dataset")
        for text, folder in (("File…", False), ("Folder…", True)):
            b = QPushButton(text, self)
            b.clicked.connect(lambda _=False, f=folder: self._browse(f))
            row.addWidget(b)
        row.insertWidget(0, self.source_edit, 1)
        top.addRow("Source", row)
        layout.addLayout(top)
        self.description = QLabel("", self)
        self.description.setWordWrap(True)
        layout.addWidget(self.description)
        self.form_holder = QVBoxLayout()
        layout.addLayout(self.form_holder)
        layout.addStretch(1)  # extra height goes below the options, not between the rows
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setFormat("")
        layout.addWidget(self.progress)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.import_button = QPushButton("Import", self)
        self.import_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Close", self)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        runner.progressed.connect(self._on_progress)
        runner.finished.connect(self._on_finished)
        self._on_format()
        self.resize(520, 380)

    @property
    def spec(self) -> FormatSpec | None:
        i = self.format_combo.currentIndex()
        return self.formats[i] if 0 <= i < len(self.formats) else None

    def set_format(self, format_id: str) -> None:
        i = self.format_combo.findData(format_id)
        if i < 0:
            raise ValueError(f"no importer for format {format_id!r}")
        self.format_combo.setCurrentIndex(i)

    def _on_format(self) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        spec = self.spec
        if spec is None:
            self.description.setText("no import formats are registered (is the formats plugin disabled?)")
            self.import_button.setEnabled(False)
            return
        self.description.setText(spec.description)
        self.form = ParamForm(_FormatParams(spec), self)  # type: ignore[arg-type]
        self.form_holder.addWidget(self.form)

    def _browse(self, folder: bool) -> None:
        path = (QFileDialog.getExistingDirectory(self, "Dataset folder") if folder
                else QFileDialog.getOpenFileName(self, "Dataset file")[0])
        if path:
            self.source_edit.setText(path)

    def start(self) -> int | None:
        from vfmstudio.core.tools import ParamError

        spec = self.spec
        if spec is None or self.job is not None:
            return None
        source = self.source_edit.text().strip()
        if not source:
            self.description.setText("choose the file or folder to import")
            return None
        try:
            params = self.form.resolved() if self.form is not None else {}
        except ParamError as exc:
            self.description.setText(f"{spec.id}: {exc}")
            return None
        before = snapshot(self.project)
        scratch = snapshot(self.project)

        def job(ctx):
            from vfmstudio.core.exchange import import_dataset

            imported, ectx = import_dataset(spec, Path(source), params, cancel=ctx.cancel,
                                            on_progress=lambda f, m: ctx.progress(None if f is None else f / 2, m))
            scratch.merge(imported, cancel=ctx.cancel, on_progress=lambda f, m: ctx.progress(0.5 + f / 2, m))
            return before, scratch, list(ectx.warnings)

        self.job = self.runner.submit(job, key=f"import:{source}", source=f"import · {spec.id}")
        self.import_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.progress.setValue(0)
        return self.job.job_id

    def _cancel_or_close(self) -> None:
        if self.job is not None:
            self.job.cancel()
        else:
            self.reject()

    def _on_progress(self, update) -> None:
        if self.job is not None and update.job_id == self.job.job_id and update.fraction is not None:
            self.progress.setValue(int(update.fraction * 1000))
            self.progress.setFormat(f"%p %  {update.message}")

    def _on_finished(self, result) -> None:
        if self.job is None or result.job_id != self.job.job_id:
            return
        self.job = None
        self.result_status = result.status
        self.import_button.setEnabled(True)
        self.cancel_button.setText("Close")
        if result.status == "done":
            self.progress.setValue(1000)
            self.progress.setFormat("done")
            self.imported.emit(*result.value)
        else:
            text = result.error.message if result.error is not None else result.status
            self.progress.setFormat(text)
            self.description.setText(text)

    def done(self, r: int) -> None:
        if self.job is not None:
            self.job.cancel()
        try:
            self.runner.progressed.disconnect(self._on_progress)
            self.runner.finished.disconnect(self._on_finished)
        except (RuntimeError, TypeError):
            pass
        super().done(r)

"""The part File > Export and File > Import share: a format chosen from the plugins, that format's
options, and one job on the job runner (off the GUI thread) with progress and Cancel/Close.

Subclasses add the row that says where the data goes or comes from, build and submit the job in
:meth:`start`, and say what a finished job means in :meth:`_job_done`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
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


class FormatJobDialog(QDialog):
    """Format combo, options form, progress bar and a Run/Close row around one runner job.

    ``verb`` ("Export", "Import") names the button and the messages; ``kind`` picks the formats:
    those with an ``exporter`` or an ``importer``. The button is ``run_button``; subclasses keep
    their old name for it too (``export_button``, ``import_button``) since callers and tests use it.
    """

    def __init__(
        self,
        formats: list[FormatSpec],
        project: Project,
        runner,
        parent: QWidget | None,
        *,
        title: str,
        verb: str,
        kind: str,
    ):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.verb = verb
        self.formats = [f for f in formats if getattr(f, kind)]
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
        self._add_target_row(top)
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
        self.run_button = QPushButton(verb, self)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Close", self)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self._on_format()

    def _add_target_row(self, top: QFormLayout) -> None:
        """Add the row for where the data goes or comes from."""
        raise NotImplementedError

    # ---------------------------------------------------------------- choices
    @property
    def spec(self) -> FormatSpec | None:
        i = self.format_combo.currentIndex()
        return self.formats[i] if 0 <= i < len(self.formats) else None

    def set_format(self, format_id: str) -> None:
        i = self.format_combo.findData(format_id)
        if i < 0:
            raise ValueError(f"no {self.verb.lower()}er for format {format_id!r}")
        self.format_combo.setCurrentIndex(i)

    def _on_format(self) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
            self.form = None
        spec = self.spec
        if spec is None:
            self.description.setText(
                f"no {self.verb.lower()} formats are registered (is the formats plugin disabled?)"
            )
            self.run_button.setEnabled(False)
            return
        self.description.setText(spec.description)
        self.form = ParamForm(_FormatParams(spec), self)  # type: ignore[arg-type]
        self.form_holder.addWidget(self.form)

    # ---------------------------------------------------------------- running
    def start(self) -> int | None:
        raise NotImplementedError

    def _params(self, spec: FormatSpec, report: Callable[[str], None]) -> dict[str, Any] | None:
        """The form's values resolved, or None after ``report``-ing why they are wrong."""
        from vfmstudio.core.tools import ParamError

        try:
            return self.form.resolved() if self.form is not None else {}
        except ParamError as exc:
            report(f"{spec.id}: {exc}")
            return None

    def _submit(self, job, key: str, source: str) -> int:
        self.job = self.runner.submit(
            job, key=key, source=source, on_done=self._on_finished, on_progress=self._on_progress
        )
        self.run_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.progress.setValue(0)
        return self.job.job_id

    def _cancel_or_close(self) -> None:
        if self.job is not None:
            self.job.cancel()
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
        self.run_button.setEnabled(True)
        self.cancel_button.setText("Close")
        self._job_done(result)

    def _job_done(self, result) -> None:
        """React to this dialog's job ending ("done", "cancelled" or "error")."""
        raise NotImplementedError

    def _show_error(self, text: str) -> None:
        self.progress.setFormat(text)
        self.description.setText(text)

    def done(self, r: int) -> None:  # closing the dialog cancels a running job
        if self.job is not None:
            self.job.cancel()
        super().done(r)

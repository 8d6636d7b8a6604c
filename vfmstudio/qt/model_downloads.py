"""Model downloads for the window: one background thread of their own (never the inference thread),
results and progress delivered on the GUI thread through the job runner's queued signals.

One instance per window (``ModelDownloads.of(window)``), shared by the model manager and the download
offered on Run, so a download started in one shows its progress in the other.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QObject, Signal
from PySide6.QtWidgets import QComboBox

from vfmstudio.core.jobs import Job, JobContext, JobPartial, JobResult, JobRunner
from vfmstudio.qt.runner import QtJobRunner

THREAD_NAME = "vfmstudio-downloads"


class ModelDownloads(QObject):
    progressed = Signal(str, object)  # ref, vfmstudio.ml.download.DownloadProgress
    finished = Signal(str, object)  # ref, JobResult (status done/error/cancelled; error.kind names the error)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._core = JobRunner(thread_name=THREAD_NAME)
        self._runner = QtJobRunner(self._core, self)
        self._runner.partial.connect(self._on_partial)
        self._runner.finished.connect(self._on_finished)
        self._jobs: dict[str, Job] = {}
        self._refs: dict[int, str] = {}
        core = self._core
        # The worker thread is not a daemon: stop it (cancel is prompt; partial files stay for the next
        # session) when the window goes away or the application quits.
        self.destroyed.connect(lambda *_: core.shutdown(wait=True, timeout=5))
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @classmethod
    def of(cls, window: QObject) -> ModelDownloads:
        """The window's downloader, made on first use."""
        found = window.findChild(cls)
        return found if found is not None else cls(window)

    def start(self, ref: str) -> Job:
        """Download ``ref`` (or join the download already running for it)."""
        if ref in self._jobs:
            return self._jobs[ref]

        def job(ctx: JobContext):
            from vfmstudio.ml.hub import pull

            return str(pull(ref, progress=ctx.partial, cancel=ctx.cancel))

        handle = self._runner.submit(job, key=f"download:{ref}", source=f"download · {ref}")
        self._jobs[ref] = handle
        self._refs[handle.job_id] = ref
        return handle

    def cancel(self, ref: str) -> bool:
        job = self._jobs.get(ref)
        return job is not None and job.cancel()

    def is_active(self, ref: str) -> bool:
        return ref in self._jobs

    def status(self, ref: str) -> str | None:
        """ "queued" or "running" while the download exists, else None."""
        job = self._jobs.get(ref)
        return job.status if job is not None else None

    def shutdown(self, timeout: float = 5.0) -> bool:
        return self._core.shutdown(wait=True, timeout=timeout)

    # -- GUI thread
    def _on_partial(self, update: JobPartial) -> None:
        ref = self._refs.get(update.job_id)
        if ref is not None:
            self.progressed.emit(ref, update.value)

    def _on_finished(self, result: JobResult) -> None:
        ref = self._refs.pop(result.job_id, None)
        if ref is None:
            return
        self._jobs.pop(ref, None)
        if result.status == "done":
            _mark_cached(self.parent(), ref)
        self.finished.emit(ref, result)


def _mark_cached(window: QObject | None, ref: str) -> None:
    """Model boxes label their entries "· not downloaded" (tools_panel._model_label): say "· cached" now."""
    if window is None:
        return
    for combo in window.findChildren(QComboBox):
        index = combo.findData(ref)
        if index >= 0:
            combo.setItemText(index, combo.itemText(index).replace("· not downloaded", "· cached"))

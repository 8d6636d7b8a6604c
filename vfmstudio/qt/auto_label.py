"""Run › Run on All Images… / Run on Selected Images: the tool, model and parameters of the Tools
panel over the folder's images, into the project's pending store, as a background job.

The work is :class:`vfmstudio.session.folder_run.FolderRun` (the batch engine's plan and worker,
the same files as ``vfmstudio batch --into``) on the window's inference thread. The GUI thread
never hears from the run per image: a 100 ms timer drains the images finished since its last tick,
emits :attr:`AutoLabel.predicted` for each and redraws the status-bar panel once. Pausing stops
after the batch in progress; running the same settings again (Resume, or the menu) continues the
run, skipping what is done. A run a crash or a closed window left unfinished is offered in the
panel when its project opens (docs/adr/0175).

Contract with the review mode: ``predicted(key, entry)`` per finished image (project key,
:class:`~vfmstudio.core.pending.PendingEntry`) and ``run_finished(summary)`` once per run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QMessageBox

from vfmstudio.qt.auto_label_panel import AutoLabelPanel, FailuresDialog
from vfmstudio.qt.window_menus import add_action

if TYPE_CHECKING:
    from vfmstudio.core.jobs import JobResult
    from vfmstudio.session.folder_run import FolderRun, RunState, Survey

DRAIN_MS = 100  # how often finished images reach the GUI (one panel redraw per tick)
DRAIN_MAX = 500  # predicted signals per tick at most; the rest wait for the next tick
JOB_KEY = "auto-label"
DEFAULT_BATCH_SIZE = 8
#: A folder run is queued as jobs of this many batches, below user runs: a tool run on the image on
#: view waits for the chunk in progress, not for the whole folder.
CHUNK_BATCHES = 8
PRIORITY = -1  # below user runs (0), above feature prefetch (-10)


class AutoLabel(QObject):
    predicted = Signal(str, object)  # image key, PendingEntry (GUI thread, once per finished image)
    run_finished = Signal(object)  # summary dict (FolderRun.summary), once per run however it ended

    def __init__(self, window: Any):
        super().__init__(window)
        self.w = window
        self.run: FolderRun | None = None  # the run in progress
        self.last: FolderRun | None = None  # the last run of this window (Resume continues it)
        self.offered: RunState | None = None  # an unfinished run found on disk
        self.job: Any = None
        self.chunk_batches = CHUNK_BATCHES
        self.failures_dialog: FailuresDialog | None = None
        #: Asked before a run starts (tests answer instead of a modal dialog).
        self.confirm: Callable[[str], bool] = self._confirm_dialog
        self.panel = AutoLabelPanel(window)
        window.statusBar().addPermanentWidget(self.panel)
        self.panel.pause.clicked.connect(self.pause)
        self.panel.resume.clicked.connect(self.resume)
        self.panel.cancel.clicked.connect(self.cancel)
        self.panel.dismiss.clicked.connect(self.dismiss)
        self.panel.failures.clicked.connect(self.show_failures)
        self.timer = QTimer(self)
        self.timer.setInterval(DRAIN_MS)
        self.timer.timeout.connect(self._drain)
        menu = window.menus.run
        before = window.menus.actions["devices"]
        self.run_all_action = add_action(window, "Run on &All Images…", self.run_on_all)
        self.run_selected_action = add_action(window, "Run on &Selected Images", self.run_on_selected)
        menu.insertAction(before, self.run_all_action)
        menu.insertAction(before, self.run_selected_action)
        menu.insertSeparator(before)
        window.menus.actions["run_all"] = self.run_all_action
        window.menus.actions["run_selected"] = self.run_selected_action
        window.labelling.session.project_changed.connect(self.check_unfinished)
        self.check_unfinished()

    # ================================================================ starting
    @property
    def busy(self) -> bool:
        return self.run is not None

    def batch_size(self) -> int:
        try:
            return max(1, int(self.w.settings.value("auto_label/batch_size", DEFAULT_BATCH_SIZE)))
        except (TypeError, ValueError):
            return DEFAULT_BATCH_SIZE

    def run_on_all(self) -> bool:
        return self.survey(self.w.browser.paths())

    def run_on_selected(self) -> bool:
        paths = self.w.browser.selected_paths()
        if not paths and self.w.current_path is not None:
            paths = [self.w.current_path]
        return self.survey(paths)

    def _refuse(self, level: str, text: str) -> bool:
        self.w.messages.post(level, text)
        self.w.statusBar().showMessage(text, 5000)
        return False

    def current_spec(self):
        """The Tools panel's tool, model and parameters as a run spec, or a refusal's text."""
        from vfmstudio.core.tools import ParamError
        from vfmstudio.engines.worker import RunSpec

        tools = self.w.tools
        tool, form = tools.tool, tools.form
        if tool is None or form is None:
            return "choose a tool in the Tools panel first"
        if tool.inputs.value in ("pair", "text"):
            return f"{tool.id} does not take one image; runs on a folder need a tool that does"
        try:
            params = form.resolved()
        except ParamError as exc:
            return f"{tool.id}: {exc}"
        return RunSpec(
            tool=tool,
            params=params,
            model=tools.model_ref() or tool.default_model,
            out="",
            device=tools.device_combo.currentText(),
            precision=tools.precision_combo.currentText(),
            timeout=self.w.tool_timeout_s(),
        )

    def survey(self, paths: list[Path]) -> bool:
        """Find the images' project keys and what the same run already did (a background job),
        then confirm and start. False when refused at once."""
        from vfmstudio.session.folder_run import survey

        if self.busy:
            return self._refuse("warning", "a run on the folder is already going: pause or cancel it first")
        spec = self.current_spec()
        if isinstance(spec, str):
            return self._refuse("warning", spec)
        if not paths:
            return self._refuse("warning", "no images to run on: open a folder first")
        session = self.w.labelling.session
        if session.read_only:
            return self._refuse(
                "error",
                f"predictions are kept with the project, and {session.path.name} cannot be saved"
                f"{': ' + session.refused_reason if session.refused_reason else ''}",
            )
        project = session.project
        known = {rec.path: rec.key for rec in project.images.values()}
        project_path = project.path
        self.w.tasks.submit(
            lambda ctx: survey(spec, project_path, known, list(paths)),
            key="auto-label-survey",
            source="auto-label",
            on_done=lambda r: self._surveyed(spec, project, r),
        )
        self.w.statusBar().showMessage(f"preparing a run of {spec.tool.id} on {len(paths)} images…", 3000)
        return True

    def _surveyed(self, spec, project, result: JobResult) -> None:
        if result.status != "done":
            if result.error is not None:
                self.w.messages.post("error", f"auto-label: {result.error.message}", result.error.traceback)
            return
        session = self.w.labelling.session
        if session.project is not project:
            return  # another project opened meanwhile
        found: Survey = result.value
        if self._add_records(found):
            session.save()  # the store names images by path: the project must list them too
        n, done = len(found.keys), found.done
        if not n:
            self._refuse("warning", "none of these images is inside the project's folder")
            return
        if done >= n:
            self._refuse("info", f"{spec.tool.id}: all {n} images are already done with these settings")
            return
        text = (
            f"Run {spec.tool.title} ({spec.tool.id}) with model {spec.model or '(none)'} on {n} images?\n\n"
            f"{done} already done with the same settings will be skipped; {n - done} to run.\n"
            f"Predictions stay pending until you review them."
        )
        if not self.confirm(text):
            return
        from vfmstudio.qt.download_dialog import offer_download

        if not offer_download(self.w, spec.model, lambda: self.start(spec, found.keys)):
            self.start(spec, found.keys)  # else it starts once the model is downloaded

    def _add_records(self, found: Survey) -> bool:
        images = self.w.labelling.session.project.images
        added = False
        for rec in found.new_records:
            if rec.key not in images:
                images[rec.key] = rec
                added = True
        return added

    def _confirm_dialog(self, text: str) -> bool:
        answer = QMessageBox.question(
            self.w,
            "Run on images",
            text,
            QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Ok,
        )
        return answer == QMessageBox.StandardButton.Ok

    def _services(self):
        """The window's model cache (a model is loaded once for both), and a batch feature cache
        that drops each batch's features when the next one starts."""
        from vfmstudio.engines.worker import BatchFeatureCache, batch_feature_budget
        from vfmstudio.execution import Services, default_services

        models = (self.w._services or default_services()).models
        return Services(models=models, features=BatchFeatureCache(batch_feature_budget()))

    def start(self, spec, keys: list[str], *, batch_size: int | None = None) -> FolderRun:
        """Queue the run on the inference thread (no question asked)."""
        from vfmstudio.session.folder_run import FolderRun

        session = self.w.labelling.session
        session.flush()  # a plugin tool may end the process: nothing unsaved is lost with it
        run = FolderRun(
            spec,
            session.project,
            keys,
            batch_size=batch_size or self.batch_size(),
            services=self._services(),
        )
        self.run, self.offered = run, None
        self._submit_chunk(run)
        self.panel.show_running(spec.tool.id, run.counts())
        self.timer.start()
        self.w.messages.post("info", f"{spec.tool.id}: running on {len(run.keys)} images")
        return run

    def _submit_chunk(self, run: FolderRun) -> None:
        n = self.chunk_batches * run.batch_size
        self.job = self.w.runner.submit(
            lambda ctx: run.execute(ctx.cancel, max_images=n),
            key=JOB_KEY,
            source=f"auto-label · {run.spec.tool.id}",
            priority=PRIORITY,
            on_done=lambda r: self._on_done(run, r),
        )

    # ================================================================ while it runs
    def _drain(self, limit: int | None = DRAIN_MAX) -> int:
        """Emit ``predicted`` for the images finished since the last tick; redraw the panel once."""
        run = self.run
        if run is None:
            return 0
        # Keys name images of the run's project: after another project opened they mean nothing.
        same_project = run.project_path == self.w.labelling.session.path
        n = 0
        while run.finished and (limit is None or n < limit):
            key, entry = run.finished.popleft()
            if same_project:
                self.predicted.emit(key, entry)
            n += 1
        self.panel.show_running(run.spec.tool.id, run.counts(), pausing=run.pausing)
        return n

    def pause(self) -> None:
        if self.run is not None:
            self.run.pause()
            self.panel.show_running(self.run.spec.tool.id, self.run.counts(), pausing=True)

    def cancel(self) -> None:
        if self.run is not None and self.job is not None:
            self.run.request_cancel()
            self.job.cancel()

    def _on_done(self, run: FolderRun, result: JobResult) -> None:
        from vfmstudio.session.folder_run import CANCELLED, DONE, FAILED, INTERRUPTED, PAUSED, RUNNING

        if run.more and result.status == "done" and not run.halt_if_asked():
            self._submit_chunk(run)  # the next chunk, behind whatever the user queued meanwhile
            return
        if run.status in (RUNNING, "queued"):  # the chunk's job was dropped before it ran
            if not run.halt_if_asked():
                run.stop(FAILED if result.status == "error" else INTERRUPTED)
        self._drain(limit=None)  # every predicted before run_finished
        self.timer.stop()
        self.run, self.job, self.last = None, None, run
        summary = run.summary()
        if result.status == "error" and run.status not in (FAILED,):
            run.status = summary["status"] = FAILED
            summary["reason"] = result.error.message if result.error is not None else "failed"
        failed, done = summary["failed"], summary["done"]
        tool = run.spec.tool.id
        todo = summary["images"] - summary["skipped"]
        if run.status == DONE:
            text = f"{tool}: {done} predicted, {failed} failed, {summary['skipped']} done before"
            self.panel.show_stopped(text, failed, resumable=False)
            self.w.messages.post("info", f"{text} ({summary['images_per_s']:.1f} images/s)")
        elif run.status == FAILED:
            text = f"{tool}: stopped: {summary['reason']}"
            self.panel.show_stopped(text, failed, resumable=False)
            self.w.messages.post("error", text)
        else:
            word = {PAUSED: "paused", CANCELLED: "cancelled"}.get(run.status, "interrupted")
            text = f"{tool}: {word} at {done + failed}/{todo}"
            self.panel.show_stopped(text, failed, resumable=True)
            self.w.messages.post("info", f"{text}; Resume continues, skipping what is done")
        self.run_finished.emit(summary)

    # ================================================================ resuming
    def resume(self) -> bool:
        """Continue the last run of this window, or the unfinished run offered from disk."""
        if self.busy:
            return False
        if self.last is not None and self.offered is None:
            last = self.last
            return self.start(last.spec, last.keys, batch_size=last.batch_size) is not None
        if self.offered is not None:
            return self.resume_state(self.offered)
        return False

    def resume_state(self, state: RunState) -> bool:
        """Rebuild the run's spec from its manifest (the engine then checks it is the same run)."""
        from vfmstudio.core.tools import ParamError
        from vfmstudio.engines.outputs import OutputError, read_manifest
        from vfmstudio.engines.worker import RunSpec

        host = self.w.host
        try:
            tool = host.tool(state.tool) if host is not None else None
        except KeyError:
            tool = None
        if tool is None:
            return self._refuse("error", f"cannot resume: the tool {state.tool} is not loaded")
        store = self._store()
        try:
            manifest = read_manifest(store.run_dir(state.run))
            params = tool.resolve_params(manifest.get("params") or {})
        except (OutputError, ParamError) as exc:
            return self._refuse("error", f"cannot resume {state.run}: {exc}")
        spec = RunSpec(
            tool=tool,
            params=params,
            model=state.model,
            out="",
            device=state.device,
            precision=state.precision,
            timeout=self.w.tool_timeout_s(),
        )
        keys = [k for k in state.keys if k in self.w.labelling.session.project.images]
        if not keys:
            return self._refuse(
                "warning", f"cannot resume {state.run}: its images are no longer in the project"
            )
        self.start(spec, keys, batch_size=state.batch_size)
        return True

    def _store(self):
        from vfmstudio.core.pending import PendingStore

        return PendingStore(self.w.labelling.session.path)

    def check_unfinished(self) -> RunState | None:
        """A project opened: offer its most recent unfinished run in the panel (no dialog)."""
        from vfmstudio.session.folder_run import predictions_written, unfinished_runs

        if self.busy:
            return None
        session = self.w.labelling.session
        self.offered = None
        self.last = None
        found = [] if session.read_only else unfinished_runs(self._store())
        if not found:
            self.panel.setVisible(False)
            return None
        state = self.offered = found[0]
        written = predictions_written(self._store(), state.run)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        self.panel.show_offer(
            f"unfinished run of {state.tool} ({state.status}): {min(written, len(state.keys))}"
            f"/{len(state.keys)} images done{more}"
        )
        return state

    def dismiss(self) -> None:
        """Hide the panel; an offered run is not offered again."""
        from vfmstudio.session.folder_run import DISMISSED, set_status

        if self.offered is not None:
            set_status(self._store(), self.offered.run, DISMISSED)
            self.offered = None
            self.check_unfinished()
            return
        self.panel.setVisible(False)

    # ================================================================ failures
    def current_run_id(self) -> str | None:
        run = self.run or self.last
        if run is not None:
            return run.run
        return self.offered.run if self.offered is not None else None

    def failures(self) -> list[dict]:
        run = self.current_run_id()
        return self._store().failures(run) if run is not None else []

    def show_failures(self) -> FailuresDialog:
        run = self.current_run_id() or ""
        self.failures_dialog = FailuresDialog(f"Failures of {run}", self.failures(), self.w)
        self.failures_dialog.show()
        return self.failures_dialog

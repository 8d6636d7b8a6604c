"""The thin Qt side of the session: submits the session's run requests and delivers each job's
outcome to the callbacks given at submit time (docs/adr/0120).

The rules (which images, live or not, which tab a result belongs to) are in
:mod:`vfmstudio.session`; this module only turns requests into jobs and finished jobs into what
the window shows. The window reaches it through :class:`RunController`'s public methods.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer

from vfmstudio.session.model import Session, placement_of, points_param, text_param
from vfmstudio.session.requests import LIVE_PREFIX, Outcome, Refusal, RunRequest

if TYPE_CHECKING:
    from vfmstudio.core.jobs import JobContext, JobPartial, JobProgress, JobResult
    from vfmstudio.core.results import Prediction

log = logging.getLogger(__name__)
#: Words in a run's error that mean "the weights are not here": the model manager can fetch them.
MODEL_MISSING_KINDS = ("ModelNotAvailableError", "GatedModelError")


def model_is_missing(result: JobResult) -> bool:
    from vfmstudio.ml.errors import PULL_COMMAND

    error = result.error
    return error is not None and (error.kind in MODEL_MISSING_KINDS or PULL_COMMAND in error.message)


class RunController(QObject):
    """Runs tools for the window. ``jobs`` maps each job in flight to its request.

    ``on_model_missing(request, message) -> bool`` is the seam for the model manager: called when a
    run failed because its model is not downloaded; returning True means it took over (offered the
    download and will call :meth:`submit` again), so no error is posted.
    """

    def __init__(self, window: Any, session: Session, runner: Any, services: Any = None):
        super().__init__(window)
        self.w = window
        self.session = session
        self.runner = runner
        self.services = services
        self.jobs: dict[int, RunRequest] = {}
        self.last_run_job: int | None = None
        self.on_model_missing: Callable[[RunRequest, str], bool] | None = None
        self._gc_frozen: set[tuple[str, bool]] = set()
        self.prefetch_request: Any = None
        # Edits rerun after a short pause, so typing "cat, dog" does not queue a run per key.
        self.edit_timer = QTimer(self)
        self.edit_timer.setSingleShot(True)
        self.edit_timer.setInterval(250)
        self.edit_timer.timeout.connect(self.rerun_after_edit)

    # ================================================================ requests from the window
    def form_request(self, rule: Callable[..., Outcome], **kwargs: Any) -> Outcome:
        """Apply ``rule`` to the tool and parameters the Tools dock shows."""
        from vfmstudio.core.tools import ParamError

        tools = self.w.tools
        tool, form = tools.tool, tools.form
        if tool is None or form is None:
            return rule(None, {}, None, **kwargs)
        try:
            params = form.resolved()
        except ParamError as exc:
            return Refusal(f"{tool.id}: {exc}", "error")
        self.session.device = tools.device_combo.currentText()
        self.session.precision = tools.precision_combo.currentText()
        return rule(tool, params, tools.model_ref(), **kwargs)

    def handle(self, outcome: Outcome) -> int | None:
        """Submit a request, or tell the user what is missing; returns the job id."""
        if isinstance(outcome, Refusal):
            self.w.messages.post(outcome.level, outcome.message)
            self.w.statusBar().showMessage(outcome.message, 5000)
            return None
        return self.submit(outcome) if outcome is not None else None

    def run_current_tool(self, live: bool = False) -> int | None:
        from vfmstudio.qt.download_dialog import offer_download

        rule = self.session.edit_request if live else self.session.run_request
        outcome = self.form_request(rule)
        if (
            isinstance(outcome, RunRequest)
            and not live
            and offer_download(self.w, outcome.model, lambda: self.handle(outcome))
        ):
            return None  # runs once the model is downloaded
        return self.handle(outcome)

    def rerun_after_edit(self) -> None:
        self.handle(self.form_request(self.session.edit_request))

    def on_params_edited(self) -> None:
        if self.w.tools.live_check.isChecked():
            self.edit_timer.start()

    def point_clicked(self, x: float, y: float, view: str, image_ids: tuple[str, ...] = ()) -> int | None:
        """A click fills the tool's point parameter and runs it (a live rerun once it ran there);
        the result stays on the tab the click was made on."""
        tools = self.w.tools
        name = points_param(tools.tool)
        if tools.tool is not None and name is None:
            return None
        if name is not None and tools.form is not None:
            tools.form.set_value(name, ((round(x, 1), round(y, 1)),))
        return self.handle(self.form_request(self.session.click_request, view=view, image_ids=image_ids))

    def ask(self, question: str) -> int | None:
        name = text_param(self.w.tools.tool)
        if name is not None and self.w.tools.form is not None:
            self.w.tools.form.set_value(name, question)
        return self.handle(self.form_request(self.session.question_request))

    def threshold_moved(self, value: float) -> None:
        outcome = self.session.threshold_request(value)
        if isinstance(outcome, RunRequest):
            self._mirror_in_form(outcome, "threshold")
        self.handle(outcome)

    def layer_scrubbed(self, layer_id: int, index: int) -> None:
        layer = self.w.layer_store.find(layer_id)
        if layer is None:
            return
        outcome = self.session.scrub_request(layer.prediction, index)
        if isinstance(outcome, RunRequest):
            self._mirror_in_form(outcome, "layer")
        self.handle(outcome)

    def _mirror_in_form(self, request: RunRequest, name: str) -> None:
        tools = self.w.tools
        if tools.tool is not None and tools.tool.id == request.tool.id and tools.form is not None:
            tools.form.set_value(name, request.params[name])

    # ================================================================ jobs
    def submit(self, request: RunRequest) -> int:
        """Queue ``request`` on the inference thread; its outcome comes back to this object only.

        A rerun of the same tool on the same images replaces the one still queued or running (the
        request's key); runs on other images queue up behind it and each lands on its own image.
        """
        store, services = self.w.images, self.services
        from vfmstudio.qt.work_guard import save_before_tool

        save_before_tool(
            self.w.labelling.session.flush, request.tool, live=request.live
        )  # a tool may end the process

        def job(ctx: JobContext) -> tuple[Prediction, dict]:
            from vfmstudio.execution import run_tool
            from vfmstudio.qt.overlays import prepare_rasters

            images = [store.load(p) for p in request.paths]
            ctx.cancel.raise_if_cancelled()
            prediction = run_tool(
                request.tool,
                images,
                request.params,
                model=request.model,
                device=request.device,
                precision=request.precision,
                cancel=ctx.cancel,
                on_progress=ctx.progress,
                on_partial=ctx.partial,
                services=services,
            )
            ctx.cancel.raise_if_cancelled()
            # Colour the masks and maps here, so the GUI thread only wraps finished arrays.
            return prediction, prepare_rasters(prediction)

        tool = request.tool
        handle = self.runner.submit(
            job,
            key=request.key,
            source=f"{tool.plugin or tool.family} · {tool.id}",
            timeout=self.w.tool_timeout_s(),
            on_done=lambda r: self._on_done(request, r),
            on_progress=lambda u: self._on_progress(request, u),
            on_partial=lambda u: self._on_partial(request, u),
        )
        self.jobs[handle.job_id] = request
        if not request.live:
            self.last_run_job = handle.job_id
            self.w.tools.set_running(True)
            self.w.tools.progress.setFormat(f"{tool.title} · {request.paths[0].name}: queued")
        self.w.tool_memory.remember_run(request)
        from vfmstudio.prefetch import PrefetchRequest

        # The next images' features are prepared behind this run (docs/adr/0090); a failed run
        # cancels them (they would only fail the same way).
        self.prefetch_request = PrefetchRequest(
            tool, dict(request.params), request.model, request.device, request.precision
        )
        self.w.schedule_prefetch()
        return handle.job_id

    def cancel_all(self) -> int:
        # Cancel also means "give the CPU back": background prefetch stops until the next run.
        self.prefetch_request = None
        self.w.prefetcher.cancel()
        n = self.runner.cancel_where(lambda job: True)
        if n:
            self.w.messages.post("info", f"cancelling {n} job{'s' if n != 1 else ''}")
        return n

    def cancel_live(self) -> None:
        """Live reruns belong to the view that asked for them: a new image makes them stale."""
        self.runner.cancel_where(lambda job: (job.key or "").startswith(LIVE_PREFIX))

    def _on_progress(self, request: RunRequest, update: JobProgress) -> None:
        if update.job_id == self.last_run_job:
            where = f"{request.tool.title} · {request.paths[0].name}"
            self.w.tools.show_progress(
                update.fraction, f"{where}: {update.message}" if update.message else where
            )

    def _on_partial(self, request: RunRequest, update: JobPartial) -> None:
        image_id = self.w.image_id_of(request.paths[0])
        if image_id is None:
            return
        results = self.w.results
        results.text.stream(image_id, request.tool.id, update.value)
        if results.currentWidget() is not results.text_page:
            results.setCurrentWidget(results.text_page)
            self.w.dock_results.raise_()

    def _on_done(self, request: RunRequest, result: JobResult) -> None:
        self.jobs.pop(result.job_id, None)
        if result.status == "done" and "torch" in sys.modules:
            self.freeze_long_lived_objects()
        if result.job_id == self.last_run_job:
            self.w.tools.show_finished(result.status)
        if result.status != "done":
            self._not_done(request, result)
            return
        prediction, rasters = result.value
        self.add_prediction(prediction, rasters, origin=request.origin)
        if not request.live:
            n = len(prediction.results)
            self.w.messages.post(
                "info",
                f"{request.tool.id} on {request.names}: {n} result{'s' if n != 1 else ''} "
                f"in {result.timings.run_s:.2f} s on {prediction.device or 'cpu'}"
                f"{_why_empty(prediction)}",
            )
            for note in prediction.notes:  # how the run differed from what was asked
                self.w.messages.post("warning", f"{request.tool.id}: {note}")

    def _not_done(self, request: RunRequest, result: JobResult) -> None:
        tool = request.tool
        first = self.w.image_id_of(request.paths[0])
        if first is not None:
            if result.status == "cancelled":
                self.w.results.text.keep_stream(first, "(cancelled)")  # what was generated stays
            else:
                self.w.results.text.drop_stream(first)
        if result.status == "error" and result.error is not None:
            self.prefetch_request = None
            self.w.prefetcher.cancel()
            if (
                model_is_missing(result)
                and self.on_model_missing is not None
                and self.on_model_missing(request, result.error.message)
            ):
                return
            self.w.messages.post("error", result.error.message, result.error.traceback)
            self.w.dock_messages.raise_()
            self.w.statusBar().showMessage(f"{tool.id} failed: see Messages", 5000)
        elif result.status == "cancelled" and not request.live:
            self.w.messages.post("info", f"{tool.id} cancelled")

    def add_prediction(
        self, prediction: Prediction, rasters: dict | None = None, *, origin: str | None = None
    ) -> None:
        """Attach a prediction's results to the images they belong to (whatever is on view), and
        bring forward the view and result tab that show it."""
        w = self.w
        self.session.record(prediction)
        w.layer_store.add_prediction(prediction, rasters)
        if w.results.add_prediction(prediction):
            w.dock_results.raise_()
        if prediction.device:
            w.tools.show_device(prediction.device, prediction.precision, "last run")
            w.device_status.setText(f"device: {prediction.device} · {prediction.precision or 'auto'}")
        w.views.show_placement(placement_of(prediction, origin), prediction)  # type: ignore[arg-type]
        if self.session.current_id in prediction.image_ids:
            self.update_histogram()

    def update_histogram(self) -> None:
        found = self.session.histogram_prediction()
        box = self.w.layers.histogram_box
        if found is None:
            box.setVisible(False)
            self.w.layers.histogram.set_histogram(None)
            return
        prediction, hist = found
        threshold = prediction.params.get("threshold", hist.threshold)
        self.w.layers.histogram.set_histogram(hist, threshold if isinstance(threshold, int | float) else None)
        box.setTitle(f"Live threshold · {prediction.tool} (drag)")
        box.setVisible(True)

    def freeze_long_lived_objects(self) -> None:
        """Move everything alive now out of the cyclic garbage collector's reach (``gc.freeze``).

        Importing Qt, numpy, torch and transformers leaves a few hundred thousand long-lived objects;
        every full collection walks them all while holding the GIL, which measured 0.2-0.5 s on
        a 2-core box: a frozen GUI, whichever thread triggers it. Done once after start-up and once
        after the first run that imported torch, these collections become cheap again.
        """
        marker = ("plugins", "torch" in sys.modules)
        if marker in self._gc_frozen:
            return
        self._gc_frozen.add(marker)
        gc.freeze()


def _why_empty(prediction: Prediction) -> str:
    """A run that found nothing says why, when the tool said so (e.g. no <seg> token generated)."""
    from vfmstudio.core.results import Detections, Masks, Text

    items = [r for r in prediction.results if isinstance(r, Masks | Detections)]
    if not items or any(len(r) for r in items):
        return ""
    notes = [t.text for t in prediction.of_type(Text) if t.text]
    reason = notes[0] if notes else "the model found nothing for these parameters"
    return f" (0 items: {reason})"

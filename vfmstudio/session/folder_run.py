"""A run of one tool over a project's images into its pending store, as the window drives it
(Run › Run on All Images…): the batch engine's plan and worker, plus what the window needs around
them, Qt-free so it is tested without a window.

- :func:`survey` (a background job): which project keys the chosen files have, records for the
  files not yet in the project, and how many the same run already finished (they are skipped).
- :class:`FolderRun`: the job's body. It plans with
  :func:`~vfmstudio.engines.into_project.plan_into_project` and runs
  :func:`~vfmstudio.engines.local.run_local`, so the files written equal a ``vfmstudio batch --into``
  run's. Finished images queue up in :attr:`FolderRun.finished` for the GUI to drain on a timer
  (the worker never posts an event per image); pausing stops after the batch in progress. The
  window queues it as jobs of a few batches (``execute(max_images=)``), so a tool run the user
  asks for meanwhile goes in between.
- The run's state (``state.json`` in its folder of the pending store, written atomically): which
  images were asked for and whether the run is running, paused, cancelled, interrupted or done.
  A run whose state still says "running" was stopped by a crash or a kill; :func:`unfinished_runs`
  lists what the window offers to resume (docs/adr/0175).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vfmstudio.core.atomic import atomic_write_json
from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.image import ImageLoadError
from vfmstudio.core.pending import PendingEntry, PendingStore, PendingStoreError, entry_for, run_id_for
from vfmstudio.core.project import ImageRecord, Project, ProjectError

STATE = "state.json"
RUNNING, PAUSED, CANCELLED, INTERRUPTED, DONE, FAILED, DISMISSED = (
    "running",
    "paused",
    "cancelled",
    "interrupted",
    "done",
    "failed",
    "dismissed",
)
#: States the window offers to resume when the project opens: stopped before the end, not by the
#: tool failing on everything (that would only fail again) and not dismissed by the user.
RESUMABLE = frozenset({RUNNING, PAUSED, CANCELLED, INTERRUPTED})
_STATUSES = frozenset({RUNNING, PAUSED, CANCELLED, INTERRUPTED, DONE, FAILED, DISMISSED})


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------- state.json


@dataclass
class RunState:
    """What a restarted window needs to continue a run: the rest (tool, model, parameters) is in
    the run's manifest, which the engine checks on resume."""

    run: str
    tool: str
    model: str | None
    keys: list[str]  # project image keys asked for, in order
    status: str
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8
    done: int = 0  # counts of the last session of the run
    failed: int = 0
    skipped: int = 0
    reason: str = ""
    updated: str = field(default_factory=_now)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> RunState:
        """Raises ValueError for anything but a state this module wrote."""
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        keys, status = obj.get("keys"), obj.get("status")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("keys: expected a list of image keys")
        if status not in _STATUSES:
            raise ValueError(f"status: unknown value {status!r}")
        model = obj.get("model")
        return cls(
            run=str(obj["run"]),
            tool=str(obj["tool"]),
            model=None if model is None else str(model),
            keys=list(keys),
            status=str(status),
            device=str(obj.get("device", "auto")),
            precision=str(obj.get("precision", "auto")),
            batch_size=max(1, int(obj.get("batch_size", 8))),
            done=int(obj.get("done", 0)),
            failed=int(obj.get("failed", 0)),
            skipped=int(obj.get("skipped", 0)),
            reason=str(obj.get("reason", "")),
            updated=str(obj.get("updated", "")),
        )


def state_path(store: PendingStore, run: str) -> Path:
    return store.run_dir(run) / STATE


def write_state(store: PendingStore, state: RunState) -> None:
    state.updated = _now()
    atomic_write_json(state_path(store, state.run), state.to_json(), indent=1)


def read_state(store: PendingStore, run: str) -> RunState | None:
    """The run's state; None when it has none or it cannot be read (a run from ``vfmstudio batch
    --into`` has none: the command line resumes it itself)."""
    try:
        with open(state_path(store, run), encoding="utf-8") as fp:
            state = RunState.from_json(json.load(fp))
    except (OSError, ValueError, KeyError, TypeError, PendingStoreError):
        return None
    return state if state.run == run else None


def unfinished_runs(store: PendingStore) -> list[RunState]:
    """Runs to offer for resuming, the most recently updated first."""
    found = [s for r in store.runs() if (s := read_state(store, r.id)) is not None and s.status in RESUMABLE]
    return sorted(found, key=lambda s: s.updated, reverse=True)


def set_status(store: PendingStore, run: str, status: str) -> bool:
    """Change a stored run's status (Dismiss); False when it has no readable state."""
    state = read_state(store, run)
    if state is None:
        return False
    state.status = status
    write_state(store, state)
    return True


def predictions_written(store: PendingStore, run: str) -> int:
    """Finished images of a run (its prediction files), without reading any."""
    return len(store.prediction_keys(run))


# ---------------------------------------------------------------------------------- survey


@dataclass
class Survey:
    """The chosen files as project images, and how much of the run is already done."""

    run: str
    keys: list[str]  # in the order asked for
    new_records: list[ImageRecord]  # files not yet in the project (the GUI thread adds them)
    done: int  # images the same run already predicted from the current file (skipped)


def survey(
    spec: Any, project_path: Path, known: dict[str, str], paths: Iterable[str | os.PathLike[str]]
) -> Survey:
    """Runs in a background job: nothing of the live project is touched. ``known``: the project's
    image paths (relative) -> keys. A file that cannot be decoded still becomes a record, so the
    run lists it as a failure instead of leaving it out silently."""
    from vfmstudio.engines.into_project import item_for
    from vfmstudio.engines.outputs import MANIFEST, BatchOutput
    from vfmstudio.engines.sources import Item

    root = Path(project_path).absolute().parent.resolve()
    taken = set(known.values())
    keys: list[str] = []
    new: list[ImageRecord] = []
    items: list[Item] = []
    seen: set[str] = set()
    for p in paths:
        path = Path(p).absolute()
        try:
            rel = Path(os.path.relpath(path.resolve(), root)).as_posix()
        except ValueError:  # another drive (Windows)
            continue
        if rel.startswith("../") or rel in seen:
            continue  # outside the project folder: the store keeps paths relative to it
        seen.add(rel)
        key = known.get(rel)
        if key is None:
            rec = _record(Path(project_path), path, rel)
            if rec is None or rec.key in taken:
                continue
            taken.add(rec.key)
            new.append(rec)
            key = rec.key
        keys.append(key)
        items.append(item_for(root, rel))
    run = run_id_for(spec.tool.id, spec.model, spec.params)
    store = PendingStore(project_path)
    output = BatchOutput(store.run_dir(run))
    done = sum(1 for it in items if output.is_done(it)) if (output.root / MANIFEST).exists() else 0
    return Survey(run, keys, new, done)


def _record(project_path: Path, path: Path, rel: str) -> ImageRecord | None:
    try:  # a one-image scratch project: Project.add_image scans the records it already has
        return Project(project_path).add_image(path)
    except (ImageLoadError, ProjectError):
        pass
    except OSError:
        return None  # gone since it was listed
    try:
        st = path.stat()
    except OSError:
        return None
    return ImageRecord(rel, rel, "", 0, 0, st.st_size, st.st_mtime_ns)


# ---------------------------------------------------------------------------------- the run


class FolderRun:
    """One run of ``spec`` over ``keys`` of ``project``; :meth:`execute` is the job's body.

    Built on the GUI thread (it takes the image records it needs, so the job never reads the live
    project's dict); everything else here is safe to call from any thread. ``execute(max_images=N)`` runs
    the next N images and returns with ``summary()["more"]`` set while some are left, so the caller
    can queue the rest as another job and let other jobs of the same thread run in between.
    """

    def __init__(
        self,
        spec: Any,
        project: Project,
        keys: Iterable[str],
        *,
        batch_size: int = 8,
        services: Any = None,
        workers: int | None = None,
    ):
        self.keys = [k for k in keys if k in project.images]
        self.view = Project(project.path)  # the planning view: just the records asked for (the
        self.view.images = {k: project.images[k] for k in self.keys}  # job reads their paths only)
        self.key_of = {rec.path: rec.key for rec in self.view.images.values()}
        self.spec = spec
        self.batch_size = batch_size
        self.services = services
        self.workers = workers
        self.run = run_id_for(spec.tool.id, spec.model, spec.params)
        self.project_path = project.path
        self.store = PendingStore(project.path)
        #: (image key, entry) per finished image, appended by the job, drained by the GUI.
        self.finished: deque[tuple[str, PendingEntry]] = deque()
        self.plan: Any = None
        self.status = "queued"
        self.reason = ""
        self._left: list = []  # items not yet given to the engine
        self._images = len(self.keys)
        self._skipped = 0
        self._written = 0  # predictions written (counted by the sink: each image as it is done)
        self._failed = 0  # of the chunks that ended (the engine books failures per batch)
        self._live: Any = None  # the engine's Progress of the chunk running now
        self._started: float | None = None
        self._counts_lock = threading.Lock()
        self._pause = threading.Event()
        self._cancel = threading.Event()

    # -- requests (any thread) ------------------------------------------------------------
    def pause(self) -> None:
        """Stop after the batch in progress; :meth:`execute` ends in ``Cancelled``, status paused."""
        self._pause.set()

    def request_cancel(self) -> None:
        """Marks a cancel as the user's; the caller fires the job's token."""
        self._cancel.set()

    @property
    def pausing(self) -> bool:
        return self._pause.is_set()

    @property
    def more(self) -> bool:
        """Images are left for another :meth:`execute`."""
        return self.status == RUNNING and bool(self._left)

    def halt_if_asked(self) -> bool:
        """Between two chunks: a pause or cancel asked meanwhile ends the run here."""
        if self._cancel.is_set():
            self._stop(CANCELLED)
        elif self._pause.is_set():
            self._stop(PAUSED)
        else:
            return False
        return True

    # -- the job ---------------------------------------------------------------------------
    def execute(self, cancel: CancelToken, *, max_images: int | None = None) -> dict:
        """Plan (first call), run the next ``max_images`` images (all when None), and keep
        ``state.json`` current; returns :meth:`summary`. Raises what ``run_local`` raises
        (``Cancelled`` for a pause or a cancel, ``BatchError``)."""
        from vfmstudio.engines.into_project import plan_into_project
        from vfmstudio.engines.job import BatchError
        from vfmstudio.engines.local import run_local

        if self.plan is None:
            self.status = RUNNING
            try:
                plan = plan_into_project(self.spec, self.view, self.keys, batch_size=self.batch_size)
            except BatchError as exc:
                self.status, self.reason = FAILED, str(exc)
                raise
            self.plan, self._left = plan, list(plan.todo)
            self._images, self._skipped = len(plan.source.items), plan.skipped
            self._started = time.perf_counter()
            self._write_state(RUNNING)
        n = len(self._left) if max_images is None else max(1, max_images)
        chunk, self._left = self._left[:n], self._left[n:]

        def on_update(progress) -> None:
            self._live = progress
            if self._pause.is_set():
                # Called after each recorded outcome, i.e. once the batch in progress has run:
                # the engine stops before it runs the next one.
                cancel.cancel("paused")

        try:
            progress = run_local(
                replace(self.plan, todo=chunk),
                workers=self.workers,
                cancel=cancel,
                on_update=on_update,
                services=self.services,
                sink=self._sink(),
            )
        except Cancelled:
            self._fold()
            status = PAUSED if self._pause.is_set() else CANCELLED if self._cancel.is_set() else INTERRUPTED
            self._stop(status)
            raise
        except BatchError as exc:
            self._fold()
            self._stop(FAILED, str(exc))
            raise
        except BaseException as exc:
            self._fold()
            self._stop(INTERRUPTED, f"{type(exc).__name__}: {exc}")
            raise
        self._fold(progress)
        if self._left and not self.halt_if_asked():
            return self.summary()  # status still running: more to do
        if not self._left:
            self._stop(DONE)
            self.plan.output.write_summary(self.summary())
        return self.summary()

    def _sink(self):
        from vfmstudio.engines.into_project import sink_for

        write = sink_for(self.plan)

        def sink(item, prediction, stat):
            path = write(item, prediction, stat)
            self.finished.append((self.key_of[item.rel], entry_for(self.run, item.key, item.rel, prediction)))
            with self._counts_lock:
                self._written += 1
            return path

        return sink

    def _fold(self, progress: Any = None) -> None:
        """Add the chunk's failures to the run's."""
        with self._counts_lock:
            p = progress or self._live
            if p is not None:
                self._failed += p.failed
            self._live = None

    def stop(self, status: str, reason: str = "") -> None:
        """Record how the run ended (its job was dropped before it ran, say)."""
        self._stop(status, reason)

    def _stop(self, status: str, reason: str = "") -> None:
        self.status, self.reason = status, reason
        try:
            self._write_state(status)
        except OSError:
            pass  # a full disk: the state stays "running", which still offers a resume

    def _write_state(self, status: str) -> None:
        c = self.counts()
        write_state(
            self.store,
            RunState(
                run=self.run,
                tool=self.spec.tool.id,
                model=self.spec.model,
                keys=self.keys,
                status=status,
                device=self.spec.device,
                precision=self.spec.precision,
                batch_size=self.batch_size,
                done=c["done"],
                failed=c["failed"],
                skipped=c["skipped"],
                reason=self.reason,
            ),
        )

    # -- reading (any thread) ----------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self._started if self._started is not None else 0.0

    def counts(self) -> dict:
        """done/failed/skipped/images, images per second and seconds left, as of now."""
        with self._counts_lock:
            live = self._live
            done = self._written  # not the engine's count: it books a batch once all of it ran
            failed = self._failed + (live.failed if live is not None else 0)
        elapsed = self.elapsed()
        rate = (done + failed) / elapsed if elapsed > 0 else 0.0
        left = self._images - self._skipped - done - failed
        return {
            "images": self._images,
            "skipped": self._skipped,
            "done": done,
            "failed": failed,
            "rate": rate,
            "eta": left / rate if rate > 0 else None,
        }

    def summary(self) -> dict:
        """What ``run_finished`` carries (the keys of ``vfmstudio batch --json`` plus run, status
        and ``more``: images left for another chunk)."""
        c = self.counts()
        return {
            "run": self.run,
            "status": self.status,
            "reason": self.reason,
            "more": self.more,
            "engine": "window",
            "tool": self.spec.tool.id,
            "model": self.spec.model,
            "images": c["images"],
            "skipped": c["skipped"],
            "done": c["done"],
            "failed": c["failed"],
            "elapsed_s": round(self.elapsed(), 3),
            "images_per_s": round(c["rate"], 3),
            "finished": _now(),
        }

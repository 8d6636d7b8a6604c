"""Background feature prefetch: stepping through a folder finds the next images' features ready.

When the user opens an image, :class:`Prefetcher` queues the tool's batched ``prepare`` (the same
function batch runs use) for the next ``ahead`` images in the list, one job per image at a negative
priority on the one inference thread. Why this shape:

- one image per job: a user job waits at most for the one forward pass already running, since the
  runner starts the highest priority first (:mod:`vfmstudio.core.jobs`);
- only the tool, model and parameters of the user's last run are prefetched, so opening a folder
  never loads a model nobody asked for;
- moving on cancels the prefetches that are no longer ahead of the current image and keeps the ones
  that still are; a forward pass that was running when cancelled still lands in the feature cache.

Every prefetch job has the run time limit (``timeout``; default ``$VFMSTUDIO_TOOL_TIMEOUT_S`` or
900 s), enforced by the job runner like every other job's (ADR 0108): a hung ``prepare`` is
abandoned and the one inference thread goes on with the user's runs.

Qt-free and torch-free: the window only calls :meth:`Prefetcher.schedule`. Turned off by the
window setting ``prefetch/enabled`` or ``VFMSTUDIO_PREFETCH=0``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfmstudio import settings
from vfmstudio.core.image import LoadedImage
from vfmstudio.core.jobs import Job, JobContext, JobResult, JobRunner
from vfmstudio.core.tools import ToolSpec

log = logging.getLogger(__name__)

KEY_PREFIX = "prefetch:"
PRIORITY = -10  # below every user job (priority 0)
DEFAULT_AHEAD = 2
MAX_AHEAD = 3
ENV_SWITCH = "VFMSTUDIO_PREFETCH"


@dataclass(frozen=True)
class PrefetchRequest:
    """What to prepare: the tool, parameters and model of the user's last run."""

    tool: ToolSpec
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"


def env_enabled(default: bool = True) -> bool:
    """``VFMSTUDIO_PREFETCH=0/false/no/off`` turns prefetch off, a true value on; unset (or a value
    that is neither, logged) keeps ``default``."""
    if not os.environ.get(ENV_SWITCH, "").strip():
        return default
    return bool(settings.get(ENV_SWITCH, strict=False))


def paths_ahead(paths: Sequence[Path], current: Path | None, ahead: int) -> list[Path]:
    """The ``ahead`` paths after ``current`` in ``paths`` (no wrap-around); [] when current is not listed."""
    if current is None or ahead <= 0:
        return []
    try:
        index = list(paths).index(current)
    except ValueError:
        return []
    return list(paths[index + 1 : index + 1 + ahead])


class Prefetcher:
    """Queues low-priority ``prepare`` jobs for the images after the current one.

    ``load`` turns a path into a :class:`LoadedImage` (the window passes its image store, so the
    decoded image is reused when the user steps there). ``services`` are the caches the user's runs
    read (``vfmstudio.execution.Services``).
    """

    def __init__(
        self,
        runner: JobRunner,
        load: Callable[[Path], LoadedImage],
        *,
        services: Any = None,
        ahead: int = DEFAULT_AHEAD,
        enabled: bool = True,
        timeout: Callable[[], float | None] | float | None = None,
    ):
        self._runner = runner
        self._timeout = timeout
        self._load = load
        self._services = services
        self.ahead = max(0, min(MAX_AHEAD, int(ahead)))
        self.enabled = enabled
        self._jobs: dict[Path, tuple[Job, PrefetchRequest]] = {}
        self.completed: list[Path] = []  # paths whose prefetch finished (newest last), for tests and stats

    def schedule(
        self, paths: Sequence[Path], current: Path | None, request: PrefetchRequest | None
    ) -> list[Job]:
        """Prefetch for the images after ``current``; returns the jobs now wanted (kept or new)."""
        wanted = []
        if self.enabled and request is not None and request.tool.prepare:
            wanted = paths_ahead(paths, current, self.ahead)
        for path, (job, old) in list(self._jobs.items()):
            if job.done or path not in wanted or old != request:
                job.cancel()
                del self._jobs[path]
        jobs = []
        for path in wanted:
            if path not in self._jobs:
                assert request is not None
                job = self._runner.submit(
                    functools.partial(self._prefetch_one, path=path, request=request),
                    key=f"{KEY_PREFIX}{path}",
                    source=f"prefetch · {request.tool.id}",
                    priority=PRIORITY,
                    on_done=functools.partial(self._on_done, path),
                    timeout=self.timeout_s(),
                )
                self._jobs[path] = (job, request)
            jobs.append(self._jobs[path][0])
        return jobs

    def timeout_s(self) -> float | None:
        """The time limit of a prefetch job: ``timeout`` (a number or a function giving one, e.g. the
        window's setting), else the run time limit of :func:`vfmstudio.execution.tool_timeout_s`."""
        from vfmstudio.execution import DEFAULT_TOOL_TIMEOUT_S, tool_timeout_s

        if callable(self._timeout):
            return self._timeout() or None  # None or 0: no limit, as for the window's runs
        if self._timeout is not None:
            return self._timeout or None
        try:
            return tool_timeout_s()
        except ValueError:  # a bad setting is the user's run's to report
            return DEFAULT_TOOL_TIMEOUT_S

    def cancel(self) -> int:
        """Cancel every pending prefetch (e.g. when the folder changes or the window closes)."""
        n = sum(1 for job, _ in self._jobs.values() if job.cancel())
        self._jobs.clear()
        return n

    def pending(self) -> list[Path]:
        return [p for p, (job, _) in self._jobs.items() if not job.done]

    # -- inference thread ---------------------------------------------------------------------------
    def _prefetch_one(self, ctx: JobContext, path: Path, request: PrefetchRequest) -> Path:
        from vfmstudio.execution import prepare_tool

        image = self._load(path)
        ctx.cancel.raise_if_cancelled()
        prepare_tool(
            request.tool,
            [image],
            request.params,
            model=request.model,
            device=request.device,
            precision=request.precision,
            cancel=ctx.cancel,
            services=self._services,
        )
        return path

    def _on_done(self, path: Path, result: JobResult) -> None:
        if result.status == "done":
            self.completed.append(path)
        elif result.status == "error" and result.error is not None:
            # A prefetch is a guess: its failure is the user's run's to report, if it fails again.
            log.debug("prefetch of %s failed: %s", path.name, result.error.message)

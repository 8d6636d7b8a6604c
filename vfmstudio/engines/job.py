"""A batch run from start to end, whatever executes it: planning (source, manifest, what is left
to do), progress counting, the stop rule for tools that fail on everything, and the summary."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vfmstudio.engines.outputs import BatchOutput, OutputError
from vfmstudio.engines.sources import Item, Source, SourceError, resolve_source
from vfmstudio.engines.worker import Outcome, RunSpec


class BatchError(Exception):
    """The run cannot start or must stop; ``user_error`` marks bad input rather than a bug."""

    def __init__(self, message: str, *, user_error: bool = True):
        self.user_error = user_error
        super().__init__(message)


@dataclass
class Plan:
    """What a run will do: the resolved source, the output folder and the images left to do."""

    spec: RunSpec
    source: Source
    output: BatchOutput
    todo: list[Item]
    skipped: int  # finished by an earlier run (--resume)
    batch_size: int = 8


def manifest_for(spec: RunSpec, source: Source) -> dict:
    from vfmstudio import __version__

    return {
        "tool": spec.tool.id,
        "model": spec.model,
        "params": spec.params,
        "source": source.identity(),
        "vfmstudio": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def plan_run(
    spec: RunSpec, src: str, *, resume: bool = False, limit: int | None = None, batch_size: int = 8
) -> Plan:
    """Resolve SRC, create or check the output folder and list the images still to do."""
    if batch_size < 1:
        raise BatchError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise BatchError(f"--limit must be at least 1, got {limit}")
    if spec.tool.inputs.value == "pair":
        raise BatchError(f"{spec.tool.id} compares a pair of images; batch runs tools that take one image")
    if spec.tool.inputs.value == "text":
        raise BatchError(f"{spec.tool.id} takes no image; batch runs tools that take one image")
    try:
        source = resolve_source(src, limit=limit)
    except SourceError as exc:
        raise BatchError(str(exc)) from None
    output = BatchOutput(spec.out)
    try:
        output.open(manifest_for(spec, source), resume=resume)
    except OutputError as exc:
        raise BatchError(str(exc)) from None
    todo = [it for it in source.items if not (resume and output.is_done(it))]
    output.reset_failures({it.key for it in todo})
    return Plan(spec, source, output, todo, skipped=len(source.items) - len(todo), batch_size=batch_size)


@dataclass
class Progress:
    """Counts of a run, updated as outcomes arrive; ``on_update`` is called after each."""

    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.perf_counter)
    on_update: Callable[[Progress], None] | None = None

    @property
    def processed(self) -> int:
        return self.done + self.failed

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        """Images per second over this run (skipped images excluded)."""
        e = self.elapsed
        return self.processed / e if e > 0 else 0.0

    @property
    def eta(self) -> float | None:
        left = self.total - self.skipped - self.processed
        r = self.rate
        return left / r if r > 0 else None

    def add(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.done += 1
        else:
            self.failed += 1
        if self.on_update is not None:
            self.on_update(self)

    def summary(self, plan: Plan, engine: str) -> dict:
        return {
            "engine": engine,
            "tool": plan.spec.tool.id,
            "model": plan.spec.model,
            "images": self.total,
            "skipped": self.skipped,
            "done": self.done,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed, 3),
            "images_per_s": round(self.rate, 3),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }


class StopRule:
    """Stops a run whose tool fails on every image for the same reason (a missing model, a
    broken plugin) instead of writing thousands of identical failures. Read failures and
    image-specific errors never trigger it."""

    def __init__(self, after: int = 3):
        self.after = after
        self.succeeded = False
        self.reasons: list[str] = []

    def check(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.succeeded = True
        elif outcome.stage == "run" and not self.succeeded:
            self.reasons.append(outcome.reason)
            if len(self.reasons) >= self.after and len(set(self.reasons[-self.after :])) == 1:
                raise BatchError(
                    f"stopped: the tool failed on the first {len(self.reasons)} images: {outcome.reason}"
                )


def record(plan: Plan, progress: Progress, stop: StopRule, outcomes: list[Outcome]) -> None:
    """Book outcomes: failures to the failures file, counts to ``progress``, then the stop rule."""
    for outcome in outcomes:
        if not outcome.ok:
            plan.output.add_failure(outcome.item, outcome.stage, outcome.reason)
        progress.add(outcome)
        stop.check(outcome)

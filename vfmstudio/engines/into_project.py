"""A batch run whose predictions go into a project as pending (``batch --into``, Run › Run on All
Images…): the same plan, engine and worker as ``batch --out``, writing into the project's sidecar
store (:mod:`vfmstudio.core.pending`) instead of an output folder.

The run's folder is ``<stem>.pending/runs/<run id>`` with the batch output layout, so resuming works
as in a ``--resume``-d batch: an image whose prediction exists and whose file is unchanged is
skipped. Same tool, model and parameters means the same run, so running again continues it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from vfmstudio.core.pending import PendingStore, entry_for, run_id_for
from vfmstudio.core.project import Project
from vfmstudio.core.results import Prediction
from vfmstudio.engines.job import BatchError, Plan, manifest_for
from vfmstudio.engines.outputs import BatchOutput, OutputError, SourceStat
from vfmstudio.engines.sources import Item, Source, image_key
from vfmstudio.engines.worker import RunSpec


class PendingRunOutput(BatchOutput):
    """A batch output folder inside the pending store: each written prediction is also indexed."""

    def __init__(self, store: PendingStore, run: str):
        super().__init__(store.run_dir(run))
        self.store, self.run = store, run

    def write_prediction(self, item: Item, prediction: Prediction, stat: SourceStat | None) -> Path:
        path = super().write_prediction(item, prediction, stat)
        self.store.add(self.run, entry_for(self.run, item.key, item.rel, prediction))
        return path


def item_for(root: Path, rel: str) -> Item:
    """The batch item of the project image at ``rel`` (relative to the project folder ``root``):
    its file key follows the path, so a resumed run finds the image's prediction again."""
    return Item(str(root / rel), rel, image_key(rel))


def project_source(project: Project, keys: Iterable[str] | None = None) -> Source:
    """The project's images (or ``keys`` of them, in that order) as a batch source."""
    records = [project.images[k] for k in keys] if keys is not None else list(project.images.values())
    items = tuple(item_for(project.root, r.path) for r in records)
    return Source(str(project.path), "project", str(project.root), items)


def plan_into_project(
    spec: RunSpec,
    project: Project,
    keys: Iterable[str] | None = None,
    *,
    batch_size: int = 8,
    redo: bool = False,
) -> Plan:
    """Plan a run of ``spec`` over the project's images into its pending store. Images already
    predicted by the same run (same tool, model, parameters) are skipped unless ``redo``."""
    if batch_size < 1:
        raise BatchError(f"--batch-size must be at least 1, got {batch_size}")
    if spec.tool.inputs.value in ("pair", "text"):
        raise BatchError(f"{spec.tool.id} does not take one image; runs on a folder need a tool that does")
    source = project_source(project, keys)
    if not source.items:
        raise BatchError(f"{project.path.name}: no images to run on")
    store = PendingStore(project.path)
    run = run_id_for(spec.tool.id, spec.model, spec.params)
    spec = replace(spec, out=str(store.run_dir(run)))
    output = PendingRunOutput(store, run)
    try:
        output.open(manifest_for(spec, source), resume=True)
    except OutputError as exc:
        raise BatchError(str(exc)) from None
    todo = [it for it in source.items if redo or not output.is_done(it)]
    output.reset_failures({it.key for it in todo})
    return Plan(spec, source, output, todo, skipped=len(source.items) - len(todo), batch_size=batch_size)


def sink_for(plan: Plan):
    """The worker's sink for ``plan``: write the prediction and index it."""
    output = plan.output
    assert isinstance(output, PendingRunOutput)
    return output.write_prediction

"""Reload-and-merge: bring another writer's saved changes into a project held in memory.

Three-way, by annotation id, against the state we last loaded or saved (the *base*):

- an annotation only one side changed, added or deleted takes that side's change, so both sides'
  additions are kept;
- one both sides changed differently, or that one side changed and the other deleted, is a
  *conflict*: our version is kept (theirs is kept where we deleted it) and the conflict is
  reported, so nothing is lost without a message;
- tags and captions merge the same way per image; classes, image records and per-image format
  extras new on disk are added;
- review decisions are merged as unions, class map entries set on disk are taken unless changed here.

Applied in place (the window's undo commands point at the same :class:`LabelSet`). After a merge
the project's on-disk revision is the one merged, so the next save replaces it. See ADR 0105.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vfmstudio.core.annotations import Annotation, LabelSet

if TYPE_CHECKING:
    from vfmstudio.core.project import Project


@dataclass(frozen=True)
class MergeConflict:
    kind: str  # "annotation", "caption" or "tags"
    image: str
    id: str  # the annotation id ("" for captions and tags)
    detail: str

    def __str__(self) -> str:
        what = f"annotation {self.id} on {self.image}" if self.id else f"{self.kind} of {self.image}"
        return f"{what}: {self.detail}"


@dataclass
class MergeReport:
    """What a merge took from disk; ``conflicts`` lists the edits both sides made."""

    revision: int = 0  # the on-disk revision merged
    added: int = 0  # annotations the other writer added
    changed: int = 0  # annotations it changed
    removed: int = 0  # annotations it deleted
    other: int = 0  # tags, captions, classes, image records
    conflicts: list[MergeConflict] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return self.added + self.changed + self.removed + self.other

    def summary(self) -> str:
        text = (
            f"merged revision {self.revision} from disk: {self.added} annotations added, {self.changed} changed, "
            f"{self.removed} deleted there"
        )
        if self.conflicts:
            text += (
                f"; {len(self.conflicts)} conflicting edits kept as they are here "
                f"(first: {self.conflicts[0]})"
            )
        return text


def _key(ann: Annotation | None) -> Any:
    return None if ann is None else (ann.image, ann.to_json())


def _by_id(labels: LabelSet | None) -> dict[str, Annotation]:
    return {} if labels is None else {a.id: a for a in labels.annotations()}


def plan_merge(
    ours: LabelSet, base: LabelSet | None, theirs: LabelSet, report: MergeReport
) -> list[Callable[[], object]]:
    """The steps that bring ``theirs``' changes since ``base`` into ``ours``; fills ``report``."""
    steps: list[Callable[[], object]] = []
    b_anns, o_anns, t_anns = _by_id(base), _by_id(ours), _by_id(theirs)
    for ann_id in list(dict.fromkeys([*o_anns, *t_anns, *b_anns])):
        b, o, t = b_anns.get(ann_id), o_anns.get(ann_id), t_anns.get(ann_id)
        kb, ko, kt = _key(b), _key(o), _key(t)
        if ko == kt:
            continue
        if o is None:
            assert t is not None
            if b is None:
                report.added += 1
            elif kt != kb:  # we deleted it, they changed it: keep theirs rather than lose their edit
                report.conflicts.append(
                    MergeConflict(
                        "annotation", t.image, ann_id, "deleted here, changed in the file: their version kept"
                    )
                )
            else:
                continue  # our deletion stands
            steps.append(functools.partial(ours._insert, t, None))
        elif t is None:
            if b is None:
                continue  # our addition
            if ko == kb:
                report.removed += 1
                steps.append(functools.partial(ours._remove, ann_id))
            else:
                report.conflicts.append(
                    MergeConflict(
                        "annotation", o.image, ann_id, "changed here, deleted in the file: ours kept"
                    )
                )
        elif ko == kb:
            report.changed += 1
            steps.append(functools.partial(_replace, ours, o, t))
        elif kt != kb:
            report.conflicts.append(
                MergeConflict("annotation", o.image, ann_id, "changed on both sides: ours kept")
            )
    for kind, get, setter in (
        ("caption", lambda s, k: s.captions.get(k, ""), lambda k, v: ours._set_caption(k, v)),
        ("tags", lambda s, k: s.tags.get(k, ()), lambda k, v: ours._set_tags(k, v)),
    ):
        for key in sorted(set(theirs.images()) | set(ours.images())):
            b, o, t = (
                (get(base, key) if base is not None else get(LabelSet(), key)),
                get(ours, key),
                get(theirs, key),
            )
            if o == t or t == b:
                continue
            if o == b:
                report.other += 1
                steps.append(functools.partial(setter, key, t))
            else:
                report.conflicts.append(MergeConflict(kind, key, "", "changed on both sides: ours kept"))
    base_classes = set(base.class_names) if base is not None else set()
    for c in theirs.classes:
        if ours.get_class(c.name) is None and c.name not in base_classes:
            report.other += 1
            steps.append(functools.partial(ours.classes.append, c))
    for key, extra in theirs.extras.items():
        if extra and key not in ours.extras:
            steps.append(functools.partial(ours.extras.__setitem__, key, dict(extra)))

    steps += _review_steps(ours, base, theirs, report)

    def classes_for_every_label() -> None:
        for a in ours.annotations():
            ours.ensure_class(a.label)

    steps.append(classes_for_every_label)
    return steps


def _review_steps(
    ours: LabelSet, base: LabelSet | None, theirs: LabelSet, report: MergeReport
) -> list[Callable[[], object]]:
    """Review decisions are unions (an item reviewed on either side is no longer pending); a class
    map entry the other side set is taken unless we changed the same entry."""
    steps: list[Callable[[], object]] = []
    for key, runs in theirs.decisions.items():
        for run, theirs_d in runs.items():
            mine = ours.decisions.get(key, {}).get(run)
            merged = theirs_d if mine is None else mine.plus(theirs_d.accepted, theirs_d.rejected)
            if merged != mine:
                report.other += 1
                steps.append(functools.partial(_set_decision, ours, key, run, merged))
    base_maps = base.class_maps if base is not None else {}
    for tool, mapping in theirs.class_maps.items():
        for src, dst in mapping.items():
            b = base_maps.get(tool, {}).get(src)
            o = ours.class_maps.get(tool, {}).get(src)
            if dst != o and (o is None or o == b):
                report.other += 1
                steps.append(functools.partial(_set_map_entry, ours, tool, src, dst))
    return steps


def _set_decision(labels: LabelSet, key: str, run: str, decision: Any) -> None:
    labels.decisions.setdefault(key, {})[run] = decision


def _set_map_entry(labels: LabelSet, tool: str, src: str, dst: str) -> None:
    labels.class_maps.setdefault(tool, {})[src] = dst


def _replace(labels: LabelSet, old: Annotation, new: Annotation) -> None:
    if old.image == new.image:
        labels._replace(new)
    else:
        labels._remove(old.id)
        labels._insert(new, None)


def merge_from_disk(project: Project, *, dry_run: bool = False) -> MergeReport:
    """Merge the project file's current content into ``project`` (see the module docstring).

    ``dry_run``: only report what would happen (the window asks before a merge with conflicts).
    Raises :class:`~vfmstudio.core.project.ProjectError` when the file cannot be read.
    """
    from vfmstudio.core.project import _parse, _read_base_and_disk

    base, data = _read_base_and_disk(project)
    report = MergeReport()
    if data is None:  # the file is gone: nothing to merge, the next save writes it anew
        if not dry_run:
            project._mark_disk(None)
        return report
    theirs = _parse(project.path, data)
    report.revision = theirs.revision
    steps = plan_merge(project.labels, base.labels if base is not None else None, theirs.labels, report)
    new_images = [rec for key, rec in theirs.images.items() if key not in project.images]
    report.other += len(new_images)
    if dry_run:
        return report
    for step in steps:
        step()
    for rec in new_images:
        project.images[rec.key] = rec
    project.revision = max(project.revision, theirs.revision)
    project._mark_disk(data)
    return report

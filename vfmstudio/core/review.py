"""Reviewing pending predictions: what each offers, what is still open, the image's review state,
the class map, and the undoable step that accepts some items and rejects the others.

A pending prediction (one run's result for one image, kept in the project's sidecar store,
:mod:`vfmstudio.core.pending`) offers *items*: a box, a mask, a tag of a classification, a caption.
Review decisions live in the project's :class:`~vfmstudio.core.annotations.LabelSet` as
``decisions[image][run] = Decision(accepted, rejected)`` so that accepting and rejecting are undone
with the same stack as every other edit, saved atomically with the labels, and merged with another
writer's decisions. The prediction files themselves are never changed by a review: an item is
pending while no decision names it (ADR 0170).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

from vfmstudio.core import commands as cmd
from vfmstudio.core.annotations import Accepted, LabelSet, accept_prediction
from vfmstudio.core.results import Classification, Detections, Masks, Prediction, Text

if TYPE_CHECKING:
    from vfmstudio.core.pending import PendingEntry

UNLABELLED, LABELLED, PREDICTED, REVIEWED = "unlabelled", "labelled", "predicted", "reviewed"
STATES = (UNLABELLED, LABELLED, PREDICTED, REVIEWED)
SKIP = ""  # a class map target that drops the prediction label's items

ItemRef = tuple[int, int]  # (result index, item index) inside one prediction


class PendingItem(NamedTuple):
    """One thing a prediction offers. ``default``: what "accept all" takes (a classification offers
    every label but only its top one is taken unless it is multi-label). A named tuple: opening a
    project builds one per item of every pending prediction (100 000s)."""

    result: int
    item: int  # the item inside that result
    kind: str  # "box" | "mask" | "tag" | "caption"
    label: str
    score: float | None
    default: bool = True

    @property
    def ref(self) -> ItemRef:
        return (self.result, self.item)

    def passes(self, min_score: float | None) -> bool:
        return min_score is None or self.score is None or self.score >= min_score

    def to_json(self) -> list:
        return list(self)

    @classmethod
    def from_json(cls, obj: Sequence) -> PendingItem:
        """Raises ValueError for anything but ``[int, int, kind, str, number|null, bool]``."""
        if type(obj) is not list or len(obj) != 6:
            raise ValueError("an item is a list of 6 values")
        r, i, kind, label, score, default = obj
        if (
            type(r) is not int
            or type(i) is not int
            or kind not in _KINDS
            or type(label) is not str
            or type(default) is not bool
            or not (score is None or type(score) is float or type(score) is int)
        ):
            raise ValueError(f"not a pending item: {obj!r:.100}")
        return cls(r, i, kind, label, score, default)


_KINDS = frozenset(("box", "mask", "tag", "caption"))


def items_of(prediction: Prediction) -> tuple[PendingItem, ...]:
    """The items a prediction offers, in result order."""
    out: list[PendingItem] = []
    found = prediction.of_type(Detections) + prediction.of_type(Masks)
    found_nothing = bool(found) and not any(len(r) for r in found)
    for r, result in enumerate(prediction.results):
        if isinstance(result, Detections | Masks):
            kind = "box" if isinstance(result, Detections) else "mask"
            for i in range(len(result)):
                score = None if result.scores is None else float(result.scores[i])
                out.append(PendingItem(r, i, kind, result.labels[i], score))
        elif isinstance(result, Classification):
            top = int(result.scores.argmax()) if len(result.labels) else -1
            for i, label in enumerate(result.labels):
                out.append(
                    PendingItem(
                        r, i, "tag", label, float(result.scores[i]), bool(result.multi_label) or i == top
                    )
                )
        elif isinstance(result, Text) and not found_nothing and result.text.strip():
            # a detector that found nothing answers with text: that is its reason, not a caption
            out.append(PendingItem(r, 0, "caption", result.text, None))
    return tuple(out)


@dataclass(frozen=True)
class Decision:
    """What the reviewer did with one run's prediction for one image."""

    accepted: frozenset[ItemRef] = frozenset()
    rejected: frozenset[ItemRef] = frozenset()

    @property
    def handled(self) -> frozenset[ItemRef]:
        return self.accepted | self.rejected

    def plus(self, accepted: Iterable[ItemRef] = (), rejected: Iterable[ItemRef] = ()) -> Decision:
        acc = self.accepted | frozenset(accepted)
        return Decision(acc, (self.rejected | frozenset(rejected)) - acc)

    def to_json(self) -> dict:
        return {"accepted": sorted(map(list, self.accepted)), "rejected": sorted(map(list, self.rejected))}

    @classmethod
    def from_json(cls, obj: Mapping) -> Decision:
        def refs(key: str) -> frozenset[ItemRef]:
            return frozenset((int(r), int(i)) for r, i in obj.get(key) or ())

        return cls(refs("accepted"), refs("rejected"))


def open_items(entry: PendingEntry, labels: LabelSet, key: str) -> tuple[PendingItem, ...]:
    """The items of ``entry`` no decision on image ``key`` names yet."""
    decision = labels.decisions.get(key, {}).get(entry.run)
    if decision is None:
        return entry.items
    handled = decision.handled
    return tuple(it for it in entry.items if it.ref not in handled)


def is_open(entry: PendingEntry, labels: LabelSet, key: str) -> bool:
    """Still to review: no decision yet (a prediction that found nothing waits for a look too), or
    items no decision names."""
    decision = labels.decisions.get(key, {}).get(entry.run)
    return decision is None or any(it.ref not in decision.handled for it in entry.items)


def image_state(key: str, entries: Sequence[PendingEntry], labels: LabelSet) -> str:
    """``predicted`` (something to review), ``reviewed`` (a run's prediction was reviewed and none is
    open), ``labelled`` (annotations, tags or a caption, no prediction) or ``unlabelled``."""
    if any(is_open(e, labels, key) for e in entries):
        return PREDICTED
    if entries and labels.decisions.get(key):
        return REVIEWED
    if labels.annotations(key) or labels.tags.get(key) or labels.captions.get(key):
        return LABELLED
    return UNLABELLED


# ---------------------------------------------------------------------- class map


def mapped_label(labels: LabelSet, tool: str, label: str) -> str | None:
    """The project class a prediction label of ``tool`` becomes (None: the map drops it)."""
    target = labels.class_maps.get(tool, {}).get(label, label)
    return None if target == SKIP else target


def parse_class_map(text: str) -> dict[str, str]:
    """``from=to,from2=to2`` (``from=`` drops that label) as a dict; raises ValueError naming the
    part that is not ``from=to``."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        src, sep, dst = part.partition("=")
        if not sep or not src.strip():
            raise ValueError(f"{part!r} is not from=to")
        out[src.strip()] = dst.strip()
    return out


class SetClassMap(cmd.Command):
    """Set (or, with an empty ``mapping``, forget) ``tool``'s class map entries; undoable."""

    def __init__(self, tool: str, mapping: Mapping[str, str | None]):
        self.tool, self.mapping = tool, dict(mapping)
        self.text = f"Map {len(self.mapping)} class{'es' if len(self.mapping) != 1 else ''} of {tool}"
        self._before: dict[str, str] | None = None

    def do(self, labels: LabelSet) -> None:
        self._before = dict(labels.class_maps.get(self.tool, {}))
        new = dict(self._before)
        for src, dst in self.mapping.items():
            if dst is None or dst == src:
                new.pop(src, None)
            else:
                new[src] = dst
        _set_map(labels, self.tool, new)

    def undo(self, labels: LabelSet) -> None:
        assert self._before is not None
        _set_map(labels, self.tool, self._before)


def _set_map(labels: LabelSet, tool: str, mapping: dict[str, str]) -> None:
    if mapping:
        labels.class_maps[tool] = mapping
    else:
        labels.class_maps.pop(tool, None)


# ---------------------------------------------------------------------- accept / reject


class SetDecision(cmd.Command):
    """Record ``accepted`` and ``rejected`` items of one run's prediction for one image."""

    def __init__(self, key: str, run: str, accepted: Iterable[ItemRef], rejected: Iterable[ItemRef]):
        self.key, self.run = key, run
        self.accepted, self.rejected = frozenset(accepted), frozenset(rejected)
        self.text = "Review"
        self._before: Decision | None = None

    def do(self, labels: LabelSet) -> None:
        runs = labels.decisions.setdefault(self.key, {})
        self._before = runs.get(self.run)
        runs[self.run] = (self._before or Decision()).plus(self.accepted, self.rejected)

    def undo(self, labels: LabelSet) -> None:
        runs = labels.decisions.setdefault(self.key, {})
        if self._before is None:
            runs.pop(self.run, None)
        else:
            runs[self.run] = self._before
        if not runs:
            del labels.decisions[self.key]


@dataclass
class ReviewPlan:
    """What one review step does to one image: counts for the report and the command to push."""

    key: str
    accepted: int = 0
    rejected: int = 0
    annotations: int = 0
    command: cmd.Command | None = None
    new_classes: list[str] = field(default_factory=list)
    tags: int = 0  # image tags added (from classifications)
    captions: int = 0


def review_command(
    labels: LabelSet,
    key: str,
    entry: PendingEntry,
    prediction: Prediction,
    *,
    accept: Iterable[ItemRef] = (),
    reject: Iterable[ItemRef] = (),
    masks_as_polygons: bool = False,
    masks_as_rotated_boxes: bool = False,
    tolerance: float = 1.0,
) -> ReviewPlan:
    """One undoable step: the ``accept``-ed items become annotations (tags, caption) with model
    provenance, labels renamed by the tool's class map; items the map drops count as rejected;
    both are recorded as decided so they are no longer pending."""
    accept_refs = list(dict.fromkeys(accept))
    taken = set(accept_refs)
    reject_refs = [r for r in dict.fromkeys(reject) if r not in taken]
    raw = (
        accept_prediction(
            prediction,
            key,
            select=accept_refs,
            masks_as_polygons=masks_as_polygons,
            masks_as_rotated_boxes=masks_as_rotated_boxes,
            tolerance=tolerance,
        )
        if accept_refs
        else Accepted()
    )
    accepted = Accepted()
    for ann in raw.annotations:
        label = mapped_label(labels, entry.tool, ann.label)
        if label is not None:
            accepted.annotations.append(ann if label == ann.label else replace(ann, label=label))
    for image, tags in raw.tags.items():
        kept = [t for t in (mapped_label(labels, entry.tool, tag) for tag in tags) if t is not None]
        if kept:
            accepted.tags[image] = kept
    accepted.captions.update(raw.captions)
    by_ref = {it.ref: it for it in entry.items}
    dropped = {  # items whose label the class map drops count as rejected (a caption has no class)
        r
        for r in accept_refs
        if (it := by_ref.get(r)) is not None
        and it.kind != "caption"
        and mapped_label(labels, entry.tool, it.label) is None
    }
    acc = [r for r in accept_refs if r not in dropped]
    rej = reject_refs + sorted(dropped)
    steps: list[cmd.Command] = []
    if accepted.annotations or accepted.tags or accepted.captions:
        steps.append(cmd.accept(accepted, labels))
    steps.append(SetDecision(key, entry.run, acc, rej))
    n = len(accepted.annotations)
    if acc and rej:
        text = f"Review: accept {len(acc)}, reject {len(rej)}"
    elif acc:
        text = f"Accept {len(acc)} prediction{'s' if len(acc) != 1 else ''}"
    else:
        text = f"Reject {len(rej)} prediction{'s' if len(rej) != 1 else ''}"
    new_classes = [
        c for c in dict.fromkeys(a.label for a in accepted.annotations) if labels.get_class(c) is None
    ]
    return ReviewPlan(
        key,
        len(acc),
        len(rej),
        n,
        cmd.Macro(steps, text),
        new_classes,
        tags=sum(len(t) for t in accepted.tags.values()),
        captions=len(accepted.captions),
    )


def accept_all(
    labels: LabelSet,
    key: str,
    entry: PendingEntry,
    prediction: Prediction,
    *,
    min_score: float | None = None,
    masks_as_polygons: bool = False,
    masks_as_rotated_boxes: bool = False,
) -> ReviewPlan:
    """Accept the open items "accept all" takes that pass ``min_score``; reject the other open ones."""
    items = open_items(entry, labels, key)
    take = [it.ref for it in items if it.default and it.passes(min_score)]
    return review_command(
        labels,
        key,
        entry,
        prediction,
        accept=take,
        reject=[it.ref for it in items if it.ref not in set(take)],
        masks_as_polygons=masks_as_polygons,
        masks_as_rotated_boxes=masks_as_rotated_boxes,
    )


def reject_all(
    labels: LabelSet, key: str, entry: PendingEntry, prediction: Prediction | None = None
) -> ReviewPlan:
    """Reject every open item (a prediction that found nothing is marked as looked at)."""
    items = open_items(entry, labels, key)
    plan = ReviewPlan(key, 0, len(items))
    plan.command = SetDecision(key, entry.run, (), [it.ref for it in items])
    plan.command.text = f"Reject {len(items)} prediction{'s' if len(items) != 1 else ''}"
    return plan

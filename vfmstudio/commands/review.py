"""``vfmstudio review PROJECT --accept|--reject``: pending predictions become annotations, or are
dropped, without the window (see docs/auto-label.md).

Without --accept or --reject it prints what is pending. ``--map from=to`` stores the class map of
the tool (the window uses the same map), so it also applies to later reviews.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path

from vfmstudio.commands._common import project_locked
from vfmstudio.commands.errors import UsageError


def _score(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "review",
        help="accept or reject a project's pending predictions",
        description="Accept pending predictions (from 'batch --into' or Run on All Images) as "
        "annotations, or reject them. Without --accept or --reject, list what is pending.",
    )
    p.add_argument("project", type=Path, metavar="PROJECT", help="the project file")
    action = p.add_mutually_exclusive_group()
    action.add_argument(
        "--accept",
        action="store_true",
        help="accept what is pending (a classification's top label; items below --min-score are rejected)",
    )
    action.add_argument("--reject", action="store_true", help="reject what is pending")
    p.add_argument("--min-score", type=_score, metavar="S", help="accept only items scoring at least S")
    p.add_argument("--tool", metavar="T", help="only the predictions of this tool")
    p.add_argument(
        "--map",
        metavar="FROM=TO,...",
        help="rename prediction labels to project classes (FROM= drops that label); remembered per tool",
    )
    shapes = p.add_mutually_exclusive_group()
    shapes.add_argument("--masks-as-polygons", action="store_true", help="accept masks as polygons")
    shapes.add_argument(
        "--masks-as-rotated-boxes", action="store_true", help="accept masks as their smallest rotated boxes"
    )
    p.add_argument("--json", action="store_true", help="print what was done as JSON on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.project.is_dir():
        raise UsageError(f"{args.project}: is a folder, not a project file")
    if not args.project.exists():
        raise UsageError(f"{args.project}: no such project file")
    if not (args.accept or args.reject or args.map):  # a listing writes nothing: no lock
        return _review(args)
    with project_locked(args.project, "vfmstudio review", "nothing was changed"):
        return _review(args)


def _review(args) -> int:
    from vfmstudio.core.commands import UndoStack
    from vfmstudio.core.pending import PendingStoreError
    from vfmstudio.core.project import ProjectError, open_project
    from vfmstudio.core.review import SetClassMap, parse_class_map
    from vfmstudio.session.pending import PendingView

    try:
        project = open_project(args.project)
        view = PendingView(project)
    except (ProjectError, PendingStoreError) as exc:
        raise UsageError(str(exc)) from None
    tools = view.predicted_labels()
    if args.tool is not None and args.tool not in tools:
        known = ", ".join(sorted(tools)) or "none"
        raise UsageError(f"{args.project}: no predictions of {args.tool} (tools with predictions: {known})")
    stack = UndoStack(project.labels)
    if args.map:
        try:
            mapping = parse_class_map(args.map)
        except ValueError as exc:
            raise UsageError(f"--map: {exc}") from None
        for tool in [args.tool] if args.tool else sorted(tools):
            stack.push(SetClassMap(tool, mapping))
    report = Counter[str]()
    new_classes: list[str] = []
    if args.accept or args.reject:
        for key in view.keys():
            if args.accept:
                plans = view.accept_all(
                    key,
                    tool=args.tool,
                    min_score=args.min_score,
                    masks_as_polygons=args.masks_as_polygons,
                    masks_as_rotated_boxes=args.masks_as_rotated_boxes,
                )
            else:
                plans = view.reject_all(key, tool=args.tool)
            for plan in plans:
                new_classes += [c for c in plan.new_classes if c not in new_classes]
                if plan.command is not None:
                    stack.push(plan.command)
                report["accepted"] += plan.accepted
                report["rejected"] += plan.rejected
                report["annotations"] += plan.annotations
                report["tags"] += plan.tags
                report["captions"] += plan.captions
            report["images"] += 1 if plans else 0
    if len(stack):  # something changed
        try:
            project.save()
        except ProjectError as exc:
            raise UsageError(f"{exc} (nothing was changed)") from None
    states = Counter(view.states().values())
    out = {
        "project": str(project.path),
        **{k: report[k] for k in ("images", "accepted", "rejected", "annotations", "tags", "captions")},
        "new_classes": new_classes,
        "states": dict(sorted(states.items())),
        "pending_by_tool": _pending_by_tool(view),
        "class_maps": project.labels.class_maps,
    }
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(_describe(args, out))
    return 0


def _pending_by_tool(view) -> dict[str, int]:
    """Open items per tool, over the whole project."""
    from vfmstudio.core.review import open_items

    counts: Counter[str] = Counter()
    for key in view.keys():
        for e in view.open_entries(key):
            counts[e.tool] += len(open_items(e, view.labels, key))
    return dict(sorted(counts.items()))


def _describe(args, out: dict) -> str:
    lines = []
    if args.accept or args.reject:
        lines.append(
            f"{out['images']} images reviewed: {out['accepted']} items accepted "
            f"({_became(out)}), {out['rejected']} rejected -> {out['project']}"
        )
        if out["new_classes"]:
            lines.append("new classes: " + ", ".join(out["new_classes"]))
    states = ", ".join(f"{n} {s}" for s, n in out["states"].items())
    lines.append(f"images: {states}")
    pending = ", ".join(f"{n} items of {t}" for t, n in out["pending_by_tool"].items()) or "nothing"
    lines.append(f"pending: {pending}")
    return "\n".join(lines)


def _became(out: dict) -> str:
    """``3 annotations, 5 tags`` (what the accepted items became; annotations always named)."""
    parts = [f"{out['annotations']} annotations"]
    parts += [f"{out[k]} {k}" for k in ("tags", "captions") if out[k]]
    return ", ".join(parts)

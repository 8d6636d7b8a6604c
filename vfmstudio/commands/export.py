"""``vfmstudio export SOURCE --format F --out DIR``: write a project (or a batch output folder) in a
dataset format. SOURCE is a project file, a folder holding ``vfmstudio.json``, or a folder of
per-image prediction JSON files written by ``vfmstudio batch`` (accepted with ``--min-score``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vfmstudio.commands._common import Progress, parse_params
from vfmstudio.commands.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a project or batch predictions as COCO, YOLO, VOC, ...")
    p.add_argument(
        "source",
        type=Path,
        metavar="PROJECT",
        help="project file (or its folder), or a batch output folder of prediction JSON files",
    )
    p.add_argument("--format", required=True, dest="format_id", help="format id (see 'vfmstudio formats')")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="format parameter (repeatable)"
    )
    p.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="batch folders: accept only predictions scoring at least this",
    )
    p.add_argument(
        "--masks-as-polygons",
        action="store_true",
        help="batch folders: turn predicted masks into polygons when accepting them",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop with exit status 2 on any warning (a value clipped, a shape converted or dropped)",
    )
    p.add_argument("--json", action="store_true", help="print the files written and warnings as JSON")
    p.set_defaults(func=run)


def format_spec(format_id: str, *, export: bool):
    from vfmstudio._plugin_host import get_host

    try:
        spec = get_host().format(format_id)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    if export and not spec.exporter:
        raise UsageError(f"format {format_id} can be imported but not exported")
    if not export and not spec.importer:
        raise UsageError(f"format {format_id} can be exported but not imported")
    return spec


def load_source(source: Path, *, min_score: float | None, masks_as_polygons: bool):
    from vfmstudio.core.project import DEFAULT_NAME, ProjectError, open_project

    if source.is_dir() and not (source / DEFAULT_NAME).exists():
        from vfmstudio.commands._batch_source import project_from_predictions

        return project_from_predictions(source, min_score=min_score, masks_as_polygons=masks_as_polygons)
    if not source.exists():
        raise UsageError(f"{source}: no such project file or folder")
    try:
        return open_project(source)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None


def run(args) -> int:
    from vfmstudio.core.exchange import FormatError, export_project
    from vfmstudio.core.tools import ParamError

    spec = format_spec(args.format_id, export=True)
    project = load_source(args.source, min_score=args.min_score, masks_as_polygons=args.masks_as_polygons)
    progress = Progress()
    try:
        ctx = export_project(
            spec,
            project,
            args.out,
            parse_params(args.param),
            from_text=True,
            on_progress=progress,
            strict=args.strict,
        )
    except (FormatError, ParamError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # a full disk, a read-only folder: the project itself is never written here
        raise UsageError(f"{exc.filename or args.out}: {exc.strerror or exc} (export not finished)") from None
    finally:
        progress.close()
    for w in ctx.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "format": spec.id,
                    "out": str(args.out),
                    "images": len(project.images),
                    "annotations": len(project.labels),
                    "files": [str(f) for f in ctx.files],
                    "warnings": ctx.warnings,
                    "report": ctx.report.to_json(),
                },
                indent=1,
            )
        )
    else:
        print(f"written: {ctx.report.summary()}")
        print(
            f"exported {len(project.images)} images, {len(project.labels)} annotations as {spec.id} "
            f"to {args.out} ({len(ctx.files)} files)"
        )
    return 0

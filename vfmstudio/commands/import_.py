"""``vfmstudio import FILE_OR_DIR --format F --into PROJECT``: add a dataset's images and labels to
a project (created when missing). Paths read from the files never leave the dataset folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vfmstudio.commands._common import Progress, parse_params, project_locked
from vfmstudio.commands.errors import UsageError
from vfmstudio.commands.export import format_spec


def register(subparsers) -> None:
    p = subparsers.add_parser("import", help="import COCO, YOLO, labelme, VOC or CVAT labels into a project")
    p.add_argument("source", type=Path, metavar="FILE_OR_DIR", help="dataset file or folder")
    p.add_argument("--format", required=True, dest="format_id", help="format id (see 'vfmstudio formats')")
    p.add_argument(
        "--into", required=True, type=Path, metavar="PROJECT", help="project file (created when missing)"
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="format parameter (repeatable)"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop with exit status 2 on any warning (a value clipped, a shape converted or dropped)",
    )
    p.add_argument("--json", action="store_true", help="print what was added as JSON")
    p.set_defaults(func=run)


#: Seconds an import waits for another import's lock before it refuses.
def run(args) -> int:
    from vfmstudio.core.project import DEFAULT_NAME

    spec = format_spec(args.format_id, export=False)
    into = args.into
    if into.is_dir() and not (into / DEFAULT_NAME).is_file():  # a folder stands for its project file only
        raise UsageError(
            f"{into}: is a folder, not a project file; give the project file, e.g. {into / DEFAULT_NAME}"
        )
    with project_locked(
        into / DEFAULT_NAME if into.is_dir() else into, "vfmstudio import", "nothing was imported"
    ):
        return _import(args, spec, into)


def _import(args, spec, into) -> int:
    from vfmstudio.core.exchange import FormatError, import_dataset
    from vfmstudio.core.image import ImageLoadError
    from vfmstudio.core.project import ProjectError, open_project
    from vfmstudio.core.tools import ParamError

    try:
        project = open_project(into, create=True)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None
    progress = Progress()
    try:
        dataset, ctx = import_dataset(
            spec,
            args.source,
            parse_params(args.param),
            from_text=True,
            on_progress=progress,
            strict=args.strict,
        )
        counts = project.merge(dataset, on_progress=lambda f, m: progress(f, f"adding {m}"))
        project.save()
    except (FormatError, ParamError, ProjectError, ImageLoadError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        progress.close()
    for w in ctx.warnings:
        print(f"warning: {w}", file=sys.stderr)
    issues = project.check_images()
    for issue in issues:
        print(f"warning: {issue}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "project": str(project.path),
                    **counts,
                    "issues": [str(i) for i in issues],
                    "warnings": ctx.warnings,
                    "report": ctx.report.to_json(),
                },
                indent=1,
            )
        )
    else:
        print(f"read: {ctx.report.summary()}")
        skipped = f" ({counts['duplicates']} already in the project, skipped)" if counts["duplicates"] else ""
        print(
            f"imported {counts['images']} images, {counts['annotations']} annotations{skipped}, "
            f"{counts['classes']} new classes into {project.path}"
        )
    return 0

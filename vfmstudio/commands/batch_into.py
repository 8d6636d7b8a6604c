"""``vfmstudio batch SRC --into PROJECT``: the images of SRC are added to the project (created if
missing) and the run's predictions go to its pending store (:mod:`vfmstudio.engines.into_project`).

The project file is written only when SRC holds images the project lacks, once, under the
project's lock, before the run starts; the run itself writes only the pending store, so the window
may keep the project open meanwhile.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from vfmstudio.commands._common import project_locked
from vfmstudio.commands.errors import UsageError


def plan_into(spec, args):
    from vfmstudio.core.image import ImageLoadError
    from vfmstudio.core.project import DEFAULT_NAME, ProjectError
    from vfmstudio.engines.into_project import plan_into_project
    from vfmstudio.engines.job import BatchError
    from vfmstudio.engines.sources import SourceError, resolve_source

    into = args.into
    if into.is_dir():
        raise UsageError(
            f"{into}: is a folder, not a project file; give the project file, e.g. {into / DEFAULT_NAME}"
        )
    try:
        source = resolve_source(args.src, limit=args.limit)
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    project = _open(into)
    rels = [_relative(project, it.path) for it in source.items]
    known = {r.path for r in project.images.values()}
    if any(rel not in known for rel in rels):
        # only adding images writes the project file: its lock is taken for that, not for the run
        with project_locked(into, "vfmstudio batch --into", "nothing was run"):
            project = _open(into)  # as it is now that we hold the lock
            known = {r.path for r in project.images.values()}
            for item, rel in zip(source.items, rels, strict=True):
                if rel in known:
                    continue
                try:
                    project.add_image(item.path)
                except (ImageLoadError, OSError) as exc:
                    print(f"warning: {item.path}: not added to the project ({exc})", file=sys.stderr)
            try:
                project.save()
            except ProjectError as exc:
                raise UsageError(str(exc)) from None
    key_of = {r.path: r.key for r in project.images.values()}
    keys = [key_of[rel] for rel in rels if rel in key_of]
    if not keys:
        raise UsageError(f"{args.src}: no readable images to run on")
    try:
        return plan_into_project(spec, project, keys, batch_size=args.batch_size)
    except BatchError as exc:
        raise UsageError(str(exc)) from None


def _open(into):
    from vfmstudio.core.project import ProjectError, open_project

    try:
        return open_project(into, create=True)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None


def _relative(project, path: str) -> str:
    """``path`` as the project records it: relative to its folder, '/'-separated."""
    return Path(os.path.relpath(Path(path).resolve(), project.root.resolve())).as_posix()

"""``vfmstudio index | similar | duplicates FOLDER --model M``: the folder's embedding index (ADR 0150).

Each command first brings the index up to date (only new or changed images go through the model),
so ``similar`` and ``duplicates`` can be run on a folder that was never indexed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from vfmstudio.commands._common import DEVICE, parse_params, project_locked
from vfmstudio.commands.errors import UsageError


def _common(p) -> None:
    p.add_argument("folder", metavar="FOLDER", help="the folder of images (searched recursively)")
    p.add_argument("--model", required=True, help="hub id or local folder of a DINOv2 or CLIP/SigLIP model")
    p.add_argument("--tool", help="embedding tool (default: dino.embed or clip.embed, from the model)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="parameter of the embedding tool, e.g. pool=mean (repeatable)",
    )
    p.add_argument(
        "--batch-size", type=int, default=16, metavar="N", help="images per forward pass (default 16)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    p.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="embed here (default) or on Ray actors"
    )
    p.add_argument(
        "--ray-address", metavar="ADDR", help="with --engine ray: this Ray cluster (default: a local one)"
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="with --engine ray: model actors (default 1)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "index",
        help="embed a folder's images (incrementally) for similar/duplicates",
        description="Embed every new or changed image of FOLDER and drop removed ones; "
        "the vectors live in FOLDER/.vfmstudio/index/.",
    )
    _common(p)
    p.set_defaults(func=run_index)

    p = subparsers.add_parser(
        "similar",
        help="the images of a folder most like an image or a text",
        description="Rank FOLDER's images by cosine similarity to IMAGE or to --text "
        "(a CLIP/SigLIP model for text).",
    )
    _common(p)
    p.add_argument("image", metavar="IMAGE", nargs="?", help="the query image (in FOLDER or anywhere)")
    p.add_argument("--text", help="a text query instead of an image")
    p.add_argument("--top", type=int, default=10, metavar="K", help="how many images to list (default 10)")
    p.set_defaults(func=run_similar)

    p = subparsers.add_parser(
        "duplicates",
        help="groups of identical and near-identical images in a folder",
        description="Exact copies (same pixels) first, then groups whose embeddings "
        "are at least --threshold alike.",
    )
    _common(p)
    p.add_argument(
        "--threshold",
        type=float,
        default=0.95,
        metavar="T",
        help="cosine similarity for near-duplicates, 0-1 (default 0.95)",
    )
    p.add_argument(
        "--remove-from",
        type=Path,
        metavar="PROJECT",
        help="remove every copy but one of each group from this project file (not from disk)",
    )
    p.add_argument(
        "--keep",
        choices=("first", "largest"),
        help="with --remove-from: which copy stays, the first listed or the one with most pixels "
        "(default first)",
    )
    p.set_defaults(func=run_duplicates)


def _build(args):
    from vfmstudio._plugin_host import get_host
    from vfmstudio.core.tools import ParamError
    from vfmstudio.engines.job import BatchError
    from vfmstudio.engines.progress import ProgressBar
    from vfmstudio.index.build import embedding_tool_for, update_index
    from vfmstudio.index.store import IndexStoreError

    if not DEVICE.match(args.device):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {args.device!r}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.engine == "local" and args.ray_address:
        raise UsageError("--ray-address applies to --engine ray only")
    if args.engine == "ray":  # a missing extra or an unreachable cluster: say so before any work
        from vfmstudio.engines._ray import RayUnavailable, preflight

        try:
            preflight(args.ray_address)
        except RayUnavailable as exc:
            raise UsageError(str(exc)) from None
    model = os.path.abspath(args.model) if os.path.isdir(args.model) else args.model
    try:
        tool_id = args.tool or embedding_tool_for(model)
        tool = get_host().tool(tool_id)
    except IndexStoreError as exc:
        raise UsageError(str(exc)) from None
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if "embedding" not in tool.returns:
        raise UsageError(f"{tool.id} returns no embedding; use dino.embed or clip.embed")
    bar = ProgressBar()
    try:
        params = tool.resolve_params(parse_params(args.param), from_text=True)
        index = update_index(
            args.folder,
            model=model,
            tool=tool,
            params=params,
            device=args.device,
            precision=args.precision,
            batch_size=args.batch_size,
            on_progress=bar,
            engine=args.engine,
            ray_address=args.ray_address,
            workers=args.workers,
        )
    except (IndexStoreError, ParamError) as exc:
        raise UsageError(str(exc)) from None
    except BatchError as exc:
        if exc.user_error:
            raise UsageError(str(exc)) from None
        raise
    except KeyboardInterrupt:
        bar.close()
        print(
            "interrupted: the vectors computed so far are kept; run the command again to continue",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
    return index


def _emit(args, payload: dict, lines: list[str]) -> None:
    if args.json:
        json.dump(payload, sys.stdout)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))


def run_index(args) -> int:
    index = _build(args)
    report = index.report.as_dict()
    lines = [
        f"{index.folder}: {report['images']} images, {report['embedded']} embedded, "
        f"{report['reused']} reused, {report['removed']} removed ({index.tool.id}, {index.model})"
    ]
    lines += [f"failed: {f['path']}: {f['reason']}" for f in report["failed"]]
    _emit(
        args,
        {
            **report,
            "folder": str(index.folder),
            "tool": index.tool.id,
            "model": index.model,
            "store": str(index.store.root),
        },
        lines,
    )
    return 0


def _query_vector(args, index):
    """The vector of --text, of IMAGE's stored content, or of IMAGE embedded now."""
    from vfmstudio._plugin_host import get_host
    from vfmstudio.core.image import ImageLoadError, image_id_for_file, load_image
    from vfmstudio.core.results import Embedding
    from vfmstudio.execution import ToolError, run_tool

    if bool(args.text) == bool(args.image):
        raise UsageError("give a query IMAGE or --text, not both")
    host = get_host()
    if args.text:
        text_tool = next(
            (
                t
                for t in host.tools.values()
                if t.family == index.tool.family and t.inputs.value == "text" and "embedding" in t.returns
            ),
            None,
        )
        if text_tool is None:
            raise UsageError(f"{index.tool.id} embeds images only; text search needs a CLIP/SigLIP model")
        try:
            pred = run_tool(
                text_tool,
                [],
                {"text": args.text},
                model=index.model,
                device=args.device,
                precision=args.precision,
            )
        except ToolError as exc:
            if exc.user_error:
                raise UsageError(str(exc)) from None
            raise
        return pred.of_type(Embedding)[0].vector, args.text
    path = Path(args.image).expanduser()
    try:
        image_id = image_id_for_file(path, reader=host.read_image)
        if image_id in index.store:
            return index.store.vector(image_id), str(path)
        image = load_image(path, reader=host.read_image)
        pred = run_tool(
            index.tool, [image], index.params, model=index.model, device=args.device, precision=args.precision
        )
    except ImageLoadError as exc:
        raise UsageError(str(exc)) from None
    except ToolError as exc:
        if exc.user_error:
            raise UsageError(str(exc)) from None
        raise
    return pred.of_type(Embedding)[0].vector, str(path)


def run_similar(args) -> int:
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    index = _build(args)
    vector, query = _query_vector(args, index)
    hits = index.similar(vector, args.top)
    lines = [f"{score:.4f}  {rel}" for rel, score in hits] or ["(the index is empty)"]
    _emit(
        args,
        {
            "query": query,
            "model": index.model,
            "tool": index.tool.id,
            "results": [{"path": rel, "score": score} for rel, score in hits],
        },
        lines,
    )
    return 0


def run_duplicates(args) -> int:
    if not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.keep and args.remove_from is None:
        raise UsageError("--keep goes with --remove-from PROJECT")
    project_path = _project_file(args.remove_from) if args.remove_from is not None else None
    index = _build(args)
    groups = index.duplicates(args.threshold)
    lines = [f"{g['kind']}: " + ", ".join(g["files"]) for g in groups] or ["no duplicates"]
    payload = {"threshold": args.threshold, "model": index.model, "groups": groups}
    if project_path is not None:
        removal = _remove_from_project(project_path, index.folder, groups, args.keep or "first")
        payload["removed"] = removal
        outside = removal["not_in_project"]
        note = f" ({outside} other copies were not in the project)" if outside else ""
        lines.append(f"removed from {project_path}: {len(removal['files'])} images{note}")
    _emit(args, payload, lines)
    return 0


def _project_file(path: Path) -> Path:
    from vfmstudio.core.project import DEFAULT_NAME

    path = path.expanduser()
    if path.is_dir():
        path = path / DEFAULT_NAME
    if not path.is_file():
        raise UsageError(f"{path}: no such project file")
    return path


def _remove_from_project(path: Path, folder: Path, groups: list[dict], keep: str) -> dict:
    """Remove all copies but one per group from the project (locked, one atomic save)."""
    from vfmstudio.core.annotations import AnnotationError
    from vfmstudio.core.commands import UndoStack
    from vfmstudio.core.image import ImageLoadError
    from vfmstudio.core.image_commands import RemoveImages
    from vfmstudio.core.project import ProjectError, image_size, open_project
    from vfmstudio.session.explore import copies_to_remove, project_keys

    def pixels(rel: str) -> int:
        width, height = image_size(folder / rel)
        return width * height

    try:
        plan = copies_to_remove([g["files"] for g in groups], keep, pixels)
    except (OSError, ImageLoadError) as exc:
        raise UsageError(f"cannot read an image's size for --keep largest: {exc}") from None
    rels = list(dict.fromkeys(rel for files in plan for rel in files))
    with project_locked(path, "vfmstudio duplicates --remove-from", "nothing was changed"):
        try:
            project = open_project(path)
        except ProjectError as exc:
            raise UsageError(str(exc)) from None
        keys = project_keys(project, folder, rels)
        removed = [(rel, key) for rel, key in zip(rels, keys) if key is not None]
        if removed:
            try:
                UndoStack(project.labels).push(RemoveImages(project, [key for _rel, key in removed]))
                project.save()
            except (AnnotationError, ProjectError, OSError) as exc:
                raise UsageError(f"{path}: {exc} (nothing was changed)") from None
    return {
        "project": str(path),
        "keep": keep,
        "files": [rel for rel, _key in removed],
        "not_in_project": len(rels) - len(removed),
    }

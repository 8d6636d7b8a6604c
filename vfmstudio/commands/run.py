"""``vfmstudio run TOOL IMAGE...``: run one tool headless and write its prediction and overlays."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vfmstudio.commands._common import DEVICE, Progress, add_timeout_option, parse_params, timeout_from_args
from vfmstudio.commands.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run one tool on images, without the window")
    p.add_argument("tool", help="tool id, e.g. dino.pca (see 'vfmstudio tools')")
    p.add_argument(
        "images",
        nargs="*",
        metavar="IMAGE",
        help="image files or folders (their images, sorted); none for a text tool",
    )
    p.add_argument("--model", help="hub id (org/name[@revision]) or a local folder")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="tool parameter (repeatable)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    p.add_argument("--out", type=Path, help="folder for prediction.json and overlay PNGs")
    p.add_argument("--json", action="store_true", help="print the prediction JSON on stdout")
    add_timeout_option(p, "the run")
    p.set_defaults(func=run)


def expand_paths(paths) -> list[Path]:
    """Files as given; a folder stands for the images inside it (recursively, naturally sorted)."""
    from vfmstudio.core.image import list_images

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = list_images([path])
            if not found:
                raise UsageError(f"{path}: the folder holds no images")
            out.extend(found)
        else:
            out.append(path)
    return out


def load_images(paths, reader=None, min_side=None):
    from vfmstudio.core.image import ImageLoadError, load_image

    images = []
    for path in expand_paths(paths):
        try:
            images.append(load_image(Path(path), reader=reader, min_side=min_side))
        except ImageLoadError as exc:
            raise UsageError(str(exc)) from None
    return images


def run(args) -> int:
    from vfmstudio._plugin_host import get_host
    from vfmstudio.execution import ToolError, run_tool
    from vfmstudio.isolation import stdout_to_stderr

    if not DEVICE.match(args.device):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {args.device!r}")
    if args.out:  # before any plugin code runs: a tool's chdir must not move the outputs
        args.out = args.out.absolute()
    host = get_host()
    try:
        tool = host.tool(args.tool)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    params = parse_params(args.param)
    timeout = timeout_from_args(args)
    if tool.inputs.value == "text" and args.images:
        raise UsageError(f"{tool.id} takes no image: it works from its parameters")
    if tool.inputs.value != "text" and not args.images:
        raise UsageError(f"{tool.id} needs at least one IMAGE")
    # Without overlays to draw, a coordinate-free tool gets large images at the size it needs (ADR 0160).
    images = load_images(
        args.images, reader=host.read_image, min_side=None if args.out else _side(tool, params)
    )
    progress = Progress()
    try:
        with stdout_to_stderr():  # what a tool prints must not end up in --json output
            prediction = run_tool(
                tool,
                images,
                params,
                model=args.model,
                device=args.device,
                precision=args.precision,
                on_progress=progress,
                params_from_text=True,
                timeout=timeout,
            )
    except ToolError as exc:
        if exc.user_error:
            raise UsageError(str(exc)) from None
        raise
    finally:
        progress.close()
    prediction = _with_reduction_notes(prediction, images)
    if args.out:
        write_outputs(prediction, images, args.out)
    if args.json:
        json.dump(prediction.to_json(), sys.stdout)
        sys.stdout.write("\n")
    elif not args.out:
        print(summarize(prediction))
    return 0


def _side(tool, params) -> int | None:
    from vfmstudio.core.tools import ParamError

    try:
        return tool.input_side(tool.resolve_params(params, from_text=True))
    except ParamError:  # run_tool reports it with the tool's name
        return None


def _with_reduction_notes(prediction, images):
    import dataclasses

    from vfmstudio.core.image import reduction_note

    notes = tuple(n for n in map(reduction_note, images) if n)
    return dataclasses.replace(prediction, notes=(*prediction.notes, *notes)) if notes else prediction


def write_outputs(prediction, images, out: Path) -> list[Path]:
    from vfmstudio.core.atomic import atomic_write_json
    from vfmstudio.core.overlay import render_prediction, save_png

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    written = [out / "prediction.json"]
    try:
        payload = prediction.to_json(sidecar_dir=out / "arrays")
        atomic_write_json(out / "prediction.json", payload, indent=1)
        pixels = {im.id: im.pixels for im in images}
        for name, rgb in render_prediction(prediction, pixels):
            path = out / f"overlay-{name}.png"
            save_png(path, rgb)
            written.append(path)
    except OSError as exc:  # a full disk, a read-only folder
        raise UsageError(f"{exc.filename or out}: cannot write the outputs ({exc.strerror or exc})") from None
    return written


def summarize(prediction) -> str:
    lines = [
        f"{prediction.tool} on {', '.join(Path(p).name for p in prediction.image_paths)}"
        f" (model {prediction.model or '-'}, device {prediction.device or '-'})"
    ]
    for r in prediction.results:
        if r.kind == "classification":
            lines.append("  " + ", ".join(f"{lab} {s:.3f}" for lab, s in zip(r.labels[:5], r.scores[:5])))
        elif r.kind == "text":
            lines.append(f"  {r.text}")
        elif r.kind in ("detections", "masks", "correspondences"):
            lines.append(f"  {r.kind}: {len(r)}")
        else:
            lines.append(f"  {r.kind}")
    lines += [f"  note: {note}" for note in prediction.notes]
    return "\n".join(lines)

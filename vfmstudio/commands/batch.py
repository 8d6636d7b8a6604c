"""``vfmstudio batch SRC --tool TOOL --out DIR``: run one tool over many images, resumably.

See docs/batch.md for the output folder layout. Heavy modules are imported inside :func:`run`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from vfmstudio.commands._common import DEVICE, add_timeout_option, parse_params, timeout_from_args
from vfmstudio.commands.errors import UsageError


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "batch",
        help="run a tool over a folder, list or glob of images, resumably",
        description="Run one tool over many images; each image's prediction is written "
        "to DIR/predictions/<key>.json as soon as it exists.",
    )
    p.add_argument(
        "src",
        metavar="SRC",
        help="a folder (searched recursively), a list file (one path per line) "
        "or a quoted glob such as 'photos/**/*.jpg'",
    )
    p.add_argument("--tool", required=True, help="tool id, e.g. dino.pca (see 'vfmstudio tools')")
    p.add_argument("--model", help="hub id (org/name[@revision]) or a local folder")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="tool parameter (repeatable)"
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, metavar="DIR", help="output folder")
    where.add_argument(
        "--into",
        type=Path,
        metavar="PROJECT",
        help="store the predictions in this project (created if missing) as pending, to review with "
        "'vfmstudio review' or in the window; running again with the same settings continues the run",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=8,
        metavar="N",
        help="images per batched forward pass (default 8)",
    )
    p.add_argument("--resume", action="store_true", help="continue a run in DIR, skipping finished images")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="local (default) or ray")
    p.add_argument(
        "--ray-address", metavar="ADDR", help="connect to this Ray cluster (default: start a local one)"
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="local: image-decoding threads; ray: model actors (default 1)",
    )
    p.add_argument(
        "--gpus-per-worker",
        type=_non_negative_float,
        metavar="G",
        help="ray: GPUs per actor (e.g. 1, or 0.5 to share one)",
    )
    p.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N images of SRC")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] | mps (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    add_timeout_option(p, "an image's run (it is listed in failures.jsonl)")
    p.set_defaults(func=run)


def _check_engine_options(args) -> None:
    if args.engine == "local":
        for flag, value in (("--ray-address", args.ray_address), ("--gpus-per-worker", args.gpus_per_worker)):
            if value is not None:
                raise UsageError(f"{flag} applies to --engine ray only")
    if not DEVICE.match(args.device):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {args.device!r}")


def build_spec(args):
    from vfmstudio._plugin_host import get_host
    from vfmstudio.core.tools import ParamError
    from vfmstudio.engines.worker import RunSpec

    host = get_host()
    try:
        tool = host.tool(args.tool)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    try:
        params = tool.resolve_params(parse_params(args.param), from_text=True)
    except ParamError as exc:
        raise UsageError(f"{tool.id}: {exc}") from None
    model = args.model or tool.default_model
    if model and os.path.isdir(model):  # workers may run in another folder: keep local models absolute
        model = os.path.abspath(model)
    return RunSpec(
        tool=tool,
        params=params,
        model=model,
        out=os.path.abspath(args.out) if args.out else "",
        device=args.device,
        precision=args.precision,
        timeout=timeout_from_args(args),
    )


def run(args) -> int:
    try:
        return _run(args)
    except OSError as exc:  # a full disk or an output folder that became unwritable mid-run
        where = exc.filename or args.out or args.into
        raise UsageError(
            f"{where}: {exc.strerror or exc} (finished images are kept; continue with --resume)"
        ) from None


def _run(args) -> int:
    from vfmstudio.engines.job import BatchError, plan_run
    from vfmstudio.engines.progress import ProgressBar

    _check_engine_options(args)
    spec = build_spec(args)
    if args.engine == "ray":  # a missing extra or an unreachable cluster must not leave a half-made DIR
        from vfmstudio.engines._ray import RayUnavailable, preflight

        try:
            preflight(args.ray_address)
        except RayUnavailable as exc:
            raise UsageError(str(exc)) from None
    if args.into is not None:
        from vfmstudio.commands.batch_into import plan_into

        plan = plan_into(spec, args)
    else:
        try:
            plan = plan_run(spec, args.src, resume=args.resume, limit=args.limit, batch_size=args.batch_size)
        except BatchError as exc:
            raise UsageError(str(exc)) from None
    bar = ProgressBar()
    progress = None
    try:
        if args.engine == "ray":
            from vfmstudio.engines._ray import RayUnavailable, run_ray

            try:
                progress = run_ray(
                    plan,
                    address=args.ray_address,
                    workers=args.workers or 1,
                    gpus_per_worker=args.gpus_per_worker or 0.0,
                    on_update=bar,
                )
            except RayUnavailable as exc:
                raise UsageError(str(exc)) from None
        else:
            from vfmstudio.engines.local import run_local
            from vfmstudio.isolation import stdout_to_stderr

            with stdout_to_stderr():  # what a tool prints must not end up in --json output
                sink = plan.output.write_prediction  # into a project, this also indexes the prediction
                progress = run_local(plan, workers=args.workers, on_update=bar, sink=sink)
    except BatchError as exc:
        bar.close()
        if exc.user_error:
            raise UsageError(str(exc)) from None
        raise
    except KeyboardInterrupt:
        bar.close()
        again = "run the same command again" if args.into is not None else "continue with --resume"
        print(f"interrupted: finished images are in {plan.output.predictions}; {again}", file=sys.stderr)
        raise
    bar.close()
    summary = progress.summary(plan, args.engine)
    missing = _count_what_was_written(summary, plan)
    plan.output.write_summary(summary)
    if args.json:
        json.dump(summary, sys.stdout)
        sys.stdout.write("\n")
    elif args.into is not None:
        print(describe(summary, plan.output.root))
        print(f"pending in {args.into}: review with 'vfmstudio review {args.into} --accept' or in the window")
    else:
        print(describe(summary, plan.output.root))
    if missing:
        print(
            f"error: {missing} images counted as done have no prediction file in {plan.output.predictions} "
            "(continue with --resume)",
            file=sys.stderr,
        )
        return 1
    return 0


def _count_what_was_written(summary: dict, plan) -> int:
    """Set ``summary["done"]`` from the prediction files on disk, not from what the run counted
    (a tool may have ended or fooled the worker that counted); returns how many are missing."""
    written = sum(1 for item in plan.todo if plan.output.is_done(item))
    missing = max(0, summary["done"] - written)
    summary["done"] = written
    if missing:
        summary["missing"] = missing
    return missing


def describe(summary: dict, out: Path) -> str:
    line = (
        f"{summary['tool']}: {summary['done']} written, {summary['failed']} failed, "
        f"{summary['skipped']} already done, of {summary['images']} images "
        f"in {summary['elapsed_s']:.1f} s ({summary['images_per_s']:.1f} images/s) -> {out}"
    )
    if summary["failed"]:
        line += f"\nfailures: {out / 'failures.jsonl'}"
    return line

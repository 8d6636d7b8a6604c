"""``vfmstudio models``: known models, whether they are cached, the device that would be used;
``vfmstudio models pull ID`` downloads one (progress on stderr, resumable, bounded by deadlines)."""

from __future__ import annotations

import json

from vfmstudio.commands.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list known models, or pull one into the cache")
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    pull = sub.add_parser("pull", help="download a model into the Hugging Face cache")
    pull.add_argument("ref", help="hub id, e.g. facebook/dinov2-small[@revision]")
    pull.set_defaults(func=run_pull)
    p.set_defaults(func=run_list)


def run_list(args) -> int:
    from vfmstudio.ml.catalog import list_models
    from vfmstudio.ml.devices import probe_device_without_torch
    from vfmstudio.ml.hub import hub_cache_dir

    models = list_models()
    device = probe_device_without_torch()
    if args.json:
        print(json.dumps({"device": device, "cache_dir": str(hub_cache_dir()), "models": models}, indent=2))
        return 0
    print(f"device (auto): {device.get('device')}   cache: {hub_cache_dir()}")
    for m in models:
        mark = "cached" if m.get("cached") else "-"
        gated = "gated" if m.get("gated") else ""
        print(
            f"  {m['ref']:<46} {m.get('family', ''):<10} {m.get('size', ''):>6} {mark:<7} {gated:<6} "
            f"{m.get('licence', '')}  ({m.get('plugin', '')})"
        )
    return 0


def run_pull(args) -> int:
    from vfmstudio.ml.errors import ModelError
    from vfmstudio.ml.hub import pull

    bar = _StderrProgress(args.ref)
    try:
        path = pull(args.ref, progress=bar)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    finally:
        bar.close()
    print(path)
    return 0


class _StderrProgress:
    """Progress on stderr: a line redrawn in place on a terminal; nothing when stderr is a file or a pipe,
    so that a failure stays the one line a script can read."""

    def __init__(self, ref: str) -> None:
        import sys

        self._out = sys.stderr
        self._live = self._out.isatty()
        self._ref = ref
        self._drawn = False

    def __call__(self, p) -> None:
        if not self._live:
            return
        files = (
            f"file {min(p.files_done + 1, p.files_total)}/{p.files_total} {p.file}" if p.files_total else ""
        )
        self._out.write(f"\r\033[K{self._ref}: {p.describe()}  {files}")
        self._out.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._out.write("\r\033[K")
            self._out.flush()

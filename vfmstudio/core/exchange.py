"""Running format codecs (export and import) declared by plugins as :class:`FormatSpec`.

A codec is a plain function named by ``FormatSpec.exporter`` / ``FormatSpec.importer``:

- ``export(project, out_dir, params, ctx) -> None`` writes ``project`` (a
  :class:`~vfmstudio.core.project.Project`) under ``out_dir``;
- ``import(source, params, ctx) -> Project`` reads a file or folder into an in-memory project
  (:func:`vfmstudio.core.project.in_memory`) rooted at the dataset folder.

``ctx`` (:class:`ExchangeContext`) reports progress, checks cancel, records written files and
warnings (things a format cannot express). :func:`safe_join` keeps paths read from files inside the
dataset folder and names written files inside the output folder.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vfmstudio.core.cancel import CancelToken
from vfmstudio.core.tools import FormatSpec, ParamError


class FormatError(ValueError):
    """A file could not be read or written in a format; the message names the file and the reason."""


@dataclass
class ExchangeContext:
    cancel: CancelToken = field(default_factory=CancelToken)
    on_progress: Callable[[float | None, str], None] | None = None
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def progress(self, fraction: float | None, message: str = "") -> None:
        """Report progress in [0, 1] and raise :class:`~vfmstudio.core.cancel.Cancelled` if cancelled."""
        self.cancel.raise_if_cancelled()
        if self.on_progress is not None:
            self.on_progress(None if fraction is None else max(0.0, min(1.0, float(fraction))), message)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def wrote(self, path: Path) -> Path:
        self.files.append(path)
        return path


def safe_join(root: str | os.PathLike[str], relative: str, *, what: str = "path") -> Path:
    """``root / relative``, refusing absolute paths, drive letters and anything escaping ``root``."""
    text = str(relative).replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        raise FormatError(f"{what} {relative!r} is absolute or empty; only paths inside the dataset folder are read")
    base = Path(root).resolve()
    target = (base / PurePosixPath(text)).resolve()
    if target != base and base not in target.parents:
        raise FormatError(f"{what} {relative!r} escapes the dataset folder {base}")
    return target


def _load(ref: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    fn: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        fn = getattr(fn, part)
    return fn


def _resolve(spec: FormatSpec, params: Mapping[str, Any] | None, from_text: bool) -> dict[str, Any]:
    given = dict(params or {})
    known = {p.name: p for p in spec.params}
    for name in given:
        if name not in known:
            raise ParamError(f"format {spec.id} has no parameter '{name}' (it has: {', '.join(known) or 'none'})")
    out = {}
    for name, p in known.items():
        if name in given:
            v = given[name]
            out[name] = p.parse(v) if from_text and isinstance(v, str) else p.coerce(v)
        else:
            out[name] = p.default
    return out


#: Present in an export folder while an export runs, and after one that did not finish.
INCOMPLETE_MARKER = "EXPORT-INCOMPLETE.txt"


def _check_output_names(out: Path, params: Mapping[str, Any]) -> None:
    """A ``filename`` parameter names a file inside the export folder: no ``..``, no absolute path."""
    for name, value in params.items():
        if (name == "filename" or name.endswith("_filename")) and isinstance(value, str):
            try:
                safe_join(out, value, what=f"parameter '{name}'")
            except FormatError:
                raise FormatError(f"parameter '{name}' {value!r} must be a file name inside the export folder "
                                  f"{out} (no '..', no absolute path)") from None


def export_project(spec: FormatSpec, project: Any, out_dir: str | os.PathLike[str],
                   params: Mapping[str, Any] | None = None, *, from_text: bool = False,
                   cancel: CancelToken | None = None,
                   on_progress: Callable[[float | None, str], None] | None = None) -> ExchangeContext:
    """Export ``project`` with ``spec``'s exporter; returns the context (files written, warnings)."""
    if not spec.exporter:
        raise FormatError(f"format {spec.id} can only be imported")
    resolved = _resolve(spec, params, from_text)
    ctx = ExchangeContext(cancel or CancelToken(), on_progress)
    out = Path(out_dir)
    _check_output_names(out, resolved)  # before anything is created, for every exporter
    out.mkdir(parents=True, exist_ok=True)
    # A killed or failed export leaves images without labels and nothing saying so: this marker is
    # there until the exporter has finished (an interrupted one leaves it for the user to see).
    marker = out / INCOMPLETE_MARKER
    marker.write_text(f"A {spec.id} export into this folder did not finish; its files are incomplete. "
                      f"Export again to replace them.\n", encoding="utf-8")
    _load(spec.exporter)(project, out, resolved, ctx)
    marker.unlink(missing_ok=True)
    ctx.progress(1.0, "done")
    return ctx


def import_dataset(spec: FormatSpec, source: str | os.PathLike[str], params: Mapping[str, Any] | None = None, *,
                   from_text: bool = False, cancel: CancelToken | None = None,
                   on_progress: Callable[[float | None, str], None] | None = None) -> tuple[Any, ExchangeContext]:
    """Read ``source`` with ``spec``'s importer into an in-memory project."""
    if not spec.importer:
        raise FormatError(f"format {spec.id} can only be exported")
    resolved = _resolve(spec, params, from_text)
    ctx = ExchangeContext(cancel or CancelToken(), on_progress)
    src = Path(source)
    if not src.exists():
        raise FormatError(f"{src}: no such file or folder")
    try:
        project = _load(spec.importer)(src, resolved, ctx)
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError, OSError,
            RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        # hostile or damaged files: one line naming the file, not a traceback
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise FormatError(f"{src}: not readable as {spec.id} ({type(exc).__name__}: {detail})") from None
    except Exception as exc:
        if type(exc).__name__ != "DecompressionBombError":  # Pillow's, from an embedded image (a mask)
            raise
        raise FormatError(f"{src}: {' '.join(str(exc).split())}") from None
    ctx.progress(1.0, "done")
    return project, ctx

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
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vfmstudio.core.cancel import CancelToken
from vfmstudio.core.tools import FormatSpec, ParamError


class FormatError(ValueError):
    """A file could not be read or written in a format; the message names the file and the reason."""


# Nouns of the things a report counts (singular, plural); other kinds are written as given.
_NOUNS = {
    "box": ("box", "boxes"),
    "polygon": ("polygon", "polygons"),
    "mask": ("mask", "masks"),
    "points": ("point set", "point sets"),
    "rotated_box": ("rotated box", "rotated boxes"),
    "ellipse": ("ellipse", "ellipses"),
    "circle": ("circle", "circles"),
    "polyline": ("polyline", "polylines"),
    "keypoints": ("keypoint set", "keypoint sets"),
    "hole": ("hole", "holes"),
    "tag": ("tag", "tags"),
    "caption": ("caption", "captions"),
    "attribute": ("attribute", "attributes"),
    "file": ("file", "files"),
    "line": ("line", "lines"),
    "image": ("image", "images"),
    "value": ("value", "values"),
    "track": ("track", "tracks"),
}


def noun(kind: str, n: int) -> str:
    """``3 rotated boxes``, ``1 keypoint set``."""
    one, many = _NOUNS.get(kind, (kind.replace("_", " "), kind.replace("_", " ") + "s"))
    return f"{n} {one if n == 1 else many}"


@dataclass
class LossReport:
    """What an import or export kept, converted and dropped, counted per kind of thing.

    Codecs count conversions and drops as they happen; what is kept is counted once at the end
    from the annotations (see :func:`export_project` and :func:`import_dataset`), so nothing
    can be lost without being counted.
    """

    kept: Counter = field(default_factory=Counter)  # kind -> n
    converted: Counter = field(default_factory=Counter)  # (kind, to kind) -> n
    dropped: Counter = field(default_factory=Counter)  # (kind, reason) -> n

    def summary(self) -> str:
        parts = []
        if self.kept:
            parts.append("kept " + ", ".join(noun(k, n) for k, n in sorted(self.kept.items()) if n > 0))
        if self.converted:
            parts.append(
                "converted "
                + ", ".join(
                    f"{noun(k, n)} to {_NOUNS.get(to, (to, to))[1]}"
                    for (k, to), n in sorted(self.converted.items())
                )
            )
        if self.dropped:
            parts.append(
                "dropped "
                + ", ".join(f"{noun(k, n)} ({why})" for (k, why), n in sorted(self.dropped.items()))
            )
        return "; ".join(parts) if parts else "nothing to keep"

    def to_json(self) -> dict:
        return {
            "kept": dict(self.kept),
            "converted": [{"kind": k, "to": to, "count": n} for (k, to), n in sorted(self.converted.items())],
            "dropped": [
                {"kind": k, "reason": why, "count": n} for (k, why), n in sorted(self.dropped.items())
            ],
        }


@dataclass
class ExchangeContext:
    cancel: CancelToken = field(default_factory=CancelToken)
    on_progress: Callable[[float | None, str], None] | None = None
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    report: LossReport = field(default_factory=LossReport)
    file: Path | None = None  # the file being read, named by errors that escape a codec

    def progress(self, fraction: float | None, message: str = "") -> None:
        """Report progress in [0, 1] and raise :class:`~vfmstudio.core.cancel.Cancelled` if cancelled."""
        self.cancel.raise_if_cancelled()
        if self.on_progress is not None:
            self.on_progress(None if fraction is None else max(0.0, min(1.0, float(fraction))), message)

    def warn(
        self, message: str, *, file: str | os.PathLike[str] | None = None, line: int | None = None
    ) -> None:
        """A warning, prefixed with the file (and line) at fault when given; each text is kept once."""
        where = "" if file is None else f"{file}: " + ("" if line is None else f"line {line}: ")
        text = where + message
        if text not in self.warnings:
            self.warnings.append(text)

    def converted(self, kind: str, to: str, why: str = "", n: int = 1) -> None:
        """``n`` things of ``kind`` were written as ``to`` (the nearest shape the format holds)."""
        self.report.converted[(kind, to)] += n
        self.warn(
            f"{_NOUNS.get(kind, (kind, kind + 's'))[1]} written as {_NOUNS.get(to, (to, to + 's'))[1]}"
            + (f" ({why})" if why else "")
        )

    def dropped(
        self,
        kind: str,
        why: str,
        n: int = 1,
        *,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        detail: str = "",
    ) -> None:
        """``n`` things of ``kind`` were left out because ``why``; ``detail`` goes to the warning only."""
        self.report.dropped[(kind, why)] += n
        self.warn(f"{_NOUNS.get(kind, (kind, kind + 's'))[0]} skipped: {detail or why}", file=file, line=line)

    def wrote(self, path: Path) -> Path:
        self.files.append(path)
        return path


def safe_join(root: str | os.PathLike[str], relative: str, *, what: str = "path") -> Path:
    """``root / relative``, refusing absolute paths, drive letters and anything escaping ``root``."""
    text = str(relative).replace("\\", "/")
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        raise FormatError(
            f"{what} {relative!r} is absolute or empty; only paths inside the dataset folder are read"
        )
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
            raise ParamError(
                f"format {spec.id} has no parameter '{name}' (it has: {', '.join(known) or 'none'})"
            )
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
                raise FormatError(
                    f"parameter '{name}' {value!r} must be a file name inside the export folder "
                    f"{out} (no '..', no absolute path)"
                ) from None


def shape_kind(shape: Any) -> str:
    """The kind a report counts a shape as (circles apart from other ellipses)."""
    kind = getattr(shape, "kind", type(shape).__name__.lower())
    return "circle" if kind == "ellipse" and getattr(shape, "is_circle", False) else kind


def _count_labels(labels: Any) -> Counter:
    counts: Counter = Counter(shape_kind(a.shape) for a in labels.annotations())
    counts["tag"] = sum(len(t) for t in labels.tags.values())
    counts["caption"] = sum(1 for c in labels.captions.values() if c)
    return counts


def _finish(ctx: ExchangeContext, strict: bool, what: str) -> None:
    if strict and ctx.warnings:
        more = f" (and {len(ctx.warnings) - 1} more)" if len(ctx.warnings) > 1 else ""
        raise FormatError(f"{what} stopped by --strict: {ctx.warnings[0]}{more}")


def _plain_reason(exc: BaseException) -> str:
    """Why a file could not be read, in words (no Python exception names or internals)."""
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "a field is missing"
    if isinstance(exc, IndexError):
        return "a list is shorter than expected"
    if isinstance(exc, TypeError | AttributeError):
        return "a value has the wrong type"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ArithmeticError):
        return "a number is out of range"
    if isinstance(exc, OSError):  # an image refused by the loader says why (PostScript, ...)
        return exc.strerror or " ".join(str(exc).split()) or "cannot be read"
    text = " ".join(str(exc).split())
    if "int()" in text or "float" in text or "convert" in text:
        return "a value is not a number"
    return text or "unexpected content"


def export_project(
    spec: FormatSpec,
    project: Any,
    out_dir: str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    *,
    from_text: bool = False,
    cancel: CancelToken | None = None,
    on_progress: Callable[[float | None, str], None] | None = None,
    strict: bool = False,
) -> ExchangeContext:
    """Export ``project`` with ``spec``'s exporter; returns the context (files written, warnings
    and the loss report). ``strict``: any warning raises :class:`FormatError` once written."""
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
    marker.write_text(
        f"A {spec.id} export into this folder did not finish; its files are incomplete. "
        f"Export again to replace them.\n",
        encoding="utf-8",
    )
    _load(spec.exporter)(project, out, resolved, ctx)
    marker.unlink(missing_ok=True)
    lost: Counter[str] = Counter()
    for (kind, _), n in (*ctx.report.converted.items(), *ctx.report.dropped.items()):
        lost[kind] += n
    for kind, n in _count_labels(project.labels).items():
        if n - lost[kind] > 0:
            ctx.report.kept[kind] = n - lost[kind]
    ctx.progress(1.0, "done")
    _finish(ctx, strict, f"export to {out}")
    return ctx


def import_dataset(
    spec: FormatSpec,
    source: str | os.PathLike[str],
    params: Mapping[str, Any] | None = None,
    *,
    from_text: bool = False,
    cancel: CancelToken | None = None,
    on_progress: Callable[[float | None, str], None] | None = None,
    strict: bool = False,
) -> tuple[Any, ExchangeContext]:
    """Read ``source`` with ``spec``'s importer into an in-memory project. Lenient: codecs skip
    or clip what they cannot use, with a counted warning; ``strict`` makes any warning an error."""
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
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        ArithmeticError,
        OSError,
        RecursionError,
    ) as exc:  # RecursionError: JSON nested thousands deep
        # hostile or damaged files: one line naming the file, not a traceback
        raise FormatError(f"{ctx.file or src}: not readable as {spec.id} ({_plain_reason(exc)})") from None
    except Exception as exc:
        if type(exc).__name__ != "DecompressionBombError":  # Pillow's, from an embedded image (a mask)
            raise
        raise FormatError(f"{ctx.file or src}: {' '.join(str(exc).split())}") from None
    made: Counter = Counter()
    for (_, to), n in ctx.report.converted.items():
        made[to] += n
    for kind, n in _count_labels(project.labels).items():
        if n - made[kind] > 0:
            ctx.report.kept[kind] = n - made[kind]
    ctx.progress(1.0, "done")
    _finish(ctx, strict, f"import of {src}")
    return project, ctx

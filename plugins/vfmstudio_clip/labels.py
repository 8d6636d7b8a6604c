"""Class names from a parameter: a comma/semicolon list, or a text file with one label per line."""

from __future__ import annotations

from pathlib import Path

from vfmstudio.plugin_api import ParamError

MAX_LABELS = 2000


def read_labels(value: tuple[str, ...] | list[str], name: str = "labels") -> tuple[str, ...]:
    """The labels given, or those read from a file when the single item names an existing file.

    A file holds one label per line; blank lines and lines starting with ``#`` are skipped.
    Duplicates are refused, since two identical classes would split one probability.
    """
    items = tuple(v.strip() for v in value if v.strip())
    if len(items) == 1 and _looks_like_file(items[0]):
        path = Path(items[0]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ParamError(f"parameter '{name}': cannot read label file {path}: {exc}") from None
        items = tuple(
            line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        )
        if not items:
            raise ParamError(f"parameter '{name}': label file {path} holds no labels")
    if not items:
        raise ParamError(f"parameter '{name}': give at least one label, e.g. {name}=cat,dog,car")
    if len(items) > MAX_LABELS:
        raise ParamError(f"parameter '{name}': {len(items)} labels is more than the limit of {MAX_LABELS}")
    seen: set[str] = set()
    for label in items:
        if label in seen:
            raise ParamError(f"parameter '{name}': label {label!r} is given twice")
        seen.add(label)
    return items


def _looks_like_file(item: str) -> bool:
    try:
        return Path(item).expanduser().is_file()
    except (OSError, ValueError):
        return False

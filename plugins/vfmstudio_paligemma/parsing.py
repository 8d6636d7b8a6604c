"""Parsing PaliGemma's ``<locNNNN>`` / ``<segNNN>`` output into objects. Pure Python: no torch, no numpy.

PaliGemma answers ``detect a ; b`` with ``<loc><loc><loc><loc> a ; <loc>... b`` and ``segment a ; b``
with four loc tokens, sixteen seg tokens and the label per object. A box is y_min, x_min, y_max, x_max in
units of 1/1024 of the (square-resized) image, so it scales back to the original width and height.

Generated text can be cut short (``max_new_tokens``) or malformed (partial token groups, out-of-range
numbers, stray text, missing ``;``). :func:`parse_objects` never raises: it returns every object that is
complete and well formed, and skips the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOC_BINS = 1024
SEG_CODES = 128
LOCS_PER_BOX = 4
SEGS_PER_MASK = 16

# One lexical token: a location, a segmentation code, a separator, or a run of other text.
# ``<`` that does not start a loc/seg token is ordinary text.
_LEX = re.compile(r"<loc(\d{4})>|<seg(\d{3})>|(;)|([^<;]+|<)")

# A loc/seg token cut off at the very end of the output (generation stopped inside it).
_CUT_TOKEN = re.compile(r"<(?:l(?:o(?:c\d{0,4})?)?|s(?:e(?:g\d{0,3})?)?)?$")

_LOC, _SEG, _SEP, _TEXT = "loc", "seg", "sep", "text"


@dataclass(frozen=True)
class ParsedObject:
    """One object: ``locs`` (y_min, x_min, y_max, x_max) in 1/1024 units; ``seg`` 16 codes or None."""

    locs: tuple[int, int, int, int]
    label: str
    seg: tuple[int, ...] | None = None

    def box_xyxy(self, width: int, height: int) -> tuple[float, float, float, float]:
        return box_to_xyxy(self.locs, width, height)


def _lex(text: str) -> list[tuple[str, int | str]]:
    tokens: list[tuple[str, int | str]] = []
    for m in _LEX.finditer(text):
        loc, seg, sep, other = m.groups()
        if loc is not None:
            tokens.append((_LOC, int(loc)))
        elif seg is not None:
            tokens.append((_SEG, int(seg)))
        elif sep is not None:
            tokens.append((_SEP, ";"))
        else:
            tokens.append((_TEXT, other))
    return tokens


def _is_blank(token: tuple[str, int | str]) -> bool:
    return token[0] == _TEXT and not str(token[1]).strip()


def _read_run(tokens: list[tuple[str, int | str]], i: int, kind: str, limit: int) -> tuple[list[int], int]:
    """Up to ``limit`` consecutive ``kind`` tokens from ``i``, allowing whitespace between them (some
    decoders put a space between added tokens). Returns their numbers and the index after the last."""
    values: list[int] = []
    n = len(tokens)
    while len(values) < limit:
        j = i
        while j < n and _is_blank(tokens[j]):
            j += 1
        if j < n and tokens[j][0] == kind:
            values.append(int(tokens[j][1]))
            i = j + 1
        else:
            break
    return values, i


def _skip_blanks(tokens: list[tuple[str, int | str]], i: int) -> int:
    while i < len(tokens) and _is_blank(tokens[i]):
        i += 1
    return i


def _read_object(tokens: list[tuple[str, int | str]], i: int) -> tuple[ParsedObject | None, int]:
    """Try to read one object starting at the loc token ``tokens[i]``.

    Returns the object (or None when malformed) and the index where reading stopped.
    """
    n = len(tokens)
    locs, i = _read_run(tokens, i, _LOC, LOCS_PER_BOX)
    if len(locs) < LOCS_PER_BOX:
        return None, i
    i = _skip_blanks(tokens, i)
    seg: list[int] | None = None
    if i < n and tokens[i][0] == _SEG:
        seg, i = _read_run(tokens, i, _SEG, SEGS_PER_MASK)
        if len(seg) < SEGS_PER_MASK:
            return None, i  # a cut or broken mask: the object is incomplete
    after = _skip_blanks(tokens, i)
    if after < n and tokens[after][0] in (_LOC, _SEG):
        return None, after  # e.g. five locs in a row, or seventeen segs: ambiguous, skip
    label_parts: list[str] = []
    while i < n and tokens[i][0] == _TEXT:
        label_parts.append(str(tokens[i][1]))
        i += 1
    if not all(0 <= v < LOC_BINS for v in locs):
        return None, i
    if seg is not None and not all(0 <= v < SEG_CODES for v in seg):
        return None, i
    label = " ".join("".join(label_parts).split())
    return ParsedObject(locs=tuple(locs), label=label, seg=None if seg is None else tuple(seg)), i  # type: ignore[arg-type]


def parse_objects(text: str) -> list[ParsedObject]:
    """Every complete object in ``text``, in order. Never raises (non-strings give an empty list)."""
    if not isinstance(text, str):
        return []
    tokens = _lex(_CUT_TOKEN.sub("", text))
    objects: list[ParsedObject] = []
    i, n = 0, len(tokens)
    while i < n:
        if tokens[i][0] != _LOC:
            i += 1
            continue
        obj, stop = _read_object(tokens, i)
        if obj is not None:
            objects.append(obj)
        i = max(stop, i + 1)
    return objects


def box_to_xyxy(locs: tuple[int, int, int, int] | list[int], width: int, height: int) -> tuple[float, ...]:
    """(y_min, x_min, y_max, x_max) in 1/1024 units -> (x0, y0, x1, y1) pixels, clamped, x0 < x1, y0 < y1.

    Swapped corners are put in order; a zero-size box is widened by one bin (1/1024 of the side) so that
    every object keeps a drawable box.
    """
    y_min, x_min, y_max, x_max = (min(max(int(v), 0), LOC_BINS) for v in locs)
    x0, x1 = _span(x_min, x_max, width)
    y0, y1 = _span(y_min, y_max, height)
    return (x0, y0, x1, y1)


def _span(lo: int, hi: int, size: int) -> tuple[float, float]:
    size = max(int(size), 1)
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        if hi < LOC_BINS:
            hi += 1
        else:
            lo -= 1
    return lo / LOC_BINS * size, hi / LOC_BINS * size


def split_classes(classes: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Class names from ``"cat ; dog"``, ``"cat, dog"`` or a list; blanks dropped, order kept."""
    if isinstance(classes, str):
        sep = ";" if ";" in classes else ","
        classes = classes.split(sep)
    out: list[str] = []
    for c in classes:
        name = " ".join(str(c).replace(";", " ").split())
        if name and name not in out:
            out.append(name)
    return tuple(out)

"""Parsing PaliGemma's ``<locNNNN>`` / ``<segNNN>`` output into objects. Pure Python: no torch, no numpy.

PaliGemma answers ``detect a ; b`` with ``<loc><loc><loc><loc> a ; <loc>... b`` and ``segment a ; b``
with four loc tokens, sixteen seg tokens and the label per object. A box is y_min, x_min, y_max, x_max in
units of 1/1024 of the (square-resized) image, so it scales back to the original width and height.

Generated text can be cut short (``max_new_tokens``) or malformed (partial token groups, out-of-range
numbers, stray text, missing ``;``). :func:`parse_objects` never raises: it returns every object that is
complete and well formed, and skips the rest. Where it departs from the reference regex parser (the
PaliGemma demo's ``(.*?)`` + four adjacent locs + optional sixteen segs + label), ADR 0031 says how and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    """One object: ``locs`` (y_min, x_min, y_max, x_max) in 1/1024 units; ``seg`` 16 codes or None.

    ``spans`` are the character ranges ``[start, end)`` of the object's loc tokens and of its label in the
    parsed text (for scoring the object by the probabilities of those tokens); not part of equality.
    """

    locs: tuple[int, int, int, int]
    label: str
    seg: tuple[int, ...] | None = None
    spans: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)

    def box_xyxy(self, width: int, height: int) -> tuple[float, float, float, float]:
        return box_to_xyxy(self.locs, width, height)


# A lexical token: kind, value, start and end offsets in the text.
_Token = tuple[str, int | str, int, int]


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for m in _LEX.finditer(text):
        loc, seg, sep, other = m.groups()
        if loc is not None:
            tokens.append((_LOC, int(loc), m.start(), m.end()))
        elif seg is not None:
            tokens.append((_SEG, int(seg), m.start(), m.end()))
        elif sep is not None:
            tokens.append((_SEP, ";", m.start(), m.end()))
        else:
            tokens.append((_TEXT, other, m.start(), m.end()))
    return tokens


def _is_blank(token: _Token) -> bool:
    return token[0] == _TEXT and not str(token[1]).strip()


def _read_run(tokens: list[_Token], i: int, kind: str, limit: int | None) -> tuple[list[int], int]:
    """Up to ``limit`` (None: any number of) consecutive ``kind`` tokens from ``i``, allowing whitespace
    between them (some decoders put a space between added tokens). Returns the indices of the tokens read
    and the index after the last."""
    found: list[int] = []
    n = len(tokens)
    while limit is None or len(found) < limit:
        j = i
        while j < n and _is_blank(tokens[j]):
            j += 1
        if j < n and tokens[j][0] == kind:
            found.append(j)
            i = j + 1
        else:
            break
    return found, i


def _box_locs(run: list[int]) -> list[int] | None:
    """The four loc tokens of a box among a run of loc token indices (whitespace allowed between them).

    Four: those. More: when the last four are adjacent and whitespace parts them from the locs before,
    those earlier locs are stray and the last four are the box, as the reference regex (four adjacent
    locs, anything before them skipped) reads it. Any other run is ambiguous: None.
    """
    if len(run) == LOCS_PER_BOX:
        return run
    if len(run) > LOCS_PER_BOX:
        last = run[-LOCS_PER_BOX:]
        adjacent = all(b == a + 1 for a, b in zip(last, last[1:]))
        if adjacent and run[-LOCS_PER_BOX - 1] != last[0] - 1:
            return last
    return None


def _skip_blanks(tokens: list[_Token], i: int) -> int:
    while i < len(tokens) and _is_blank(tokens[i]):
        i += 1
    return i


def _read_object(tokens: list[_Token], i: int) -> tuple[ParsedObject | None, int]:
    """Try to read one object starting at the loc token ``tokens[i]``.

    Returns the object (or None when malformed) and the index where reading stopped.
    """
    n = len(tokens)
    run, i = _read_run(tokens, i, _LOC, None)
    box = _box_locs(run)
    if box is None:
        return None, (i if len(run) < LOCS_PER_BOX else run[LOCS_PER_BOX])  # ambiguous: resume inside
    locs = [int(tokens[j][1]) for j in box]
    i = _skip_blanks(tokens, i)
    seg: list[int] | None = None
    if i < n and tokens[i][0] == _SEG:
        seg_run, i = _read_run(tokens, i, _SEG, SEGS_PER_MASK)
        seg = [int(tokens[j][1]) for j in seg_run]
        if len(seg) < SEGS_PER_MASK:
            return None, i  # a cut or broken mask: the object is incomplete
    after = _skip_blanks(tokens, i)
    if after < n and tokens[after][0] in (_LOC, _SEG):
        return None, after  # e.g. seventeen segs: ambiguous, skip
    first_label = i
    while i < n and tokens[i][0] == _TEXT:
        i += 1
    if not all(0 <= v < LOC_BINS for v in locs):
        return None, i
    if seg is not None and not all(0 <= v < SEG_CODES for v in seg):
        return None, i
    label = " ".join("".join(str(t[1]) for t in tokens[first_label:i]).split())
    spans = [(tokens[box[0]][2], tokens[box[-1]][3])]
    if label:
        raw = "".join(str(t[1]) for t in tokens[first_label:i])
        start = tokens[first_label][2] + len(raw) - len(raw.lstrip())
        spans.append((start, start + len(raw.strip())))  # the label without the spaces around it
    return ParsedObject(
        locs=(locs[0], locs[1], locs[2], locs[3]),
        label=label,
        seg=None if seg is None else tuple(seg),
        spans=tuple(spans),
    ), i


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

"""COCO run-length encoding of binary masks, in numpy (no pycocotools at run time).

Runs are counted over the mask in column-major (Fortran) order, starting with a run of zeros.
The compressed string form is COCO's: each count (delta-coded against the count two places
earlier, after the first three) is written in 5-bit groups with a continuation bit, offset by 48.
The one RLE codec of the app: project masks (core/annotations.py), results and COCO files use it.
"""

from __future__ import annotations

import numpy as np


def mask_to_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a 2-D boolean mask in column-major order, beginning with zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [int(r) for r in runs]


def counts_to_mask(counts: list[int], height: int, width: int) -> np.ndarray:
    total = int(sum(counts))
    if total != height * width:
        raise ValueError(f"RLE counts cover {total} pixels, expected {height}x{width}={height * width}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T.copy()


def counts_to_string(counts: list[int]) -> str:
    out: list[str] = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift keeps the sign, as the format requires
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _string_to_counts_exact(text: str) -> list[int]:
    """The format's reference loop, one character at a time (any count length)."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        x = 0
        shift = 0
        more = True
        while more:
            if pos >= len(text):
                raise ValueError("RLE string ends inside a count")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE string has an invalid character {text[pos]!r}")
            x |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and (c & 0x10):
                x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    if any(c < 0 for c in counts):
        raise ValueError("RLE string decodes to a negative run length")
    return counts


def string_to_counts(text: str) -> list[int]:
    """Run lengths of a compressed COCO RLE string, vectorised: opening a project decodes every mask."""
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return []
    if (codes < 0).any() or (codes >= 64).any():
        raise ValueError("RLE string has an invalid character")
    last = (codes & 0x20) == 0  # a character without the continuation bit ends a count
    if not last[-1]:
        raise ValueError("RLE string ends inside a count")
    group = np.concatenate(([0], np.cumsum(last)[:-1]))
    starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    pos = np.arange(codes.size) - starts[group]
    if pos.max() > 11:
        return _string_to_counts_exact(text)  # absurdly long counts: let the exact decoder judge
    values = np.zeros(starts.size, dtype=np.int64)
    np.add.at(values, group, (codes & 0x1F) << (5 * pos))
    ends = np.flatnonzero(last)
    negative = (codes[ends] & 0x10) != 0
    values[negative] |= -1 << (5 * (pos[ends[negative]] + 1))
    out = values.copy()
    if out.size > 3:
        out[3::2] = values[1] + np.cumsum(values[3::2])
    if out.size > 4:
        out[4::2] = values[2] + np.cumsum(values[4::2])
    if (out < 0).any():
        raise ValueError("RLE string decodes to a negative run length")
    return out.tolist()


def encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE: {'size': [h, w], 'counts': str}."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(mask_to_counts(mask))}


def decode(rle: dict) -> np.ndarray:
    """Decode compressed (string) or uncompressed (list) COCO RLE to a bool (h, w) mask."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a COCO RLE object: {exc}") from None
    if h < 0 or w < 0:
        raise ValueError("RLE size must be non-negative")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        counts = string_to_counts(counts)
    elif isinstance(counts, list) and all(isinstance(c, int) and c >= 0 for c in counts):
        counts = list(counts)
    else:
        raise ValueError("RLE counts must be a string or a list of non-negative integers")
    return counts_to_mask(counts, h, w)


def area(rle: dict) -> int:
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        counts = string_to_counts(counts.decode("ascii") if isinstance(counts, bytes) else counts)
    return int(sum(counts[1::2]))

"""A class's keypoint skeleton as the text a person types: names in drawing order, comma-separated,
and edges as ``name-name`` pairs (or 1-based numbers), e.g. ``nose, neck, left hand`` and
``nose-neck, neck-left hand``. Qt-free, so the dialog stays a form."""

from __future__ import annotations

from vfmstudio.core.annotations import AnnotationError, Skeleton
from vfmstudio.core.text import clean_label

MAX_KEYPOINTS = 1000  # far above any pose format (COCO-WholeBody has 133)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def parse_skeleton(names_text: str, edges_text: str = "") -> Skeleton | None:
    """The skeleton the two fields describe; None when no names are given (no skeleton)."""
    names = [clean_label(n) for n in _split(names_text)]
    if not names:
        if _split(edges_text):
            raise AnnotationError("skeleton: edges need keypoint names")
        return None
    if len(names) > MAX_KEYPOINTS:
        raise AnnotationError(f"skeleton: at most {MAX_KEYPOINTS} keypoints, got {len(names)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AnnotationError(f"skeleton: {', '.join(repr(n) for n in twice)} named twice")
    where = {n: i for i, n in enumerate(names)}

    def index(token: str) -> int | None:
        token = token.strip()
        if token in where:
            return where[token]
        if token.isdigit() and 1 <= int(token) <= len(names):
            return int(token) - 1
        return None

    edges: list[tuple[int, int]] = []
    for pair in _split(edges_text):
        # a name may hold "-" itself ("left-eye"): try every "-" until both sides are keypoints
        cuts = [i for i, c in enumerate(pair) if c == "-"]
        found = next(
            (
                (a, b)
                for i in cuts
                if (a := index(pair[:i])) is not None and (b := index(pair[i + 1 :])) is not None
            ),
            None,
        )
        if found is None:
            raise AnnotationError(f"skeleton: edge {pair!r} does not join two of the keypoints (name-name)")
        if found[0] == found[1]:
            raise AnnotationError(f"skeleton: edge {pair!r} joins a keypoint to itself")
        if found not in edges and found[::-1] not in edges:
            edges.append(found)
    return Skeleton(tuple(names), tuple(edges))


def skeleton_text(skeleton: Skeleton | None) -> tuple[str, str]:
    """The two fields that :func:`parse_skeleton` reads back to ``skeleton``."""
    if skeleton is None:
        return "", ""
    names = skeleton.names
    return ", ".join(names), ", ".join(f"{names[a]}-{names[b]}" for a, b in skeleton.edges)

"""What the Explore map asks of the project (Qt-free): which project image each point of the folder is,
the category each point is coloured by (class, tag, review state), and which copies of each
duplicate group to remove from the project.

The map's points are files relative to the explored folder; the project keys its images by paths
relative to the project file's folder, which may be another folder. Paths are matched once, through
one dict, so colouring 100k points does not scan the project per point.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vfmstudio.core.project import Project
from vfmstudio.core.review import STATES, UNLABELLED

NO_CLASS = "(no annotations)"
NO_TAG = "(no tags)"
KEEP_POLICIES = ("first", "largest")


def project_keys(project: Project, folder: Path, rels: Sequence[str]) -> list[str | None]:
    """The project key of each file ``folder/rel`` (None: not an image of the project)."""
    key_of_path = {rec.path: rec.key for rec in project.images.values()}
    try:
        prefix = Path(os.path.relpath(Path(folder).resolve(), project.root.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no image of this folder is in the project
        return [None] * len(rels)
    out: list[str | None] = []
    for rel in rels:
        path = rel if prefix == "." else os.path.normpath(f"{prefix}/{rel}").replace(os.sep, "/")
        out.append(key_of_path.get(path))
    return out


@dataclass(frozen=True)
class Categories:
    """A category per point (index into ``names``) and the number of points in each category."""

    codes: np.ndarray  # (N,) int32
    names: list[str]
    counts: list[int]


def _categorise(values: Sequence[str], first: Sequence[str] = (), last: Sequence[str] = ()) -> Categories:
    """Categories of ``values``: ``first`` in their order, then the others by count, ``last`` at the end."""
    counts = Counter(values)
    middle = sorted((v for v in counts if v not in first and v not in last), key=lambda v: (-counts[v], v))
    names = [v for v in first if v in counts] + middle + [v for v in last if v in counts]
    index = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values))
    return Categories(codes, names, [counts[n] for n in names])


def class_categories(project: Project, keys: Sequence[str | None]) -> Categories:
    """Each point's class: the most frequent class of its annotations (ties: the earlier class of the
    project's list), or NO_CLASS."""
    labels = project.labels
    rank = {name: i for i, name in enumerate(labels.class_names)}
    values = []
    for key in keys:
        anns = labels.annotations(key) if key is not None else ()
        if not anns:
            values.append(NO_CLASS)
            continue
        counts = Counter(a.label for a in anns)
        values.append(min(counts, key=lambda c: (-counts[c], rank.get(c, len(rank)), c)))
    return _categorise(values, first=[c for c in labels.class_names], last=[NO_CLASS])


def tag_categories(project: Project, keys: Sequence[str | None]) -> Categories:
    """Each point's tag: the first of its tags, or NO_TAG."""
    tags = project.labels.tags
    values = [(tags.get(key) or (NO_TAG,))[0] if key is not None else NO_TAG for key in keys]
    return _categorise(values, last=[NO_TAG])


def review_categories(states: Mapping[str, str], keys: Sequence[str | None]) -> Categories:
    """Each point's review state (``PendingView.states()``); a file outside the project is unlabelled."""
    values = [states.get(key, UNLABELLED) if key is not None else UNLABELLED for key in keys]
    return _categorise(values, first=list(STATES))


def copies_to_remove(
    groups: Sequence[Sequence[str]], keep: str = "first", size_of: Callable[[str], int] | None = None
) -> list[list[str]]:
    """Per duplicate group, the files to remove so that one stays: the first listed (``first``) or the
    one with most pixels (``largest``; ``size_of(rel)`` gives them, ties keep the earlier file).

    A file can be in two groups (an exact copy is also near its twin's neighbours); a file one group
    keeps is never removed for another, so every group keeps at least one file."""
    if keep not in KEEP_POLICIES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}, got {keep!r}")
    if keep == "largest" and size_of is None:
        raise ValueError("keep='largest' needs the image sizes")
    sizes: dict[str, int] = {}
    kept: set[str] = set()
    for files in groups:
        if not files:
            continue
        if keep == "largest":
            assert size_of is not None
            for f in files:
                if f not in sizes:
                    sizes[f] = size_of(f)
            best = max(range(len(files)), key=lambda i: (sizes[files[i]], -i))
        else:
            best = 0
        # A file another group already keeps is kept here too (no second survivor needed).
        kept.add(next((f for f in files if f in kept), files[best]))
    return [[f for f in files if f not in kept] for files in groups]

"""A small project with every kind of label, for format tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vfmstudio.core.annotations import Annotation, Box, Mask, Points, Polygon, PolygonPart, Provenance
from vfmstudio.core.project import DEFAULT_NAME, Project, open_project

CLASSES = ("cat", "dog", "tree")


def _blob(h: int, w: int, rng: np.random.Generator, holes: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r = rng.uniform(0.15, 0.3) * min(h, w)
    m = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    if holes:
        m &= (yy - cy) ** 2 + (xx - cx) ** 2 > (r / 3) ** 2
    return m


def build_sample_project(
    folder: Path, n_images: int = 3, *, seed: int = 0, size: tuple[int, int] = (48, 64), save: bool = True
) -> Project:
    """Images (one in a subfolder) with boxes, polygons (with holes, several parts), masks, points,
    tags and captions; manual and model provenance. Coordinates use at most 2 decimals."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    project = open_project(folder / DEFAULT_NAME, create=True)
    labels = project.labels
    for name in CLASSES:
        labels.ensure_class(name)
    h, w = size
    for i in range(n_images):
        rel = f"sub/img{i}.png" if i == 1 else f"img{i}.png"
        path = (folder / rel).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (h + i, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
        key = project.add_image(path).key
        ih = h + i
        model = Provenance(
            "model",
            tool="dinov2.segment",
            model="tiny",
            params={"threshold": 0.5},
            score=round(float(rng.uniform(0.3, 1.0)), 3),
        )
        labels.add(Annotation(key, "cat", Box(2, 3, 20, 25)))
        labels.add(Annotation(key, "dog", Box(5.25, 6.5, 30.75, 40.5), provenance=model))
        labels.add(Annotation(key, "tree", Polygon.simple([(10, 10), (40.5, 12), (35, 30.25), (12, 28)])))
        labels.add(
            Annotation(
                key,
                "cat",
                Polygon(
                    (
                        PolygonPart([(1, 1), (8, 1), (8, 8)]),
                        PolygonPart([(50, 30), (60, 30), (60, 40), (50, 40)]),
                    )
                ),
            )
        )
        labels.add(
            Annotation(
                key,
                "dog",
                Polygon(
                    (
                        PolygonPart(
                            [(20, 20), (50, 20), (50, 44), (20, 44)],
                            ([(30, 25), (40, 25), (40, 35), (30, 35)],),
                        ),
                    )
                ),
            )
        )
        labels.add(Annotation(key, "tree", Mask.from_array(_blob(ih, w, rng, holes=False)), provenance=model))
        labels.add(Annotation(key, "cat", Mask.from_array(_blob(ih, w, rng, holes=True))))
        labels.add(Annotation(key, "dog", Points(((3, 4), (10.5, 12.25)))))
        labels.set_tags(key, ["outdoor", f"set{i % 2}"])
        if i != 2:
            labels.set_caption(key, f"a picture, number {i}")
    if save:
        project.save()
    return project

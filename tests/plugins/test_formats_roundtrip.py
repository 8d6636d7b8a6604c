"""Round trips project -> format -> project for every importable format, and pycocotools checks."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.annotations import Box, Mask, Points, Polygon
from vfmstudio.core.exchange import export_project, import_dataset
from vfmstudio.core.project import open_project
from vfmstudio.testing.sample_project import build_sample_project

# pycocotools 2.0 decodes through numpy with a deprecated __array__ call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_project(tmp_path_factory.mktemp("sample") / "proj")


def _by_name(project) -> dict[str, list]:
    """Annotations per image file name (keys differ between layouts: images/train/..., JPEGImages/...)."""
    out = {}
    for key, rec in project.images.items():
        out[PurePosixPath(rec.path).name.replace("sub__", "")] = list(project.labels.annotations(key))
    return out


def _dims(project, name):
    rec = next(r for r in project.images.values() if PurePosixPath(r.path).name.endswith(name))
    return rec.height, rec.width


def _roundtrip(host, sample, tmp_path, fmt, export_params=None, import_params=None, source=None):
    out = tmp_path / fmt
    export_project(host.format(fmt), sample, out, export_params or {})
    dataset, _ = import_dataset(host.format(fmt), source(out) if source else out, import_params or {})
    target = open_project(tmp_path / "target.json", create=True)
    target.merge(dataset)
    return target


def _close(a, b, tol):
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=tol, rtol=0)


def _polygon_equal(p: Polygon, q: Polygon, tol: float) -> bool:
    return len(p.parts) == len(q.parts) and all(
        len(a.exterior) == len(b.exterior) and _close(a.exterior, b.exterior, tol)
        for a, b in zip(p.parts, q.parts)
    )


def _check_full_shapes(sample, target, tol):
    """Boxes, polygons (parts), masks and points survive; polygons with holes come back as masks."""
    before, after = _by_name(sample), _by_name(target)
    assert set(before) == set(after)
    assert target.labels.class_names == sample.labels.class_names
    for name, anns in before.items():
        got = after[name]
        assert [a.label for a in got] == [a.label for a in anns], name
        h, w = _dims(sample, name)
        for a, b in zip(anns, got):
            s = a.shape
            if isinstance(s, Box):
                assert isinstance(b.shape, Box) and _close(s.xyxy, b.shape.xyxy, tol)
            elif isinstance(s, Polygon) and not s.has_holes:
                assert isinstance(b.shape, Polygon) and _polygon_equal(s, b.shape, tol)
            elif isinstance(s, Polygon | Mask):
                assert isinstance(b.shape, Mask)
                assert np.array_equal(b.shape.to_array(), s.to_mask(h, w))
            elif isinstance(s, Points):
                assert isinstance(b.shape, Points) and _close(s.points, b.shape.points, tol)


def test_labelme_round_trip_keeps_every_shape_and_tag(host, sample, tmp_path):
    target = _roundtrip(host, sample, tmp_path, "labelme")
    _check_full_shapes(sample, target, 1e-9)
    for key, rec in target.images.items():
        name = PurePosixPath(rec.path).name
        src_key = next(k for k, r in sample.images.items() if PurePosixPath(r.path).name == name)
        assert target.labels.tags.get(key) == sample.labels.tags.get(src_key)


def test_cvat_round_trip_within_two_decimals(host, sample, tmp_path):
    target = _roundtrip(host, sample, tmp_path, "cvat", import_params={"image_root": str(sample.root)})
    _check_full_shapes(sample, target, 0.005)
    # CVAT names images by their project path, so they resolve to the project's own files
    assert sorted((target.root / r.path).resolve() for r in target.images.values()) == sorted(
        (sample.root / r.path).resolve() for r in sample.images.values()
    )
    assert all(r.id for r in target.images.values())  # the files exist and were hashed
    model = [a for a in target.labels.annotations() if a.provenance.source == "model"]
    assert model and all(a.score is not None for a in model)  # source="auto" with its score
    assert sorted(target.labels.tags.values()) == sorted(sample.labels.tags.values())


def test_coco_round_trip_rle_masks_pixel_identical(host, sample, tmp_path):
    target = _roundtrip(
        host,
        sample,
        tmp_path,
        "coco",
        {"mask_format": "rle"},
        {"image_root": str(sample.root)},
        source=lambda out: out / "annotations.json",
    )
    before = {k: [a for a in v if not isinstance(a.shape, Points)] for k, v in _by_name(sample).items()}
    after = _by_name(target)
    for name, anns in before.items():
        assert [a.label for a in after[name]] == [a.label for a in anns]
        h, w = _dims(sample, name)
        for a, b in zip(anns, after[name]):
            if isinstance(a.shape, Box):
                assert _close(a.shape.xyxy, b.shape.xyxy, 1e-9)
            elif isinstance(a.shape, Polygon) and not a.shape.has_holes:
                assert _polygon_equal(a.shape, b.shape, 0)
            else:
                assert isinstance(b.shape, Mask) and np.array_equal(b.shape.to_array(), a.shape.to_mask(h, w))


def test_coco_export_loads_with_pycocotools_and_masks_decode_equal(host, sample, tmp_path):
    from pycocotools.coco import COCO

    export_project(host.format("coco"), sample, tmp_path, {"mask_format": "rle"})
    coco = COCO(str(tmp_path / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == sample.labels.class_names
    anns = coco.loadAnns(coco.getAnnIds())
    assert all(a["iscrowd"] == 0 for a in anns)  # holes never make an annotation "crowd"
    images = {im["id"]: im for im in coco.loadImgs(coco.getImgIds())}
    originals = {}
    for key, rec in sample.images.items():
        originals[rec.path] = [a for a in sample.labels.annotations(key) if not isinstance(a.shape, Points)]
    seen = {}
    for a in anns:
        im = images[a["image_id"]]
        i = seen.get(im["file_name"], 0)
        seen[im["file_name"]] = i + 1
        original = originals[im["file_name"]][i]
        if isinstance(a["segmentation"], dict):
            decoded = coco.annToMask(a).astype(bool)
            expected = original.shape.to_mask(im["height"], im["width"])
            assert np.array_equal(decoded, expected)
            assert a["area"] == expected.sum()
        elif a["segmentation"]:
            coco.annToMask(a)  # polygons rasterise through pycocotools without error
            assert a["area"] == original.shape.to_mask(im["height"], im["width"]).sum()
    assert sum(seen.values()) == sum(len(v) for v in originals.values())


def test_coco_default_writes_masks_as_polygons_close_to_the_mask(host, sample, tmp_path):
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    export_project(host.format("coco"), sample, tmp_path, {"tolerance": 0.5})
    coco = COCO(str(tmp_path / "annotations.json"))
    checked = 0
    for a in coco.loadAnns(coco.getAnnIds()):
        if isinstance(a["segmentation"], list) and a["segmentation"] and a["area"] > 200:
            im = coco.loadImgs(a["image_id"])[0]
            ours = coco.annToMask(a).astype(bool)
            rles = mask_util.frPyObjects(a["segmentation"], im["height"], im["width"])
            assert ours.sum() > 0 and mask_util.area(mask_util.merge(rles)) > 0.8 * a["area"]
            checked += 1
    assert checked >= 3


def _yolo_lines(out: Path):
    for txt in sorted((out / "labels").rglob("*.txt")):
        for line in txt.read_text().splitlines():
            yield txt, line


def test_yolo_detect_round_trip_and_every_line_valid(host, sample, tmp_path):
    import yaml
    from vfmstudio_formats._yolo import validate_line

    target = _roundtrip(host, sample, tmp_path, "yolo")
    out = tmp_path / "yolo"
    lines = list(_yolo_lines(out))
    assert lines and all(validate_line(line, 3, segment=False) is None for _, line in lines)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "cat", 1: "dog", 2: "tree"} and Path(data["path"]) == out.resolve()
    assert (out / data["train"]).is_dir()
    before, after = _by_name(sample), _by_name(target)
    for name, anns in before.items():
        boxes = [a for a in anns if not isinstance(a.shape, Points)]
        assert [a.label for a in after[name]] == [a.label for a in boxes]
        h, w = _dims(sample, name)
        for a, b in zip(boxes, after[name]):
            assert isinstance(b.shape, Box) and _close(a.shape.bbox(), b.shape.xyxy, 1e-6 * max(h, w))


def test_yolo_segment_round_trip_keeps_polygons(host, sample, tmp_path):
    from vfmstudio_formats._yolo import validate_line

    target = _roundtrip(host, sample, tmp_path, "yolo-seg", {"tolerance": 0.0})
    lines = list(_yolo_lines(tmp_path / "yolo-seg"))
    assert all(validate_line(line, 3, segment=True) is None for _, line in lines)
    assert all(len(line.split()) >= 7 for _, line in lines)
    before, after = _by_name(sample), _by_name(target)
    for name, anns in before.items():
        h, w = _dims(sample, name)
        got = [(a.label, a.shape) for a in after[name]]
        expected = [(a.label, part) for a in anns if isinstance(a.shape, Polygon) for part in a.shape.parts]
        for label, part in expected:  # every polygon part is a row; within 6 normalised decimals
            assert any(
                lab == label
                and len(s.parts[0].exterior) == len(part.exterior)
                and _close(s.parts[0].exterior, part.exterior, 1e-6 * max(h, w))
                for lab, s in got
            )
        for a in anns:
            if isinstance(a.shape, Mask):  # masks become exact pixel-edge outlines (holes dropped)
                outline = next(
                    s
                    for lab, s in got
                    if lab == a.label
                    and isinstance(s, Polygon)
                    and np.array_equal(s.to_mask(h, w), _fill_holes(a.shape.to_array()))
                )
                assert outline is not None


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    from vfmstudio.core import geometry

    return geometry.rasterize_parts([(e, []) for e, _ in geometry.mask_to_parts(mask)], *mask.shape)


def test_yolo_split_is_deterministic_and_data_yaml_names_both(host, tmp_path):
    import yaml

    project = build_sample_project(tmp_path / "p", n_images=8, size=(16, 16))
    export_project(host.format("yolo"), project, tmp_path / "a", {"val_fraction": 0.5, "seed": 3})
    export_project(host.format("yolo"), project, tmp_path / "b", {"val_fraction": 0.5, "seed": 3})
    files_a = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*.txt"))
    files_b = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*.txt"))
    assert files_a == files_b
    assert any("/val/" in f for f in files_a) and any("/train/" in f for f in files_a)
    data = yaml.safe_load((tmp_path / "a" / "data.yaml").read_text())
    assert data["train"] == "images/train" and data["val"] == "images/val"


@pytest.mark.parametrize(
    "line, why",
    [
        ("0 0.5 0.5 0.2 0.2", None),
        ("3 0.5 0.5 0.2 0.2", "class"),
        ("0 1.5 0.5 0.2 0.2", "outside"),
        ("0 0.1 0.1 0.2 0.2 0.3", "segment rows"),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3", None),
        ("x 0.1 0.1 0.2 0.2", "non-numeric"),
    ],
)
def test_yolo_line_validator(line, why):
    from vfmstudio_formats._yolo import validate_line

    got = validate_line(line, 3)
    assert (got is None) if why is None else (why in got)


def test_voc_round_trip_integer_boxes(host, sample, tmp_path):
    target = _roundtrip(host, sample, tmp_path, "voc")
    before, after = _by_name(sample), _by_name(target)
    for name, anns in before.items():
        boxes = [a for a in anns if not isinstance(a.shape, Points)]
        assert [a.label for a in after[name]] == [a.label for a in boxes]
        for a, b in zip(boxes, after[name]):
            assert b.shape.xyxy == tuple(float(round(v)) for v in a.shape.bbox())
    xml = next((tmp_path / "voc" / "Annotations").glob("img0.xml")).read_text()
    assert "<xmin>3</xmin>" in xml and "<xmax>20</xmax>" in xml  # Box(2, 3, 20, 25): 1-based inclusive

"""Formats plugin: registration, safety of paths and XML, labelme details, progress and cancel,
the export-only formats, and the export/import commands."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vfmstudio._plugin_host import PluginHost
from vfmstudio.cli import main
from vfmstudio.core.annotations import Box, Mask, Points, Polygon
from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.core.exchange import FormatError, export_project, import_dataset, safe_join
from vfmstudio.core.project import open_project
from vfmstudio.core.results import Detections, Masks, Prediction
from vfmstudio.testing.sample_project import build_sample_project

# pycocotools 2.0 decodes through numpy with a deprecated __array__ call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

ALL = {
    "coco",
    "yolo",
    "yolo-seg",
    "yolo-obb",
    "yolo-pose",
    "dota",
    "voc",
    "labelme",
    "cvat",
    "labelstudio",
    "masks",
    "captions-jsonl",
    "captions-csv",
}


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build_sample_project(tmp_path_factory.mktemp("sample") / "proj")


def test_plugin_registers_every_format_and_imports_light():
    host = PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()
    assert host.statuses["formats"].status == "loaded"
    assert set(host.formats) == ALL
    assert {f for f, s in host.formats.items() if s.importer} == {
        "coco",
        "yolo",
        "yolo-seg",
        "yolo-obb",
        "yolo-pose",
        "dota",
        "voc",
        "labelme",
        "cvat",
        "captions-jsonl",
        "masks",
    }
    code = (
        "import sys, vfmstudio_formats; vfmstudio_formats.vfm_register_formats(); "
        "print(sorted(m for m in ('torch', 'cv2', 'yaml', 'defusedxml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("rel", ["../outside.png", "/etc/passwd", "a/../../x.png", "C:/x.png", "..\\x.png"])
def test_safe_join_refuses_paths_leaving_the_folder(tmp_path, rel):
    with pytest.raises(FormatError, match="absolute|escapes"):
        safe_join(tmp_path, rel)
    assert safe_join(tmp_path, "a/../b.png") == (tmp_path / "b.png").resolve()


def test_coco_file_name_escaping_the_dataset_is_refused(host, tmp_path):
    doc = {
        "images": [{"id": 1, "file_name": "../../secret.png", "width": 4, "height": 4}],
        "annotations": [],
        "categories": [],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="escapes"):
        import_dataset(host.format("coco"), tmp_path / "c.json")


def test_labelme_absolute_image_path_is_refused(host, tmp_path):
    doc = {"shapes": [], "imagePath": "/etc/hostname", "imageWidth": 4, "imageHeight": 4}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="absolute"):
        import_dataset(host.format("labelme"), tmp_path / "a.json")


def test_cvat_image_name_escaping_is_refused(host, tmp_path):
    (tmp_path / "annotations.xml").write_text(
        '<annotations><version>1.1</version><image id="0" name="../x.png" width="4" height="4"/></annotations>'
    )
    with pytest.raises(FormatError, match="escapes"):
        import_dataset(host.format("cvat"), tmp_path)


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<annotation><filename>&lol2;</filename></annotation>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><image id="0" name="&xxe;" width="4" height="4"/></annotations>"""


def test_xml_entities_are_refused(host, tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(BOMB)
    with pytest.raises(FormatError, match="unsafe XML"):
        import_dataset(host.format("voc"), tmp_path, strict=True)
    project, ctx = import_dataset(host.format("voc"), tmp_path)  # lenient: the file is skipped, and said so
    assert not project.images and any("a.xml: refused unsafe XML" in w for w in ctx.warnings)
    (tmp_path / "annotations.xml").write_text(XXE)
    with pytest.raises(FormatError, match="unsafe XML"):
        import_dataset(host.format("cvat"), tmp_path)


def test_labelme_keeps_unknown_keys_and_clips_points(host, tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    doc = {
        "version": "5.4.1",
        "flags": {"night": True, "day": False},
        "imagePath": "a.png",
        "imageData": None,
        "imageHeight": 10,
        "imageWidth": 20,
        "customTop": {"k": [1, 2]},
        "shapes": [
            {
                "label": "car",
                "points": [[-5, 2], [25, 3], [10, 15]],
                "shape_type": "polygon",
                "group_id": None,
                "flags": {},
                "description": "",
                "mask": None,
                "my_key": "keep me",
            },
            {
                "label": "car",
                "points": [[1, 1], [4, 4]],
                "shape_type": "rectangle",
                "group_id": 7,
                "flags": {},
            },
            {"label": "lane", "points": [[0, 0], [5, 5], [9, 1]], "shape_type": "linestrip", "flags": {}},
            {"label": "wheel", "points": [[10, 5], [13, 5]], "shape_type": "circle", "flags": {}},
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(doc))
    project, _ = import_dataset(host.format("labelme"), tmp_path)
    anns = project.labels.annotations("a.png")
    assert [a.shape.kind for a in anns] == [
        "polygon",
        "box",
        "polyline",
        "ellipse",
    ]  # not points, not a 64-gon
    assert (anns[3].shape.cx, anns[3].shape.cy, anns[3].shape.rx) == (10, 5, 3)
    assert anns[0].shape.parts[0].exterior == ((0.0, 2.0), (20.0, 3.0), (10.0, 10.0))  # clipped to the image
    assert project.labels.tags["a.png"] == ("night",)
    out = tmp_path / "out"
    export_project(host.format("labelme"), project, out, {"copy_images": True})
    back = json.loads((out / "a.json").read_text())
    assert back["customTop"] == {"k": [1, 2]}
    assert back["shapes"][0]["my_key"] == "keep me"
    assert back["shapes"][1]["group_id"] == 7
    assert back["shapes"][2]["shape_type"] == "linestrip"
    assert back["flags"] == {"night": True}
    assert (out / "a.png").exists() and back["imagePath"] == "a.png"


def test_export_reports_progress_and_can_be_cancelled(host, tmp_path):
    project = build_sample_project(tmp_path / "p", n_images=6, size=(12, 12))
    seen = []
    export_project(host.format("coco"), project, tmp_path / "ok", on_progress=lambda f, m: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 7
    token = CancelToken()

    def cancel_after_two(fraction, message):
        if fraction and fraction > 0.3:
            token.cancel("user")

    with pytest.raises(Cancelled):
        export_project(
            host.format("yolo"), project, tmp_path / "cancelled", cancel=token, on_progress=cancel_after_two
        )
    written = list((tmp_path / "cancelled").rglob("*.txt"))
    assert 0 < len(written) < 6 and not (tmp_path / "cancelled" / "data.yaml").exists()


def test_label_studio_tasks_in_percent_with_predictions(host, sample, tmp_path):
    export_project(host.format("labelstudio"), sample, tmp_path)
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert len(tasks) == len(sample.images)
    first_key = next(iter(sample.images))
    rec = sample.images[first_key]
    results = tasks[0]["predictions"][0]["result"]
    rect = next(r for r in results if r["type"] == "rectanglelabels")
    assert rect["from_name"] == "label" and rect["to_name"] == "image"
    assert rect["value"]["x"] == pytest.approx(100 * 2 / rec.width)
    assert rect["value"]["height"] == pytest.approx(100 * 22 / rec.height)
    kinds = {r["type"] for r in results}
    assert {"rectanglelabels", "polygonlabels", "keypointlabels", "choices", "textarea"} <= kinds
    config = (tmp_path / "label_config.xml").read_text()
    for name in ("label", "polygon", "keypoint", "tags", "caption"):
        assert f'name="{name}"' in config
    export_project(host.format("labelstudio"), sample, tmp_path / "ann", {"mode": "annotations"})
    assert "annotations" in json.loads((tmp_path / "ann" / "tasks.json").read_text())[0]


def test_mask_pngs_semantic_and_instance(host, sample, tmp_path):
    export_project(host.format("masks"), sample, tmp_path / "sem")
    export_project(host.format("masks"), sample, tmp_path / "inst", {"kind": "instance"})
    key = next(iter(sample.images))
    rec = sample.images[key]
    sem = np.asarray(Image.open(tmp_path / "sem" / "semantic" / "img0.png"))
    inst = np.asarray(Image.open(tmp_path / "inst" / "instances" / "img0.png"))
    meta = json.loads((tmp_path / "inst" / "instances" / "img0.json").read_text())
    anns = [a for a in sample.labels.annotations(key) if not isinstance(a.shape, Box | Points)]
    assert sem.shape == (rec.height, rec.width) and len(meta) == len(anns)
    last = anns[-1]
    m = last.shape.to_mask(rec.height, rec.width)
    assert (sem[m] == sample.labels.class_index(last.label) + 1).all()
    assert (inst[m] == len(anns)).all()
    assert (tmp_path / "sem" / "classes.txt").read_text().splitlines()[0] == "background"


def test_captions_jsonl_csv_and_import(host, sample, tmp_path):
    export_project(host.format("captions-jsonl"), sample, tmp_path)
    export_project(host.format("captions-csv"), sample, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert {r["image"] for r in rows} == {r.path for r in sample.images.values()}
    assert rows[0] == {"image": "img0.png", "caption": "a picture, number 0", "tags": ["outdoor", "set0"]}
    with open(tmp_path / "captions.csv", newline="") as fp:
        table = list(csv.reader(fp))
    assert table[0] == ["image", "caption", "tags"] and table[1] == [
        "img0.png",
        "a picture, number 0",
        "outdoor;set0",
    ]
    back, _ = import_dataset(
        host.format("captions-jsonl"), tmp_path / "captions.jsonl", {"image_root": str(sample.root)}
    )
    assert back.labels.captions == sample.labels.captions and back.labels.tags == sample.labels.tags


# ------------------------------------------------------------------------------------- CLI


def test_cli_export_then_import_into_a_new_project(sample, tmp_path, capsys):
    out = tmp_path / "labelme"
    assert main(["export", str(sample.path), "--format", "labelme", "--out", str(out)]) == 0
    assert "exported 3 images" in capsys.readouterr().out
    project_file = tmp_path / "new" / "vfmstudio.json"
    project_file.parent.mkdir()
    assert main(["import", str(out), "--format", "labelme", "--into", str(project_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 3 and report["annotations"] == len(sample.labels)
    assert len(open_project(project_file).labels) == len(sample.labels)


def test_cli_errors_are_one_line_exit_2(sample, tmp_path, capsys):
    assert main(["export", str(sample.path), "--format", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown format 'nope'" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                str(sample.path),
                "--format",
                "coco",
                "--out",
                str(tmp_path),
                "--param",
                "mask_format=bitmap",
            ]
        )
        == 2
    )
    assert "mask_format" in capsys.readouterr().err
    assert (
        main(["import", str(tmp_path / "missing"), "--format", "coco", "--into", str(tmp_path / "p.json")])
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    assert (
        main(["import", str(tmp_path), "--format", "captions-csv", "--into", str(tmp_path / "p.json")]) == 2
    )
    assert "not imported" in capsys.readouterr().err


def test_cli_exports_a_batch_folder_above_a_min_score(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    batch = tmp_path / "batch"
    batch.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 12)).save(images / f"im{i}.png")
        masks = np.zeros((2, 12, 16), dtype=bool)
        masks[0, 2:6, 3:9] = True
        masks[1, 7:10, 1:4] = True
        pred = Prediction(
            "dinov2.segment",
            "tiny",
            (f"id{i}",),
            (
                Detections(np.array([[1, 1, 5, 5], [2, 2, 8, 9]]), ("cat", "dog"), np.array([0.9, 0.2])),
                Masks(masks, ("cat", "dog"), np.array([0.8, 0.1])),
            ),
            image_paths=(str(images / f"im{i}.png"),),
        )
        (batch / f"id{i}.json").write_text(json.dumps(pred.to_json()))
    (batch / "failures.json").write_text("[]")  # other files of a run are ignored
    out = tmp_path / "coco"
    assert (
        main(
            [
                "export",
                str(batch),
                "--format",
                "coco",
                "--out",
                str(out),
                "--min-score",
                "0.5",
                "--param",
                "mask_format=rle",
            ]
        )
        == 0
    )
    doc = json.loads((out / "annotations.json").read_text())
    assert [im["file_name"] for im in doc["images"]] == ["im0.png", "im1.png"]
    assert len(doc["annotations"]) == 4 and sorted(a["score"] for a in doc["annotations"]) == pytest.approx(
        [0.8, 0.8, 0.9, 0.9]
    )
    seg = [a for a in doc["annotations"] if isinstance(a["segmentation"], dict)]
    from vfmstudio.core import rle

    assert np.array_equal(rle.decode(seg[0]["segmentation"]), masks[0])


def test_polygon_and_mask_shapes_survive_yolo_seg_via_cli(sample, tmp_path, capsys):
    out = tmp_path / "yseg"
    assert main(["export", str(sample.root), "--format", "yolo-seg", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any(d["kind"] == "hole" and d["count"] >= 1 for d in report["report"]["dropped"])  # counted
    assert any("hole skipped" in w for w in report["warnings"])
    target = tmp_path / "t.json"
    assert main(["import", str(out / "data.yaml"), "--format", "yolo-seg", "--into", str(target)]) == 0
    shapes = [a.shape for a in open_project(target).labels.annotations()]
    assert shapes and all(isinstance(s, Polygon) for s in shapes)
    assert not any(isinstance(s, Mask) for s in shapes)


def test_cli_exports_a_vfmstudio_batch_run_folder(tmp_path, capsys):
    from vfmstudio.engines.outputs import BatchOutput, SourceStat
    from vfmstudio.engines.sources import Item

    images = tmp_path / "photos"
    (images / "sub").mkdir(parents=True)
    out = BatchOutput(tmp_path / "run")
    out.open({"tool": "dinov2.segment", "model": "tiny", "params": {}, "source": str(images)}, resume=False)
    for i, rel in enumerate(["a.png", "sub/b.png"]):
        Image.new("RGB", (10, 8)).save(images / rel)
        masks = np.zeros((1, 8, 10), dtype=bool)
        masks[0, 1:5, 2:7] = True
        pred = Prediction(
            "dinov2.segment",
            "tiny",
            (f"id{i}",),
            (Masks(masks, ("leaf",), np.array([0.4 + 0.4 * i])),),
            image_paths=(str(images / rel),),
        )
        out.write_prediction(Item(str(images / rel), rel, f"k{i}"), pred, SourceStat.of(images / rel))
    dest = tmp_path / "labelme"
    assert (
        main(
            [
                "export",
                str(tmp_path / "run"),
                "--format",
                "labelme",
                "--out",
                str(dest),
                "--min-score",
                "0.5",
                "--masks-as-polygons",
            ]
        )
        == 0
    )
    assert "exported 2 images, 1 annotations" in capsys.readouterr().out
    doc = json.loads((dest / "sub" / "b.json").read_text())
    assert [s["shape_type"] for s in doc["shapes"]] == ["polygon"] and doc["shapes"][0]["label"] == "leaf"
    assert json.loads((dest / "a.json").read_text())["shapes"] == []


def test_coco_crowd_and_pycocotools_rle_import_as_masks(host, tmp_path):
    from pycocotools import mask as mask_util

    m = np.zeros((6, 7), dtype=bool)
    m[1:4, 2:6] = True
    compressed = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
    doc = {
        "images": [{"id": 3, "file_name": "x.png", "width": 7, "height": 6}],
        "categories": [{"id": 5, "name": "blob"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 3,
                "category_id": 5,
                "iscrowd": 0,
                "bbox": [2, 1, 4, 3],
                "segmentation": {"size": [6, 7], "counts": compressed["counts"].decode()},
            },
            {
                "id": 2,
                "image_id": 3,
                "category_id": 5,
                "iscrowd": 1,
                "bbox": [2, 1, 4, 3],
                "segmentation": {"size": [6, 7], "counts": [7, 3, 3, 3, 3, 3, 3, 3, 14]},
            },
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    project, _ = import_dataset(host.format("coco"), tmp_path / "c.json")
    a, b = project.labels.annotations("x.png")
    assert np.array_equal(a.shape.to_array(), m) and a.attributes == {}
    assert b.attributes == {"iscrowd": 1} and b.shape.area == 12


def test_yolo_import_refuses_rows_outside_the_named_classes(host, tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (10, 10)).save(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "data.yaml").write_text("names: [cat]\n")
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n")
    with pytest.raises(FormatError, match=r"a.txt: line 2: line skipped: class 1 outside 0..0"):
        import_dataset(host.format("yolo"), tmp_path, strict=True)
    project, ctx = import_dataset(host.format("yolo"), tmp_path)  # lenient: the row is skipped and counted
    assert len(project.labels) == 1 and ctx.report.dropped[("line", "unknown class")] == 1
    (tmp_path / "data.yaml").unlink()  # unnamed classes are numbered
    project, _ = import_dataset(host.format("yolo"), tmp_path)
    assert project.labels.class_names == ["0", "1"]
    box = project.labels.annotations("images/train/a.png")[0].shape
    assert box.xyxy == pytest.approx((4, 4, 6, 6))


@pytest.mark.parametrize(
    "fmt, name, content",
    [
        (
            "coco",
            "c.json",
            {"images": [{"id": 1, "width": 4, "height": 4}], "annotations": [], "categories": []},
        ),
        ("coco", "c.json", {"images": [{"id": 1, "file_name": "a.png", "width": "wide", "height": 4}]}),
        (
            "labelme",
            "a.json",
            {
                "shapes": [
                    {"label": "x", "points": [[0, 0], [1, 1]], "shape_type": "mask", "mask": "not base64!"}
                ],
                "imagePath": "a.png",
                "imageWidth": 4,
                "imageHeight": 4,
            },
        ),
        (
            "labelme",
            "a.json",
            {
                "shapes": [{"label": "x", "points": [[0, 0]], "shape_type": "polygon"}],
                "imagePath": "a.png",
                "imageWidth": 4,
                "imageHeight": 4,
            },
        ),
    ],
)
def test_damaged_files_give_one_line_format_errors(host, tmp_path, fmt, name, content):
    (tmp_path / name).write_text(json.dumps(content))
    with pytest.raises(FormatError) as info:  # lenient imports skip a bad shape with a warning; strict stops
        import_dataset(host.format(fmt), tmp_path / name, strict=True)
    assert "\n" not in str(info.value) and name in str(info.value)


def test_sizes_claimed_by_files_cannot_allocate_huge_masks(host, tmp_path):
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 10**6, "height": 10**6}],
        "categories": [],
        "annotations": [],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="pixel limit"):
        import_dataset(host.format("coco"), tmp_path / "c.json")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": {"size": [100000, 100000], "counts": [0, 10**10]},
            }
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="differs from the image size"):
        import_dataset(host.format("coco"), tmp_path / "c.json", strict=True)
    (tmp_path / "annotations.xml").write_text(
        '<annotations><image id="0" name="a.png" width="4" height="4">'
        '<mask label="x" rle="0, 10000000000" left="0" top="0" width="100000" height="100000"/></image></annotations>'
    )
    with pytest.raises(FormatError, match="outside the image"):
        import_dataset(host.format("cvat"), tmp_path)

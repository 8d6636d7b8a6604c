"""Files as peers write them (X-AnyLabeling, labelme 6, CVAT projects, Ultralytics, Roboflow, Darknet,
DOTA, VOC without <size>), written here from each tool's documented format, and the loss report."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from vfmstudio._plugin_host import PluginHost
from vfmstudio.cli import main
from vfmstudio.core.annotations import (
    Annotation,
    Box,
    Ellipse,
    Keypoints,
    Polyline,
    RotatedBox,
    Skeleton,
)
from vfmstudio.core.exchange import FormatError, export_project, import_dataset
from vfmstudio.core.project import in_memory, open_project

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def host():
    return PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()


def _png(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (9, 99, 199)).save(path)
    return path


def _ultralytics_label_path(image_path: str) -> str:
    """Ultralytics ``img2label_paths``: the last /images/ becomes /labels/, the suffix .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image_path.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


# ----------------------------------------------------------------------------- labelme / X-AnyLabeling


def _labelme(path: Path, shapes: list, image="a.png", w=40, h=30, image_data=None) -> Path:
    doc = {
        "version": "2.4.0",
        "flags": {},
        "shapes": shapes,
        "imagePath": image,
        "imageData": image_data,
        "imageHeight": h,
        "imageWidth": w,
    }
    path.write_text(json.dumps(doc))
    return path


def _shape(label, points, kind, **more):
    return {
        "label": label,
        "points": points,
        "group_id": None,
        "description": "",
        "difficult": False,
        "shape_type": kind,
        "flags": {},
        "attributes": {},
        "kie_linking": [],
        **more,
    }


def test_xanylabeling_four_point_rectangles_keep_their_size(host, tmp_path):
    _png(tmp_path / "a.png")
    # X-AnyLabeling >= 2.2: 4 corners clockwise from the top-left
    _labelme(tmp_path / "a.json", [_shape("car", [[5, 6], [25, 6], [25, 20], [5, 20]], "rectangle")])
    project, _ = import_dataset(host.format("labelme"), tmp_path)
    (ann,) = project.labels.annotations("a.png")
    assert isinstance(ann.shape, Box) and ann.shape.xyxy == (5, 6, 25, 20)
    export_project(host.format("labelme"), project, tmp_path / "out")
    back = json.loads((tmp_path / "out" / "a.json").read_text())["shapes"][0]
    assert back["shape_type"] == "rectangle" and back["points"] == [[5, 6], [25, 20]]


def test_four_points_not_axis_aligned_are_a_rotated_box(host, tmp_path):
    _png(tmp_path / "a.png")
    box = RotatedBox(20, 15, 16, 8, 30)
    _labelme(
        tmp_path / "a.json",
        [
            _shape("ship", [list(p) for p in box.corners()], "rectangle"),
            _shape("ship", [list(p) for p in box.corners()], "rotation", direction=0.5236),
            _shape("ship", [list(p) for p in box.corners()], "oriented_rectangle"),
        ],
    )
    project, _ = import_dataset(host.format("labelme"), tmp_path)
    shapes = [a.shape for a in project.labels.annotations("a.png")]
    assert all(isinstance(s, RotatedBox) for s in shapes) and len(shapes) == 3
    for s in shapes:
        assert (s.cx, s.cy, s.w, s.h, s.angle) == pytest.approx((20, 15, 16, 8, 30))


def test_labelme_six_points_circle_line_description_and_flags_round_trip(host, tmp_path):
    _png(tmp_path / "a.png")
    _labelme(
        tmp_path / "a.json",
        [
            _shape("kp", [[1, 2], [3, 4], [5, 6]], "points"),
            _shape("wheel", [[10, 10], [13, 14]], "circle", description="front wheel", flags={"spare": True}),
            _shape("lane", [[0, 0], [9, 9]], "line"),
            _shape("road", [[0, 0], [5, 5], [9, 1]], "linestrip", attributes={"surface": "asphalt"}),
        ],
    )
    project, _ = import_dataset(host.format("labelme"), tmp_path)
    anns = project.labels.annotations("a.png")
    assert [a.shape.kind for a in anns] == ["points", "ellipse", "polyline", "polyline"]
    assert anns[1].shape.rx == anns[1].shape.ry == 5
    assert anns[1].attributes["description"] == "front wheel" and anns[1].attributes["flags"] == {
        "spare": True
    }
    assert anns[3].attributes["surface"] == "asphalt"
    export_project(host.format("labelme"), project, tmp_path / "out")
    back = json.loads((tmp_path / "out" / "a.json").read_text())["shapes"]
    assert [s["shape_type"] for s in back] == ["points", "circle", "line", "linestrip"]
    assert back[1]["description"] == "front wheel" and back[1]["flags"] == {"spare": True}
    assert back[1]["points"] == [[10, 10], [15, 10]]  # centre and a point on the circle
    assert back[3]["attributes"] == {"surface": "asphalt"}


def test_labelme_file_with_only_image_data_writes_the_image_beside_it(host, tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (12, 8), (200, 10, 10)).save(buf, format="PNG")
    folder = tmp_path / "ds"
    folder.mkdir()
    # labelme's tutorial file: imagePath names a file that is not there, the pixels are in imageData
    _labelme(
        folder / "apc.json",
        [_shape("x", [[1, 1], [4, 4]], "rectangle")],
        image="../data/apc.jpg",
        w=12,
        h=8,
        image_data=base64.b64encode(buf.getvalue()).decode(),
    )
    project, ctx = import_dataset(host.format("labelme"), folder)
    assert list(project.images) == ["apc.png"] and (folder / "apc.png").is_file()
    assert np.asarray(Image.open(folder / "apc.png"))[0, 0].tolist() == [200, 10, 10]
    assert any("imageData" in w for w in ctx.warnings)
    again, _ = import_dataset(host.format("labelme"), folder)  # the second import finds the same file
    assert list(again.images) == ["apc.png"] and sorted(p.name for p in folder.iterdir()) == [
        "apc.json",
        "apc.png",
    ]


def test_labelme_image_data_that_is_not_an_image_is_skipped_with_a_warning(host, tmp_path):
    _labelme(tmp_path / "a.json", [], image="gone.png", image_data=base64.b64encode(b"%!PS-Adobe").decode())
    _png(tmp_path / "b.png")
    _labelme(tmp_path / "b.json", [_shape("x", [[1, 1], [4, 4]], "rectangle")], image="b.png")
    project, ctx = import_dataset(host.format("labelme"), tmp_path)
    assert list(project.images) == ["b.png"]
    assert any("a.json" in w and "not a PNG or JPEG" in w for w in ctx.warnings)
    assert ctx.report.dropped[("file", "unreadable")] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "b.png"]  # nothing written


# ------------------------------------------------------------------------------------------ YOLO


def _project_with_images_folder(tmp_path: Path):
    root = tmp_path / "proj"
    _png(root / "images" / "a.png")
    _png(root / "images" / "sub" / "b.png")
    project = in_memory(root)
    from vfmstudio.core.project import ImageRecord

    for rel in ("images/a.png", "images/sub/b.png"):
        project.images[rel] = ImageRecord(rel, rel, "", 40, 30)
        project.labels.add(Annotation(rel, "cat", Box(4, 3, 20, 15)))
    return project


def test_yolo_export_follows_the_ultralytics_label_path_rule(host, tmp_path):
    project = _project_with_images_folder(tmp_path)
    out = tmp_path / "yolo"
    export_project(host.format("yolo"), project, out, {"val_fraction": 0.5, "seed": 1})
    data = yaml.safe_load((out / "data.yaml").read_text())
    images = sorted(p for split in ("train", "val") for p in (out / data[split]).rglob("*.png"))
    assert len(images) == 2
    for img in images:
        rel = img.relative_to(out).as_posix()
        assert rel.count("images/") == 1  # no images/<split>/images/...
        label = Path(_ultralytics_label_path(str(img)))
        assert label.is_file() and label.read_text().split()[0] == "0"


def test_yolo_import_data_yaml_with_path_and_list_files(host, tmp_path):
    ds = tmp_path / "ds"
    _png(ds / "pics" / "a.png")
    _png(ds / "pics" / "b.png")
    (ds / "labels").mkdir()
    (ds / "pics" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")  # Darknet-style: label beside the image
    (ds / "train.txt").write_text("./pics/a.png\n")
    (ds / "val.txt").write_text("pics/b.png\npics/missing.png\n")
    (ds / "data.yaml").write_text("path: .\ntrain: train.txt\nval: val.txt\nnames:\n  0: cat\n  1: dog\n")
    project, ctx = import_dataset(host.format("yolo"), ds / "data.yaml")
    assert sorted(project.images) == ["pics/a.png", "pics/b.png"]
    assert [a.label for a in project.labels.annotations("pics/a.png")] == ["dog"]
    assert project.labels.class_names == ["cat", "dog"]
    assert (
        any("val.txt: line 2" in w for w in ctx.warnings)
        and ctx.report.dropped[("image", "listed but missing")]
    )


def test_yolo_import_roboflow_layout(host, tmp_path):
    ds = tmp_path / "rf"
    for split in ("train", "valid", "test"):
        _png(ds / split / "images" / f"{split}1.jpg".replace(".jpg", ".png"))
        (ds / split / "labels").mkdir(parents=True)
        (ds / split / "labels" / f"{split}1.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    # Roboflow's data.yaml names the splits relative to the folder above ('../train/images')
    (ds / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 1\nnames: ['helmet']\n"
    )
    project, _ = import_dataset(host.format("yolo"), ds)
    assert sorted(project.images) == [
        "test/images/test1.png",
        "train/images/train1.png",
        "valid/images/valid1.png",
    ]
    assert {a.label for a in project.labels.annotations()} == {"helmet"} and len(project.labels) == 3
    assert project.labels.extras["valid/images/valid1.png"]["yolo"] == {"split": "val"}
    (ds / "data.yaml").unlink()  # the layout alone is enough; class names then come from nowhere
    project, _ = import_dataset(host.format("yolo"), ds)
    assert len(project.images) == 3 and project.labels.class_names == ["0"]


def test_yolo_import_darknet_layout_with_obj_names(host, tmp_path):
    ds = tmp_path / "darknet"
    _png(ds / "obj_train_data" / "f1.png")
    (ds / "obj_train_data" / "f1.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (ds / "obj.names").write_text("person\ncar\n")
    (ds / "train.txt").write_text("data/obj_train_data/f1.png\n")
    (ds / "obj.data").write_text(
        "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n"
    )
    project, _ = import_dataset(host.format("yolo"), ds)
    assert project.labels.class_names == ["person", "car"]
    assert [a.label for a in project.labels.annotations("obj_train_data/f1.png")] == ["car"]


def test_yolo_classes_txt_names_the_classes(host, tmp_path):
    _png(tmp_path / "images" / "a.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    (tmp_path / "classes.txt").write_text("apple\nbanana\n")
    project, _ = import_dataset(host.format("yolo"), tmp_path)
    assert project.labels.class_names == ["apple", "banana"]
    assert project.labels.annotations("images/a.png")[0].label == "banana"


def test_yolo_seg_vertex_just_outside_is_clipped_with_a_warning(host, tmp_path):
    _png(tmp_path / "images" / "a.png", (100, 100))
    (tmp_path / "labels").mkdir()
    # Ultralytics' convert_coco writes such values
    (tmp_path / "labels" / "a.txt").write_text("0 0.1 0.1 1.00103 0.1 0.5 0.9\n0 0.2 0.2 0.4 0.4\n")
    project, ctx = import_dataset(host.format("yolo-seg"), tmp_path)
    poly, box = project.labels.annotations("images/a.png")
    assert poly.shape.parts[0].exterior[1] == pytest.approx((100, 10))
    assert box.shape.xyxy == pytest.approx((0, 0, 40, 40))
    assert any("a.txt: line 1: coordinate 1.00103 outside [0, 1], clipped" in w for w in ctx.warnings)
    with pytest.raises(FormatError, match="strict"):
        import_dataset(host.format("yolo-seg"), tmp_path, strict=True)


def test_yolo_detect_export_clips_a_box_instead_of_moving_it(host, tmp_path):
    project = _project_with_images_folder(tmp_path)
    rel = "images/a.png"
    project.labels.add(Annotation(rel, "cat", Box(-10, 0, 10, 30)))  # half outside on the left
    export_project(host.format("yolo"), project, tmp_path / "y")
    rows = (tmp_path / "y" / "labels" / "train" / "a.txt").read_text().splitlines()
    cx, cy, w, h = (float(v) for v in rows[1].split()[1:])
    assert (cx - w / 2) * 40 == pytest.approx(0) and (cx + w / 2) * 40 == pytest.approx(10)


def test_yolo_obb_and_dota_round_trip_rotated_boxes(host, tmp_path):
    project = _project_with_images_folder(tmp_path)
    turned = RotatedBox(20, 15, 12, 6, 35)
    project.labels.add(Annotation("images/a.png", "ship", turned, attributes={"difficult": 1}))
    for fmt in ("yolo-obb", "dota"):
        export_project(host.format(fmt), project, tmp_path / fmt)
        back, ctx = import_dataset(host.format(fmt), tmp_path / fmt)
        key = next(k for k in back.images if k.endswith("a.png"))
        got = [a.shape for a in back.labels.annotations(key) if a.label == "ship"]
        assert len(got) == 1 and isinstance(got[0], RotatedBox)
        assert np.allclose(np.asarray(got[0].corners()), np.asarray(turned.corners()), atol=0.06)
        assert ctx.report.kept["rotated_box"] == 3  # the two plain boxes come back as rotated boxes too
    line = (tmp_path / "dota" / "labelTxt" / "images__a.txt").read_text().splitlines()[-1].split()
    assert line[8:] == ["ship", "1"] and len(line) == 10


def test_yolo_pose_writes_kpt_shape_and_reads_it_back(host, tmp_path):
    project = _project_with_images_folder(tmp_path)
    project.labels.skeletons["person"] = Skeleton(("head", "hand", "foot"), ((0, 1), (0, 2)))
    kp = Keypoints(((10, 5), (14, 9), (0, 0)), (2, 1, 0), ("head", "hand", "foot"))
    project.labels.add(Annotation("images/a.png", "person", kp))
    out = tmp_path / "pose"
    ctx = export_project(host.format("yolo-pose"), project, out)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["kpt_shape"] == [3, 3]
    assert ctx.report.dropped[("box", "YOLO pose rows hold keypoints")] == 2
    back, _ = import_dataset(host.format("yolo-pose"), out)
    (got,) = [a for a in back.labels.annotations("images/train/a.png") if isinstance(a.shape, Keypoints)]
    assert got.shape.visibility == (2, 1, 0) and got.shape.names == ("head", "hand", "foot")
    assert np.allclose(got.shape.points[:2], kp.points[:2], atol=1e-4)


# ------------------------------------------------------------------------------------------ CVAT


CVAT_PROJECT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><project><name>p</name><labels>
    <label><name>car</name><color>#ff0000</color><type>any</type><attributes>
      <attribute><name>colour</name><mutable>False</mutable><input_type>select</input_type>
      <default_value>red</default_value><values>red
blue</values></attribute></attributes></label>
    <label><name>lane</name><type>any</type><attributes/></label>
  </labels></project></meta>
  <image id="0" name="frame.png" subset="Train" width="40" height="30">
    <box label="car" source="manual" occluded="1" xtl="2" ytl="3" xbr="12" ybr="13" z_order="2">
      <attribute name="colour">blue</attribute>
    </box>
  </image>
  <image id="1" name="frame.png" subset="Validation" width="40" height="30">
    <box label="car" source="manual" occluded="0" xtl="5" ytl="5" xbr="25" ybr="15" rotation="30" z_order="0"/>
    <polyline label="lane" source="manual" occluded="0" points="0,0;10,10;20,5" z_order="0"/>
    <ellipse label="car" source="manual" occluded="0" cx="20" cy="15" rx="6" ry="3" rotation="10" z_order="0"/>
  </image>
</annotations>
"""


def test_cvat_project_export_with_subsets_and_attributes(host, tmp_path):
    _png(tmp_path / "images" / "Train" / "frame.png")
    _png(tmp_path / "images" / "Validation" / "frame.png")
    (tmp_path / "annotations.xml").write_text(CVAT_PROJECT)
    project, ctx = import_dataset(host.format("cvat"), tmp_path)
    assert sorted(project.images) == ["Train/frame.png", "Validation/frame.png"]
    (train,) = project.labels.annotations("Train/frame.png")
    assert train.attributes == {"occluded": True, "z_order": 2, "colour": "blue"}
    kinds = [a.shape.kind for a in project.labels.annotations("Validation/frame.png")]
    assert kinds == ["rotated_box", "polyline", "ellipse"]
    assert ctx.report.kept == {"box": 1, "rotated_box": 1, "polyline": 1, "ellipse": 1}
    out = tmp_path / "out"
    export_project(host.format("cvat"), project, out, {"copy_images": True})
    assert (out / "images" / "Train" / "frame.png").is_file() and (
        out / "images" / "Validation" / "frame.png"
    ).is_file()
    back, _ = import_dataset(host.format("cvat"), out)
    for key in project.images:
        before = [(a.label, a.shape.kind, dict(a.attributes)) for a in project.labels.annotations(key)]
        after = [(a.label, a.shape.kind, dict(a.attributes)) for a in back.labels.annotations(key)]
        assert before == after
    (rot,) = [
        a.shape for a in back.labels.annotations("Validation/frame.png") if a.shape.kind == "rotated_box"
    ]
    assert (rot.cx, rot.cy, rot.w, rot.h, rot.angle) == pytest.approx((15, 10, 20, 10, 30))


CVAT_VIDEO = """<annotations><version>1.1</version>
  <track id="0" label="car" source="manual">
    <box frame="0" keyframe="1" outside="0" occluded="0" xtl="1" ytl="1" xbr="5" ybr="5" z_order="0"/>
    <box frame="1" keyframe="0" outside="0" occluded="0" xtl="2" ytl="1" xbr="6" ybr="5" z_order="0"/>
    <box frame="2" keyframe="1" outside="1" occluded="0" xtl="2" ytl="1" xbr="6" ybr="5" z_order="0"/>
  </track>
</annotations>"""


def test_cvat_tracks_per_frame_or_a_counted_warning(host, tmp_path):
    (tmp_path / "annotations.xml").write_text(CVAT_VIDEO)  # a video task: no <image> elements
    project, ctx = import_dataset(host.format("cvat"), tmp_path)
    assert len(project.labels) == 0 and ctx.report.dropped[("box", "track frame not in the file")] == 2
    assert any("track 0" in w for w in ctx.warnings)
    with_frames = CVAT_VIDEO.replace(
        "<annotations><version>1.1</version>",
        (
            '<annotations><version>1.1</version><image id="0" name="f0.png" width="10" height="10"/>'
            '<image id="1" name="f1.png" width="10" height="10"/>'
        ),
    )
    (tmp_path / "annotations.xml").write_text(with_frames)
    project, ctx = import_dataset(host.format("cvat"), tmp_path)
    assert [a.shape.xyxy for a in project.labels.annotations("f1.png")] == [(2, 1, 6, 5)]
    assert len(project.labels) == 2 and not ctx.report.dropped


# ------------------------------------------------------------------------------------- VOC, COCO


def test_voc_without_size_and_with_parts_and_labelmap(host, tmp_path):
    _png(tmp_path / "JPEGImages" / "a.png", (50, 40))
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.png</filename><object><name>person</name><pose>Left</pose>"
        "<truncated>1</truncated><difficult>0</difficult><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>30</xmax>"
        "<ymax>35</ymax></bndbox><part><name>head</name><bndbox><xmin>10</xmin><ymin>5</ymin><xmax>16</xmax>"
        "<ymax>11</ymax></bndbox></part></object></annotation>"
    )
    project, ctx = import_dataset(host.format("voc"), tmp_path)
    rec = project.images["JPEGImages/a.png"]
    assert (rec.width, rec.height) == (50, 40) and any("no <size>" in w for w in ctx.warnings)
    (ann,) = project.labels.annotations(rec.key)
    assert ann.attributes == {
        "truncated": 1,
        "pose": "Left",
        "parts": [{"name": "head", "bbox": [10, 5, 16, 11]}],
    }
    out = tmp_path / "out"
    export_project(host.format("voc"), project, out)
    assert (out / "labelmap.txt").read_text().splitlines()[1:] == [
        "background:0,0,0::",
        f"person:{','.join(map(str, project.labels.classes[0].rgb))}::",
    ]
    back, _ = import_dataset(host.format("voc"), out, {"image_root": str(tmp_path)})
    (again,) = back.labels.annotations()
    assert again.attributes == ann.attributes and back.labels.classes == project.labels.classes


def test_coco_standard_layout_keypoints_attributes_and_crowd(host, tmp_path):
    _png(tmp_path / "images" / "val" / "p.png", (60, 50))
    (tmp_path / "annotations").mkdir()
    m = np.zeros((50, 60), dtype=np.uint8)
    m[10:20, 5:25] = 1
    from pycocotools import mask as mask_util

    crowd = mask_util.encode(np.asfortranarray(m))
    crowd["counts"] = crowd["counts"].decode()
    doc = {
        "images": [{"id": 7, "file_name": "p.png", "width": 60, "height": 50}],
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": ["nose", "left_eye", "right_eye"],
                "skeleton": [[1, 2], [1, 3]],
            }
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "area": 100,
                "bbox": [10, 10, 20, 30],
                "segmentation": [[10, 10, 30, 10, 30, 40, 10, 40]],
                "num_keypoints": 2,
                "keypoints": [20, 15, 2, 18, 13, 1, 0, 0, 0],
                "attributes": {"occluded": False, "pose": "front"},
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 1,
                "area": 200,
                "bbox": [5, 10, 20, 10],
                "segmentation": crowd,
            },
        ],
    }
    (tmp_path / "annotations" / "person_keypoints_val.json").write_text(json.dumps(doc))
    project, _ = import_dataset(host.format("coco"), tmp_path / "annotations" / "person_keypoints_val.json")
    assert list(project.images) == ["p.png"] and project.root == (tmp_path / "images" / "val").absolute()
    kinds = [a.shape.kind for a in project.labels.annotations("p.png")]
    assert kinds == ["polygon", "keypoints", "mask"]
    assert project.labels.skeletons["person"] == Skeleton(("nose", "left_eye", "right_eye"), ((0, 1), (0, 2)))
    out = tmp_path / "out"
    export_project(host.format("coco"), project, out)
    from pycocotools.coco import COCO

    coco = COCO(str(out / "annotations.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 2  # the outline and its keypoints are one object again
    person, crowd_back = anns
    assert person["keypoints"] == [20, 15, 2, 18, 13, 1, 0, 0, 0] and person["num_keypoints"] == 2
    assert person["attributes"] == {"pose": "front"} and person["segmentation"]
    assert coco.loadCats(1)[0]["skeleton"] == [[1, 2], [1, 3]]
    assert crowd_back["iscrowd"] == 1 and np.array_equal(coco.annToMask(crowd_back), m)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["categories"].append({"id": 1, "name": "other"}), "category id 1 is used twice"),
        (
            lambda d: d["images"].append({"id": 1, "file_name": "b.png", "width": 4, "height": 4}),
            "image id 1 is used twice",
        ),
        (lambda d: d["images"][0].pop("file_name"), "needs 'id' and 'file_name'"),
    ],
)
def test_coco_repeated_ids_and_missing_fields_are_refused_in_words(host, tmp_path, change, message):
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 4, "height": 4}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
    }
    change(doc)
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError) as info:
        import_dataset(host.format("coco"), tmp_path / "c.json")
    text = str(info.value)
    assert message in text and "c.json" in text and "Error" not in text


def test_python_internals_never_reach_the_message(host, tmp_path):
    (tmp_path / "c.json").write_text(
        json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": [], "height": 4}]})
    )
    with pytest.raises(FormatError) as info:
        import_dataset(host.format("coco"), tmp_path / "c.json")
    assert (
        "c.json" in str(info.value) and "TypeError" not in str(info.value) and "int()" not in str(info.value)
    )


# ----------------------------------------------------------------------------- loss report and CLI


def _mixed_project(tmp_path: Path):
    project = _project_with_images_folder(tmp_path)
    key = "images/a.png"
    project.labels.add(Annotation(key, "wheel", Ellipse.circle(20, 15, 5)))
    project.labels.add(Annotation(key, "lane", Polyline(((0, 0), (10, 10)))))
    project.labels.add(Annotation(key, "ship", RotatedBox(20, 15, 10, 4, 20)))
    project.labels.set_tags(key, ["day"])
    return project


def test_every_export_counts_what_it_kept_converted_and_dropped(host, tmp_path):
    project = _mixed_project(tmp_path)
    n = len(project.labels) + 1  # + the tag
    for fmt in (
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
    ):
        ctx = export_project(host.format(fmt), project, tmp_path / fmt)
        r = ctx.report
        total = (
            sum(r.kept.values())
            + sum(r.converted.values())
            + sum(c for (kind, _), c in r.dropped.items() if kind not in ("hole",))
        )
        assert total == n, (fmt, r)
    coco = export_project(host.format("coco"), project, tmp_path / "c2").report
    assert (
        coco.converted[("circle", "polygon")] == 1
        and coco.dropped[("polyline", "COCO cannot hold them")] == 1
    )
    assert "1 circle to polygons" in coco.summary() and "1 polyline (COCO cannot hold them)" in coco.summary()


def test_cli_prints_the_report_and_strict_exits_2(host, tmp_path, capsys):
    project = _mixed_project(tmp_path)
    path = tmp_path / "p.json"
    project.path = path
    project.save()
    assert main(["export", str(path), "--format", "coco", "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "written: kept 2 boxes" in out and "converted 1 circle to polygons" in out
    assert main(["export", str(path), "--format", "coco", "--out", str(tmp_path / "c"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "strict" in err and "Traceback" not in err
    assert (
        main(
            [
                "import",
                str(tmp_path / "c" / "annotations.json"),
                "--format",
                "coco",
                "--into",
                str(tmp_path / "new.json"),
                "--param",
                f"image_root={project.root}",
            ]
        )
        == 0
    )
    assert "read: kept 2 boxes, 2 polygons" in capsys.readouterr().out


def test_identical_annotations_in_one_file_are_both_kept(host, tmp_path):
    _png(tmp_path / "a.png")
    _labelme(tmp_path / "a.json", [_shape("car", [[1, 1], [5, 5]], "rectangle")] * 2)
    target = open_project(tmp_path / "t.json", create=True)
    dataset, _ = import_dataset(host.format("labelme"), tmp_path / "a.json")
    assert target.merge(dataset)["annotations"] == 2
    dataset, _ = import_dataset(host.format("labelme"), tmp_path / "a.json")
    assert target.merge(dataset) == {"images": 0, "annotations": 0, "classes": 0, "duplicates": 2}


def test_mask_png_import_index_and_colour_maps(host, tmp_path):
    _png(tmp_path / "JPEGImages" / "a.png", (8, 6))
    seg = tmp_path / "SegmentationClass"
    seg.mkdir()
    values = np.zeros((6, 8), dtype=np.uint8)
    values[1:3, 1:4] = 2
    values[4:, 5:] = 1
    values[0, :] = 255  # VOC's void border
    im = Image.fromarray(values, mode="P")  # VOC keeps indices in palette PNGs
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    im.save(seg / "a.png")
    (tmp_path / "classes.txt").write_text("background\naeroplane\nbicycle\n")
    project, _ = import_dataset(host.format("masks"), tmp_path)
    anns = {a.label: a.shape.to_array() for a in project.labels.annotations("JPEGImages/a.png")}
    assert set(anns) == {"aeroplane", "bicycle"}
    assert np.array_equal(anns["bicycle"], values == 2) and np.array_equal(anns["aeroplane"], values == 1)
    (tmp_path / "classes.txt").unlink()  # colours named by labelmap.txt instead
    Image.fromarray(
        np.stack([(values == 1) * 128, (values == 2) * 128, np.zeros_like(values)], -1).astype(np.uint8)
    ).save(seg / "a.png")
    (tmp_path / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\naeroplane:128,0,0::\nbicycle:0,128,0::\n"
    )
    project, _ = import_dataset(host.format("masks"), tmp_path)
    again = {a.label: a.shape.to_array() for a in project.labels.annotations("JPEGImages/a.png")}
    assert set(again) == {"aeroplane", "bicycle"} and np.array_equal(again["bicycle"], anns["bicycle"])


# ------------------------------------------------------------- every shape through every format

EVERY = {  # class name (one per shape, so per-class formats keep them apart) -> shape
    "box": Box(4, 4, 20, 16),
    "polygon": None,
    "mask": None,
    "points": None,
    "rotated_box": RotatedBox(40, 12, 14, 6, 25),
    "circle": Ellipse.circle(50, 36, 6),
    "ellipse": Ellipse(20, 36, 8, 4, 15),
    "polyline": Polyline(((2, 46), (30, 44), (60, 46))),
    "keypoints": Keypoints(((30, 20), (34, 24), (0, 0)), (2, 1, 0), ("a", "b", "c")),
}
# what comes back, per format: {kind: count}; docs/formats.md says the same in words
BACK = {
    "labelme": {
        "box": 1,
        "polygon": 2,
        "mask": 1,
        "points": 1,
        "rotated_box": 1,
        "circle": 1,
        "polyline": 1,
        "keypoints": 1,
    },
    "cvat": {
        "box": 1,
        "polygon": 1,
        "mask": 1,
        "points": 2,
        "rotated_box": 1,
        "circle": 1,
        "ellipse": 1,
        "polyline": 1,
    },
    "coco": {"box": 1, "polygon": 4, "mask": 1, "keypoints": 1},
    "yolo": {"box": 6},
    "yolo-seg": {"polygon": 6},
    "yolo-obb": {"rotated_box": 6},
    "yolo-pose": {"keypoints": 1},
    "dota": {"rotated_box": 6},
    "voc": {"box": 6},
    "masks": {"mask": 5},
}
KEEPS_ATTRIBUTES = {"labelme", "cvat", "coco"}


def _every_shape_project(tmp_path: Path):
    from vfmstudio.core.annotations import Mask, Points, Polygon
    from vfmstudio.core.project import ImageRecord

    root = tmp_path / "every"
    _png(root / "a.png", (64, 48))
    project = in_memory(root)
    project.images["a.png"] = ImageRecord("a.png", "a.png", "", 64, 48)
    m = np.zeros((48, 64), dtype=bool)
    m[30:40, 30:44] = True
    m[33:36, 34:38] = False  # a hole
    shapes = dict(
        EVERY,
        polygon=Polygon.simple([(2, 20), (14, 20), (8, 30)]),
        mask=Mask.from_array(m),
        points=Points(((60, 4), (62, 6))),
    )
    for name, shape in shapes.items():
        project.labels.add(
            Annotation("a.png", name, shape, attributes={"colour": "red"} if name == "box" else {})
        )
    project.labels.skeletons["keypoints"] = Skeleton(("a", "b", "c"), ((0, 1), (1, 2)))
    return project


@pytest.mark.parametrize("fmt", sorted(BACK))
def test_every_shape_through_every_format(host, tmp_path, fmt):
    from collections import Counter

    from vfmstudio.core.exchange import shape_kind

    project = _every_shape_project(tmp_path)
    out = tmp_path / fmt
    sent = export_project(
        host.format(fmt), project, out, {"copy_images": True} if fmt not in ("masks",) else {}
    )
    back, got = import_dataset(
        host.format(fmt), out, {"image_root": str(project.root)} if fmt == "masks" else {}
    )
    kinds = Counter(shape_kind(a.shape) for a in back.labels.annotations())
    assert dict(kinds) == BACK[fmt], sent.report.summary()
    n = len(project.labels)
    dropped = sum(c for (k, _), c in sent.report.dropped.items() if k not in ("hole", "tag", "caption"))
    assert sum(sent.report.kept.values()) + sum(sent.report.converted.values()) + dropped == n
    if fmt in KEEPS_ATTRIBUTES:
        (box,) = [a for a in back.labels.annotations() if a.label == "box"]
        assert box.attributes.get("colour") == "red"
    kp = [a.shape for a in back.labels.annotations() if isinstance(a.shape, Keypoints)]
    for s in kp:  # keypoint sets keep their visibility wherever they are kept
        assert s.visibility == (2, 1, 0)


def test_coordinates_outside_the_image_are_clipped_on_import_with_a_warning(host, tmp_path):
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [30, -5, 20, 20], "segmentation": []},
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 1, 1],
                "segmentation": [[-3, 2, 10, 2, 10, 35]],
            },
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    project, ctx = import_dataset(host.format("coco"), tmp_path / "c.json")
    box, poly = project.labels.annotations("a.png")
    assert box.shape.xyxy == (30, 0, 40, 15) and poly.shape.parts[0].exterior == ((0, 2), (10, 2), (10, 30))
    assert any("c.json: box reaching outside the 40x30 image, clipped" in w for w in ctx.warnings)
    (tmp_path / "annotations.xml").write_text(
        '<annotations><image id="0" name="a.png" width="40" height="30">'
        '<box label="x" xtl="-2" ytl="1" xbr="10" ybr="31"/></image></annotations>'
    )
    project, ctx = import_dataset(host.format("cvat"), tmp_path)
    assert project.labels.annotations("a.png")[0].shape.xyxy == (0, 1, 10, 30) and ctx.warnings


def test_cvat_skeletons_are_keypoints(host, tmp_path):
    (tmp_path / "annotations.xml").write_text(
        '<annotations><version>1.1</version><image id="0" name="a.png" width="40" height="30">'
        '<skeleton label="person" source="manual" z_order="0">'
        '<points label="nose" source="manual" outside="0" occluded="0" points="10.0,5.0"/>'
        '<points label="hand" source="manual" outside="0" occluded="1" points="14.0,9.0"/>'
        '<points label="foot" source="manual" outside="1" occluded="0" points="0.0,0.0"/>'
        "</skeleton></image></annotations>"
    )
    project, _ = import_dataset(host.format("cvat"), tmp_path)
    (ann,) = project.labels.annotations("a.png")
    assert ann.shape == Keypoints(((10, 5), (14, 9), (0, 0)), (2, 1, 0), ("nose", "hand", "foot"))

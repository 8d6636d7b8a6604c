"""Project and annotation files are untrusted input: random JSON, wrong types, huge numbers, deep
nesting and paths that are absolute or climb out with '..' are refused with one line (or read
safely), never a traceback; exports never write outside their folder nor copy non-image files;
XML goes through defusedxml (billion laughs, external entities, external DTDs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.exchange import FormatError, export_project, import_dataset
from vfmstudio.core.project import ProjectError, open_project

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
HOSTILE_PATHS = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\a.png",
    "a\x00b.png",
    "",
    "..",
    "./../x.png",
    "ünï/..\\..\\x.png",
]
# Raw JSON text that Python's json module does not turn into ordinary values.
NASTY_TEXT = [
    "[" * 100_000 + "]" * 100_000,
    "9" * 5000,
    "1e999",
    "-1e999",
    "NaN",
    '"\ud800"',
    "\ufeff{}",
    '{"a": ' * 50_000 + "1" + "}" * 50_000,
]


@pytest.fixture(scope="module")
def formats():
    return PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()


def _project_doc(images=None, labels=None, **extra):
    return {
        "format": "vfmstudio-project",
        "version": 1,
        "revision": 1,
        "saved": "",
        "images": images
        if images is not None
        else [{"key": "a.png", "path": "a.png", "id": "", "width": 4, "height": 3}],
        "labels": labels if labels is not None else {},
        **extra,
    }


def _open_or_refuse(path: Path):
    try:
        return open_project(path)
    except ProjectError as exc:
        message = str(exc)
        assert "\n" not in message and path.name in message, message
        return None


@FUZZ
@given(doc=JSON)
def test_random_json_as_a_project_is_refused_in_one_line(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("p") / "vfmstudio.json"
    path.write_text(json.dumps(doc))
    _open_or_refuse(path)


@FUZZ
@given(
    field=st.sampled_from(["images", "labels", "revision", "version", "saved", "key", "path", "width", "id"]),
    value=JSON,
)
def test_a_project_with_one_field_of_the_wrong_type_is_refused_or_read(tmp_path_factory, field, value):
    doc = _project_doc()
    if field in ("key", "path", "width", "id"):
        doc["images"][0][field] = value
    else:
        doc[field] = value
    path = tmp_path_factory.mktemp("p") / "vfmstudio.json"
    path.write_text(json.dumps(doc))
    project = _open_or_refuse(path)
    if project is not None:
        project.to_bytes()  # what was read can be written back


@pytest.mark.parametrize("text", NASTY_TEXT, ids=range(len(NASTY_TEXT)))
@pytest.mark.parametrize("where", ["whole", "revision", "width", "labels"])
def test_deep_nesting_and_huge_numbers_in_a_project(tmp_path, text, where):
    if where == "whole":
        raw = text
    else:
        marker = "__HERE__"
        doc = _project_doc()
        if where == "width":
            doc["images"][0]["width"] = marker
        else:
            doc[where] = marker
        raw = json.dumps(doc).replace(f'"{marker}"', text)
    path = tmp_path / "vfmstudio.json"
    path.write_text(raw, encoding="utf-8", errors="surrogatepass")
    assert _open_or_refuse(path) is None or where == "labels" and text == "\ufeff{}"


@pytest.mark.parametrize("bad", HOSTILE_PATHS)
def test_absolute_and_odd_image_paths_in_a_project(tmp_path, bad):
    path = tmp_path / "vfmstudio.json"
    path.write_text(json.dumps(_project_doc(images=[{"key": "k", "path": bad}])))
    project = _open_or_refuse(path)
    if project is not None:  # only relative paths (possibly beside the project folder) get in
        rec = project.images["k"]
        assert (
            rec.path and not Path(rec.path).is_absolute() and "\x00" not in rec.path and ":" not in rec.path
        )


def test_exports_of_a_hostile_project_stay_in_their_folder_and_copy_images_only(tmp_path, formats):
    """A project from elsewhere names '../secret' files: exports copy no non-image file and write
    nothing outside their output folder."""
    root = tmp_path / "proj"
    root.mkdir()
    (tmp_path / "secret.png").write_text("PRIVATE KEY -- not an image, named like one")
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "outside.png")
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "inside.png")
    images = [
        {"key": "../secret.png", "path": "../secret.png", "width": 8, "height": 6},
        {"key": "../../../outside.png", "path": "../outside.png", "width": 8, "height": 6},
        {"key": "inside.png", "path": "inside.png", "width": 8, "height": 6},
    ]
    box = {"id": "b1", "label": "cat", "shape": {"type": "box", "x0": 1, "y0": 1, "x1": 5, "y1": 4}}
    labels = {
        "classes": [{"name": "cat", "color": "#ff0000"}],
        "annotations": {k["key"]: [dict(box, id=f"b{i}")] for i, k in enumerate(images)},
    }
    (root / "vfmstudio.json").write_text(json.dumps(_project_doc(images=images, labels=labels)))
    project = open_project(root / "vfmstudio.json")
    before = {p for p in tmp_path.rglob("*")}
    for spec in formats.formats.values():
        if not spec.exporter:
            continue
        out = tmp_path / "exports" / spec.id
        try:
            ctx = export_project(spec, project, out)
        except FormatError as exc:
            assert "\n" not in str(exc)
            continue
        for f in ctx.files:
            assert Path(f).resolve().is_relative_to(out.resolve()), (spec.id, f)
    after = {p for p in tmp_path.rglob("*")}
    created = after - before
    assert all(p.resolve().is_relative_to((tmp_path / "exports").resolve()) for p in created)
    leaked = [p for p in created if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert leaked == []


# ------------------------------------------------------------------ annotation files


def _import_or_refuse(formats, fmt, source):
    try:
        project, _ctx = import_dataset(formats.format(fmt), source, {})
    except FormatError as exc:
        assert "\n" not in str(exc), str(exc)
        return None
    for rec in project.images.values():  # whatever was read names images under the source folder
        assert not Path(rec.path).is_absolute() and ".." not in Path(rec.path).parts, rec.path
    return project


@FUZZ
@given(doc=JSON, fmt=st.sampled_from(["coco", "labelme", "labelstudio"]))
def test_random_json_as_annotation_files(tmp_path_factory, formats, doc, fmt):
    folder = tmp_path_factory.mktemp(fmt)
    name = {"coco": "annotations.json", "labelme": "img.json", "labelstudio": "tasks.json"}[fmt]
    (folder / name).write_text(json.dumps(doc))
    _import_or_refuse(formats, fmt, folder / name if fmt != "labelme" else folder)


@pytest.mark.parametrize("text", NASTY_TEXT, ids=range(len(NASTY_TEXT)))
@pytest.mark.parametrize("fmt", ["coco", "labelme", "labelstudio"])
def test_deep_nesting_and_huge_numbers_in_annotation_files(tmp_path, formats, fmt, text):
    name = {"coco": "annotations.json", "labelme": "img.json", "labelstudio": "tasks.json"}[fmt]
    (tmp_path / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    _import_or_refuse(formats, fmt, tmp_path / name if fmt != "labelme" else tmp_path)


@pytest.mark.parametrize("bad", HOSTILE_PATHS)
def test_escaping_image_paths_in_annotation_files(tmp_path, formats, bad):
    coco = {
        "images": [{"id": 1, "file_name": bad, "width": 4, "height": 4}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    _import_or_refuse(formats, "coco", tmp_path / "annotations.json")
    labelme = {"version": "5.0.1", "shapes": [], "imagePath": bad, "imageHeight": 4, "imageWidth": 4}
    folder = tmp_path / "lm"
    folder.mkdir()
    (folder / "img.json").write_text(json.dumps(labelme))
    _import_or_refuse(formats, "labelme", folder)


# ------------------------------------------------------------------ XML

LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
    + "]>\n<{root}><filename>&lol9;</filename></{root}>"
)
XXE_FILE = (
    '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
    '<{root}><filename>&xxe;</filename><image id="0" name="&xxe;" width="4" height="4"/></{root}>'
)
XXE_DTD = (
    '<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "file://{secret}">\n'
    "<{root}><filename>a.png</filename></{root}>"
)
XXE_PARAM = (
    '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>\n'
    "<{root}><filename>a.png</filename></{root}>"
)


@pytest.mark.parametrize(
    "attack", [LAUGHS, XXE_FILE, XXE_DTD, XXE_PARAM], ids=["laughs", "xxe", "dtd", "param"]
)
@pytest.mark.parametrize("fmt", ["voc", "cvat"])
def test_hostile_xml_is_refused(tmp_path, formats, attack, fmt):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    root = "annotation" if fmt == "voc" else "annotations"
    xml = attack.replace("{root}", root).replace("{secret}", str(secret))
    if fmt == "voc":
        (tmp_path / "Annotations").mkdir()
        (tmp_path / "Annotations" / "a.xml").write_text(xml)
    else:
        (tmp_path / "annotations.xml").write_text(xml)
    project = _import_or_refuse(formats, fmt, tmp_path)
    if project is not None:  # only acceptable if nothing external was read
        assert "TOP-SECRET" not in json.dumps(project.to_json())
    # Every DOCTYPE is refused, an external DTD included (docs/reliability.md): the whole import
    # (one file), or that file (lenient folder import).
    assert project is None or (fmt == "voc" and not project.images)
    with pytest.raises(FormatError, match="unsafe XML"):
        import_dataset(formats.format(fmt), tmp_path, {}, strict=True)


def test_an_external_dtd_is_refused_in_one_line(tmp_path, capsys):
    from vfmstudio.cli import main

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    (tmp_path / "annotations.xml").write_text(
        XXE_DTD.replace("{root}", "annotations").replace("{secret}", str(secret))
    )
    code = main(["import", str(tmp_path), "--format", "cvat", "--into", str(tmp_path / "proj.json")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "unsafe XML (DTDForbidden)" in err
    assert not (tmp_path / "proj.json").exists()


def test_xml_through_the_cli_import_is_one_line(tmp_path, capsys):
    from vfmstudio.cli import main

    (tmp_path / "annotations.xml").write_text(LAUGHS.replace("{root}", "annotations"))
    code = main(["import", str(tmp_path), "--format", "cvat", "--into", str(tmp_path / "proj.json")])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "unsafe XML" in err


@pytest.mark.parametrize("name", ["pipe.jpg", "bomb.png", "page.jpg", "loop.jpg"])
def test_adding_a_hostile_file_to_a_project_is_one_line(tmp_path, hostile_dir, name):
    from vfmstudio.core.image import ImageLoadError

    project = open_project(hostile_dir / "test-project.json", create=True)
    with pytest.raises((ImageLoadError, OSError)) as info:  # never blocks on the pipe
        project.add_image(hostile_dir / name)
    assert "\n" not in str(info.value) and name in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        NASTY_TEXT[0],
        NASTY_TEXT[1],
        json.dumps(_project_doc(labels=3.5)),
        json.dumps(_project_doc(images=[{"key": "k", "path": "/etc/passwd"}])),
    ],
    ids=["deep", "digits", "labels-float", "absolute-path"],
)
def test_the_window_session_refuses_a_hostile_project_and_never_overwrites_it(qtbot, tmp_path, text):
    from vfmstudio.qt.project_session import ProjectSession

    path = tmp_path / "vfmstudio.json"
    path.write_text(text)
    session = ProjectSession(autosave_ms=60_000)
    messages = []
    session.message.connect(lambda level, message: messages.append((level, message)))
    assert session.open(path) is False
    assert session.read_only and messages and messages[-1][0] == "error" and "\n" not in messages[-1][1]
    assert session.save() is False  # refused files are never written
    assert path.read_text() == text


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("labelme", "a.json"),
        ("coco", "annotations.json"),
        ("cvat", "annotations.xml"),
        ("voc", "Annotations/a.xml"),
        ("captions-jsonl", "captions.jsonl"),
        ("yolo", "data.yaml"),
    ],
)
def test_a_named_pipe_in_a_dataset_never_blocks_an_import(tmp_path, formats, fmt, name):
    import os
    import threading

    pipe = tmp_path / name
    pipe.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(pipe)
    source = pipe if fmt in ("coco", "captions-jsonl") else tmp_path
    outcome = {}

    def work():
        try:
            import_dataset(formats.format(fmt), source, {}, strict=True)  # lenient: skipped with this warning
        except FormatError as exc:
            outcome["error"] = str(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(3)
    blocked = t.is_alive()
    if blocked:  # release the reader so the thread ends
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        t.join(3)
    assert not blocked and "not a regular file" in outcome.get("error", "")

"""Importers given damaged files: a valid export with one value replaced at random either imports
or fails with a one-line FormatError, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.exchange import FormatError, export_project, import_dataset
from vfmstudio.testing.sample_project import build_sample_project

VALUES = st.sampled_from(
    [
        None,
        -1,
        0,
        1e308,
        float("nan"),
        float("inf"),
        "x",
        "",
        [],
        {},
        [1],
        {"a": 1},
        [[1, 2]],
        True,
        "../../etc/passwd",
        2**70,
    ]
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    host = PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()
    project = build_sample_project(root / "proj", n_images=2, size=(20, 24))
    export_project(host.format("coco"), project, root / "coco", {"mask_format": "rle"})
    export_project(host.format("labelme"), project, root / "labelme")
    return host, root


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list) and obj:
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    yield path


def _replace(obj, path, value):
    if not path:
        return value
    target = obj
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return obj


def _mutate_and_import(host, fmt, source, doc, data):
    leaves = list(_leaves(doc))
    path = data.draw(st.sampled_from(leaves))
    damaged = _replace(json.loads(json.dumps(doc)), path, data.draw(VALUES))
    source.write_text(json.dumps(damaged))
    try:
        import_dataset(host.format(fmt), source, {})
    except FormatError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_coco_files(exported, tmp_path_factory, data):
    host, root = exported
    doc = json.loads((root / "coco" / "annotations.json").read_text())
    target = tmp_path_factory.mktemp("coco-fuzz") / "annotations.json"
    _mutate_and_import(host, "coco", target, doc, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_labelme_files(exported, tmp_path_factory, data):
    host, root = exported
    doc = json.loads((root / "labelme" / "img0.json").read_text())
    folder = tmp_path_factory.mktemp("labelme-fuzz")
    (folder / "img0.png").write_bytes((root / "labelme" / "img0.png").read_bytes())
    _mutate_and_import(host, "labelme", folder / "img0.json", doc, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_cvat_files(exported, tmp_path_factory, data):
    from defusedxml.ElementTree import parse

    host, root = exported
    cvat = root / "cvat"
    if not (cvat / "annotations.xml").exists():
        project = build_sample_project(root / "proj2", n_images=2, size=(20, 24))
        export_project(host.format("cvat"), project, cvat)
    tree = parse(cvat / "annotations.xml")
    elements = [el for el in tree.getroot().iter() if el.attrib]
    el = data.draw(st.sampled_from(elements))
    attr = data.draw(st.sampled_from(sorted(el.attrib)))
    el.set(
        attr,
        data.draw(
            st.sampled_from(
                ["", "-1", "nan", "inf", "1e30", "x", "0", "../a.png", "1,2;3", "5, 5", "99999999999"]
            )
        ),
    )
    folder = tmp_path_factory.mktemp("cvat-fuzz")
    tree.write(folder / "annotations.xml")
    try:
        import_dataset(host.format("cvat"), folder, {})
    except FormatError as exc:
        assert "\n" not in str(exc)

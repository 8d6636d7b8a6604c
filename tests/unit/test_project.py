"""Project file: save/open, rotating backups, refusal of corrupt and newer files, recovery, images
that moved or changed."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.annotations import Annotation, Box, Mask
from vfmstudio.core.project import (
    BACKUPS,
    DEFAULT_NAME,
    ProjectCorruptError,
    ProjectError,
    ProjectTooNewError,
    atomic_write_bytes,
    backup_path,
    find_recovery,
    list_backups,
    open_backup,
    open_project,
)


def _image(path, size=(8, 6), color=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (color, 0, 0)).save(path)
    return path


@pytest.fixture
def project(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "sub" / "b.png", (5, 7))
    p = open_project(tmp_path, create=True)  # a folder means its vfmstudio.json
    p.add_image(tmp_path / "a.png")
    p.add_image("sub/b.png")
    p.labels.add(Annotation("a.png", "cat", Box(1, 1, 3, 3)))
    p.labels.add(Annotation("sub/b.png", "dog", Mask.from_array(np.eye(7, 5, dtype=bool))))
    p.labels.set_caption("a.png", "a cat")
    return p


def test_save_and_open_round_trip(project, tmp_path):
    assert project.path == tmp_path / DEFAULT_NAME and not project.path.exists()
    project.save()
    again = open_project(tmp_path / DEFAULT_NAME)
    assert again.labels == project.labels
    assert again.images["sub/b.png"].path == "sub/b.png" and again.images["sub/b.png"].width == 5
    assert again.images["a.png"].id == project.images["a.png"].id != ""
    assert again.revision == 1 and json.loads(project.path.read_text())["format"] == "vfmstudio-project"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_backups_rotate_and_hold_previous_revisions(project):
    for _ in range(BACKUPS + 3):
        project.save()
    backups = list_backups(project.path)
    assert [b.revision for b in backups] == [project.revision - 1 - i for i in range(BACKUPS)]
    assert not backup_path(project.path, BACKUPS + 1).exists()
    assert find_recovery(project.path) is None  # the project is the newest


def test_corrupt_file_is_refused_never_overwritten_and_a_backup_offered(project):
    project.save()
    project.save()
    garbage = b'{"format": "vfmstudio-project", "version": 1, "images": [{"ke'
    project.path.write_bytes(garbage)
    with pytest.raises(
        ProjectCorruptError,
        match=r"vfmstudio.json: not valid JSON .*backup exists: "
        r"vfmstudio.json.bak1 \(revision 1\)",
    ) as info:
        open_project(project.path)
    assert info.value.backup.revision == 1
    with pytest.raises(ProjectError, match="not saving over"):
        project.save()  # the copy in memory must not clobber a file it did not write
    assert project.path.read_bytes() == garbage
    offer = find_recovery(project.path)
    assert offer is not None and offer.revision == 1
    recovered = open_backup(project.path, offer)
    assert recovered.labels == project.labels
    recovered.save()
    assert open_project(project.path).labels == project.labels
    aside = [p for p in project.root.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == garbage  # kept, never lost


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "not a vfmstudio project"),
        (b'{"format": "vfmstudio-project"}', "version is missing"),
        (
            b'{"format": "vfmstudio-project", "version": 1, "images": [{"path": "x"}]}',
            "invalid project content",
        ),
        (
            b'{"format": "vfmstudio-project", "version": 1, "labels": {"classes": [{"name": "a"}, {"name": "a"}]}}',
            "listed twice",
        ),
    ],
)
def test_corrupt_files_give_one_line_reasons(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(ProjectCorruptError, match=message) as info:
        open_project(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == content


def test_newer_version_is_refused_and_not_overwritten(project):
    project.save()
    doc = json.loads(project.path.read_text())
    doc["version"] = 99
    project.path.write_text(json.dumps(doc))
    before = project.path.read_bytes()
    with pytest.raises(ProjectTooNewError, match="newer vfmstudio .*format 99"):
        open_project(project.path)
    with pytest.raises(ProjectError, match="not saving over"):
        project.save()
    assert project.path.read_bytes() == before
    assert find_recovery(project.path) is None  # a newer file is not "broken": no recovery over it


def test_a_backup_newer_than_the_project_is_offered(project):
    project.save()
    project.save()
    newest = project.path.read_bytes()
    doc = json.loads(newest)
    doc["revision"] = 1  # e.g. the project was replaced by an older copy (sync conflict, restore)
    project.path.write_text(json.dumps(doc))
    atomic_write_bytes(backup_path(project.path, 1), newest)
    offer = find_recovery(project.path)
    assert offer is not None and offer.path.name.endswith(".bak1") and offer.revision == 2


def test_unknown_keys_survive_a_save(project):
    project.save()
    doc = json.loads(project.path.read_text())
    doc["window"] = {"zoom": 2}
    project.path.write_text(json.dumps(doc))
    p = open_project(project.path)
    p.save()
    assert json.loads(project.path.read_text())["window"] == {"zoom": 2}


def test_moved_changed_and_missing_images_are_reported_annotations_kept(project, tmp_path):
    _image(tmp_path / "c.png", color=9)
    project.add_image("c.png")
    project.save()
    os.makedirs(tmp_path / "moved")
    os.replace(tmp_path / "a.png", tmp_path / "moved" / "a.png")
    _image(tmp_path / "sub" / "b.png", (5, 7), color=200)  # same name, new content
    os.remove(tmp_path / "c.png")
    p = open_project(project.path)
    issues = {i.key: i for i in p.check_images()}
    assert issues["a.png"].kind == "moved" and issues["a.png"].found == "moved/a.png"
    assert issues["sub/b.png"].kind == "changed" and issues["c.png"].kind == "missing"
    assert "annotations kept" in str(issues["c.png"])
    assert len(p.labels.annotations("a.png")) == 1 and len(p.labels.annotations("sub/b.png")) == 1
    p.relink("a.png", "moved/a.png")
    p.refresh("sub/b.png")
    assert {i.key for i in p.check_images()} == {"c.png"}
    assert p.labels.annotations("a.png")[0].label == "cat"


def test_missing_project_and_folder(tmp_path):
    with pytest.raises(ProjectError, match="no such project file"):
        open_project(tmp_path / "nope.json")
    with pytest.raises(ProjectError, match="does not exist"):
        open_project(tmp_path / "no" / "p.json", create=True)


def test_atomic_write_leaves_old_content_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_bytes(b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_a_failed_save_changes_neither_the_file_nor_the_revision(project, monkeypatch):
    import vfmstudio.core.project as project_module

    project.save()
    before = project.path.read_bytes()
    real = project_module.atomic_write_bytes

    def fail_on_project(path, data):
        if path == project.path:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(project_module, "atomic_write_bytes", fail_on_project)
    with pytest.raises(OSError, match="No space"):
        project.save()
    assert project.revision == 1 and project.path.read_bytes() == before
    monkeypatch.setattr(project_module, "atomic_write_bytes", real)
    project.save()
    assert open_project(project.path).revision == 2


def test_merging_the_same_dataset_twice_adds_nothing_the_second_time(project, tmp_path):
    from vfmstudio.core.project import in_memory

    other = in_memory(tmp_path)
    other.images["a.png"] = project.images["a.png"]
    for a in project.labels.annotations("a.png"):
        other.labels.add(a)
    other.labels.set_tags("a.png", ["x"])
    target = open_project(tmp_path / "t.json", create=True)
    first = target.merge(other)
    second = target.merge(other)
    assert first["annotations"] == 1 and first["images"] == 1
    assert second == {"images": 0, "annotations": 0, "classes": 0, "duplicates": 1}
    assert len(target.labels) == 1 and target.labels.tags["a.png"] == ("x",)

"""A second writer is never overwritten silently: save refuses with ProjectChangedOnDisk, and
merge_from_disk brings the other side's changes in by annotation id, reporting conflicts."""

from __future__ import annotations

import json
import os

import pytest

from vfmstudio.core.annotations import Annotation, Box, Points
from vfmstudio.core.project import ProjectChangedOnDisk, backup_path, open_project
from vfmstudio.core.project_merge import merge_from_disk


@pytest.fixture
def two_copies(tmp_path):
    """The same saved project opened twice, as two processes would."""
    p = open_project(tmp_path, create=True)
    p.labels.add(Annotation("a.png", "cat", Box(1, 1, 3, 3), id="keep"))
    p.labels.add(Annotation("a.png", "cat", Box(2, 2, 4, 4), id="edit-here"))
    p.labels.add(Annotation("a.png", "dog", Box(3, 3, 5, 5), id="edit-there"))
    p.labels.add(Annotation("a.png", "dog", Box(4, 4, 6, 6), id="both"))
    p.labels.add(Annotation("a.png", "dog", Box(5, 5, 7, 7), id="del-there"))
    p.labels.add(Annotation("a.png", "dog", Box(6, 6, 8, 8), id="del-here"))
    p.labels.set_caption("a.png", "base caption")
    p.save()
    return open_project(p.path), open_project(p.path)


def _ids(project):
    return sorted(a.id for a in project.labels.annotations())


def test_save_refuses_to_replace_a_file_another_writer_saved(two_copies):
    mine, theirs = two_copies
    theirs.labels.add(Annotation("a.png", "cat", Box(0, 0, 1, 1), id="theirs-new"))
    theirs.save()
    on_disk = mine.path.read_bytes()
    mine.labels.add(Annotation("a.png", "cat", Box(0, 0, 2, 2), id="mine-new"))
    with pytest.raises(
        ProjectChangedOnDisk,
        match=r"vfmstudio.json: changed on disk by another program .*"
        r"revision 1 here, revision 2 on disk.*not saved",
    ) as info:
        mine.save()
    assert "\n" not in str(info.value)
    assert mine.path.read_bytes() == on_disk and mine.revision == 1  # nothing written, nothing moved
    report = merge_from_disk(mine)
    assert report.added == 1 and not report.conflicts and report.revision == 2
    mine.save()
    assert _ids(open_project(mine.path)) == sorted([*_ids(theirs), "mine-new"])
    assert open_project(mine.path).revision == 3
    assert json.loads(backup_path(mine.path, 1).read_text())["revision"] == 2  # theirs kept as the backup


def test_three_way_merge_takes_each_sides_edits_and_reports_conflicts(two_copies):
    mine, theirs = two_copies
    L = theirs.labels
    L._replace(L.get("edit-there").with_label("cat"))
    L._replace(L.get("both").with_shape(Box(0, 0, 9, 9)))
    L._remove("del-there")
    L._replace(L.get("del-here").with_shape(Points(((1.0, 1.0),))))  # changed there, deleted here
    L._insert(Annotation("b.png", "bird", Box(0, 0, 1, 1), id="theirs-new"), None)
    L._set_caption("b.png", "their caption")
    L.classes.append(type(L.classes[0])("bird", "#123456"))
    theirs.save()

    M = mine.labels
    M._replace(M.get("edit-here").with_label("dog"))
    M._replace(M.get("both").with_shape(Box(1, 1, 8, 8)))
    M._remove("del-here")
    M._insert(Annotation("a.png", "cat", Box(0, 0, 2, 2), id="mine-new"), None)
    M._set_caption("a.png", "my caption")

    preview = merge_from_disk(mine, dry_run=True)
    assert "theirs-new" not in M and preview.added == 1  # a dry run changes nothing
    report = merge_from_disk(mine)
    assert (report.added, report.changed, report.removed) == (1, 1, 1)
    assert {c.id for c in report.conflicts} == {"both", "del-here"}
    assert "2 conflicting edits" in report.summary()
    assert M.get("edit-there").label == "cat" and M.get("edit-here").label == "dog"
    assert M.get("both").shape == Box(1, 1, 8, 8)  # a conflict keeps ours ...
    assert isinstance(M.get("del-here").shape, Points)  # ... but never loses their edit to our delete
    assert "del-there" not in M and "theirs-new" in M and "mine-new" in M
    assert M.captions == {"a.png": "my caption", "b.png": "their caption"}
    assert M.get_class("bird").color == "#123456"
    mine.save()  # the merged state replaces the file now
    assert open_project(mine.path).labels == M


def test_a_project_created_elsewhere_meanwhile_is_not_replaced(tmp_path):
    new_here = open_project(tmp_path, create=True)
    other = open_project(tmp_path, create=True)
    other.labels.add(Annotation("a.png", "cat", Box(1, 1, 3, 3), id="theirs"))
    other.save()
    new_here.labels.add(Annotation("a.png", "cat", Box(1, 1, 2, 2), id="mine"))
    with pytest.raises(ProjectChangedOnDisk, match="a new file on disk"):
        new_here.save()
    merge_from_disk(new_here)
    new_here.save()
    assert _ids(open_project(tmp_path)) == ["mine", "theirs"]


def test_a_file_deleted_meanwhile_is_written_again(two_copies):
    mine, _ = two_copies
    mine.path.unlink()
    mine.save()
    assert open_project(mine.path).labels == mine.labels


def test_backup_rotation_skips_a_backup_another_writer_moved(two_copies, monkeypatch):
    import vfmstudio.core.project as project_module

    mine, _ = two_copies
    mine.save()
    mine.save()
    real_replace = os.replace

    def racing_replace(src, dst):  # another writer rotates (moves) the backup just before we do
        if str(src).endswith(".bak1"):
            os.unlink(src)
        real_replace(src, dst)

    monkeypatch.setattr(project_module.os, "replace", racing_replace)
    mine.save()  # used to fail: "bak1 -> bak2: no such file"
    monkeypatch.undo()
    assert json.loads(backup_path(mine.path, 1).read_text())["revision"] == mine.revision - 1

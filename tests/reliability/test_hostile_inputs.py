"""Small hostile inputs from issue 21 (items 4-12): each gives exit 0, or one line with exit 2,
without writing outside the chosen folder, allocating what the file merely claims, or hanging."""

from __future__ import annotations

import json
import os

import pytest

from vfmstudio.cli import main
from vfmstudio.testing.sample_project import build_sample_project


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture
def sample(tmp_path, monkeypatch):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    project = build_sample_project(tmp_path / "proj", n_images=2)
    return project.path


# ------------------------------------------------------------------ item 6: exporters' filename


@pytest.mark.parametrize("fmt", ["coco", "cvat", "labelstudio", "captions-jsonl", "captions-csv"])
@pytest.mark.parametrize("name", ["../../escaped.json", "/tmp/vfmstudio-absolute.json", "sub/../../x.json"])
def test_export_filename_cannot_leave_the_export_folder(fmt, name, sample, tmp_path, capsys):
    before = files_under(tmp_path)
    out = tmp_path / "a" / "b" / "out"
    code, _, err = cli(capsys, "export", sample, "--format", fmt, "--out", out, "--param", f"filename={name}")
    one_error_line(code, err, "filename", "inside the export folder")
    assert files_under(tmp_path) == before  # not even the export folder was created
    assert not os.path.exists("/tmp/vfmstudio-absolute.json")


@pytest.mark.parametrize("fmt", ["coco", "cvat", "labelstudio", "captions-jsonl", "captions-csv"])
def test_each_exporter_joins_its_filename_safely_when_called_directly(fmt, sample, tmp_path):
    # The exporters themselves refuse too, for callers that skip export_project's check.
    from vfmstudio._plugin_host import get_host
    from vfmstudio.core.cancel import CancelToken
    from vfmstudio.core.exchange import ExchangeContext, FormatError, _load
    from vfmstudio.core.project import open_project

    spec = get_host().format(fmt)
    params = {p.name: p.default for p in spec.params} | {"filename": "../outside.json"}
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FormatError, match="escapes"):
        _load(spec.exporter)(open_project(sample), out, params, ExchangeContext(CancelToken(), None))
    assert not (tmp_path / "outside.json").exists()


def test_a_plain_filename_still_exports(sample, tmp_path, capsys):
    code, _, err = cli(capsys, "export", sample, "--format", "coco", "--out", tmp_path / "out",
                       "--param", "filename=sub/dir/../train.json")
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "sub" / "train.json").read_text())["images"]


# ------------------------------------------------------------------ item 12: a folder as the project file


def test_import_into_an_existing_folder_is_refused_without_writing(sample, tmp_path, capsys):
    code, _, err = cli(capsys, "export", sample, "--format", "coco", "--out", tmp_path / "coco")
    assert code == 0, err
    folder = tmp_path / "not-a-project"
    folder.mkdir()
    code, _, err = cli(capsys, "import", tmp_path / "coco" / "annotations.json", "--format", "coco",
                       "--into", folder)
    one_error_line(code, err, str(folder), "is a folder, not a project file")
    assert list(folder.iterdir()) == []
    # A folder holding a project still stands for that project.
    code, _, err = cli(capsys, "import", tmp_path / "coco" / "annotations.json", "--format", "coco",
                       "--into", sample.parent)
    assert code == 0, err


def test_the_loader_reads_the_header_before_hashing(tmp_path, monkeypatch):
    # An 8 GiB sparse "image" (no disk used) must be refused from its first bytes, not hashed whole.
    from vfmstudio.core import image

    hashed = []
    monkeypatch.setattr(image, "_id_for_stream", lambda fp: hashed.append(fp) or "0" * 16)
    path = tmp_path / "sparse.png"
    with path.open("wb") as fp:
        fp.truncate(8 << 30)
    for reader in (None, lambda p: None):  # with and without a plugin reader to fall back on
        with pytest.raises(image.ImageLoadError, match="not an image"):
            image.load_image(path, reader=reader)
    assert hashed == []
    image.load_image(_png(tmp_path / "ok.png"))
    assert len(hashed) == 1  # a real image is still hashed, once


def _png(path, w=8, h=6):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)
    return path


# ------------------------------------------------------------------ item 7: masks without image_id


def _masks(h, w, image_id=None):
    import numpy as np

    from vfmstudio.core.results import Masks

    return Masks(masks=np.zeros((1, h, w), bool), labels=("x",), image_id=image_id)


def test_masks_without_image_id_are_size_checked_against_the_only_input():
    from vfmstudio.core.results import check_against_inputs

    sizes = {"a": (6, 8)}
    assert check_against_inputs(0, _masks(6, 8), sizes) is None
    assert check_against_inputs(0, _masks(6, 8, "a"), sizes) is None
    assert check_against_inputs(0, _masks(60, 80), sizes) == "masks of size (60, 80) do not match image a of size (6, 8)"
    assert check_against_inputs(0, _masks(60, 80, "a"), sizes) == (
        "masks of size (60, 80) do not match image a of size (6, 8)")


def test_masks_without_image_id_among_several_inputs_must_fit_one_of_them():
    from vfmstudio.core.results import check_against_inputs

    sizes = {"a": (6, 8), "b": (10, 12)}
    assert check_against_inputs(1, _masks(10, 12), sizes) is None
    assert "match none of the 2 input images" in check_against_inputs(1, _masks(7, 7), sizes)


def test_results_naming_an_unknown_image_are_refused_but_rankings_are_not():
    import numpy as np

    from vfmstudio.core.results import Ranking, check_against_inputs

    assert check_against_inputs(2, _masks(6, 8, "zzz"), {"a": (6, 8)}) == (
        "result 2 names image zzz, which was not an input")
    ranking = Ranking(scores=np.asarray([0.5], np.float32), image_ids=("elsewhere",))
    assert check_against_inputs(0, ranking, {"a": (6, 8)}) is None
    assert check_against_inputs(0, _masks(6, 8), {}) is None  # a tool without image inputs

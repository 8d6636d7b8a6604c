"""Small hostile inputs from issue 21 (items 4-12): each gives exit 0, or one line with exit 2,
without writing outside the chosen folder, allocating what the file merely claims, or hanging."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    code, _, err = cli(
        capsys,
        "export",
        sample,
        "--format",
        "coco",
        "--out",
        tmp_path / "out",
        "--param",
        "filename=sub/dir/../train.json",
    )
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "sub" / "train.json").read_text())["images"]


# ------------------------------------------------------------------ item 12: a folder as the project file


def test_import_into_an_existing_folder_is_refused_without_writing(sample, tmp_path, capsys):
    code, _, err = cli(capsys, "export", sample, "--format", "coco", "--out", tmp_path / "coco")
    assert code == 0, err
    folder = tmp_path / "not-a-project"
    folder.mkdir()
    code, _, err = cli(
        capsys, "import", tmp_path / "coco" / "annotations.json", "--format", "coco", "--into", folder
    )
    one_error_line(code, err, str(folder), "is a folder, not a project file")
    assert list(folder.iterdir()) == []
    # A folder holding a project still stands for that project.
    code, _, err = cli(
        capsys, "import", tmp_path / "coco" / "annotations.json", "--format", "coco", "--into", sample.parent
    )
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
    assert (
        check_against_inputs(0, _masks(60, 80), sizes)
        == "masks of size (60, 80) do not match image a of size (6, 8)"
    )
    assert check_against_inputs(0, _masks(60, 80, "a"), sizes) == (
        "masks of size (60, 80) do not match image a of size (6, 8)"
    )


def test_masks_without_image_id_among_several_inputs_must_fit_one_of_them():
    from vfmstudio.core.results import check_against_inputs

    sizes = {"a": (6, 8), "b": (10, 12)}
    assert check_against_inputs(1, _masks(10, 12), sizes) is None
    assert "match none of the 2 input images" in check_against_inputs(1, _masks(7, 7), sizes)


def test_results_naming_an_unknown_image_are_refused_but_rankings_are_not():
    import numpy as np

    from vfmstudio.core.results import Ranking, check_against_inputs

    assert check_against_inputs(2, _masks(6, 8, "zzz"), {"a": (6, 8)}) == (
        "result 2 names image zzz, which was not an input"
    )
    ranking = Ranking(scores=np.asarray([0.5], np.float32), image_ids=("elsewhere",))
    assert check_against_inputs(0, ranking, {"a": (6, 8)}) is None
    assert check_against_inputs(0, _masks(6, 8), {}) is None  # a tool without image inputs


# ------------------------------------------------------------------ item 5: class lookup and class bombs


def test_class_lookup_does_not_scan_the_list(monkeypatch):
    # Count LabelClass.name reads: a linear lookup reads every class's name per call.
    from vfmstudio.core.annotations import LabelClass, LabelSet

    labels = LabelSet()
    for i in range(2000):
        labels.ensure_class(f"c{i}")
    reads = []
    monkeypatch.setattr(
        LabelClass, "name", property(lambda self: reads.append(1) or self.__dict__["name"]), raising=False
    )
    assert labels.class_index("c1999") == 1999 and labels.get_class("c5").name
    assert labels.ensure_class("c1000").name
    assert len(reads) <= 3


def test_class_index_follows_undoable_edits():
    from vfmstudio.core.annotations import LabelClass, LabelSet

    labels = LabelSet()
    for name in ("a", "b", "c"):
        labels.ensure_class(name)
    labels.classes.insert(0, LabelClass("z"))
    assert [labels.class_index(n) for n in "zabc"] == [0, 1, 2, 3]
    labels.classes.pop(labels.class_index("a"))
    labels.classes[0] = LabelClass("y")
    assert labels.get_class("z") is None and labels.get_class("a") is None
    assert [labels.class_index(n) for n in "ybc"] == [0, 1, 2]
    labels.ensure_class("d")
    assert labels.class_names == ["y", "b", "c", "d"] and labels.class_index("d") == 3


def _yolo_dataset(root, row, yaml_text=None):
    import numpy as np
    from PIL import Image

    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / "train" / "a.png")
    (root / "labels" / "train" / "a.txt").write_text(row + "\n")
    if yaml_text is not None:
        (root / "data.yaml").write_text(yaml_text)
    return root


def test_a_yolo_class_index_of_a_billion_creates_no_classes(tmp_path, capsys, monkeypatch):
    from vfmstudio.core.annotations import LabelSet

    made = []
    original = LabelSet.ensure_class
    monkeypatch.setattr(
        LabelSet, "ensure_class", lambda self, *a, **k: made.append(1) or original(self, *a, **k)
    )
    src = _yolo_dataset(tmp_path / "yolo", "999999999 0.5 0.5 0.2 0.2")
    code, _, err = cli(capsys, "import", src, "--format", "yolo", "--into", tmp_path / "p.json", "--strict")
    one_error_line(code, err, "class 999999999")
    assert made == [] and not (tmp_path / "p.json").exists()


def test_more_classes_than_the_budget_are_refused():
    from vfmstudio.core.annotations import MAX_CLASSES, AnnotationError, LabelSet

    labels = LabelSet()
    for i in range(MAX_CLASSES):
        labels.ensure_class(str(i))
    with pytest.raises(AnnotationError, match=f"more than {MAX_CLASSES} classes"):
        labels.ensure_class("one too many")
    assert len(labels.classes) == MAX_CLASSES


# ------------------------------------------------------------------ item 9: newlines and escapes in labels


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("cat", "cat"),
        ("two\nlines", "two lines"),
        ("\x1b[31mred\x1b[0m", "red"),
        ("x\x1b]0;new title\x07y", "xy"),
        ("gpj\u202eexe.png", "gpj exe.png"),
        ("tab\tand\r\nCRLF", "tab and  CRLF"),
        ("  café 猫  ", "café 猫"),
    ],
)
def test_clean_label(raw, clean):
    from vfmstudio.core.text import clean_label

    assert clean_label(raw) == clean


def test_labels_from_files_and_results_are_one_line(tmp_path, capsys):
    import numpy as np

    from vfmstudio.core.annotations import Annotation, Box, LabelSet
    from vfmstudio.core.results import Classification, Masks

    labels = LabelSet()
    ann = labels.add(Annotation("a.png", "evil\n\x1b[2Jname", Box(0, 0, 1, 1)))
    assert ann.label == "evil name" and labels.class_names == ["evil name"]
    masks = Masks(masks=np.zeros((1, 2, 2), bool), labels=("a\x1b[31m\nb",))
    assert masks.labels == ("a b",)
    cls = Classification(labels=("x\r\ny",), scores=np.asarray([1.0], np.float32))
    assert cls.labels == ("x  y",)


# ------------------------------------------------------------------ item 5: FIFOs in a batch folder


@pytest.fixture(scope="module")
def batch_out(tmp_path_factory, tiny_model):
    """A real batch output folder with sidecar arrays (dinov2.pca at resolution 56)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("batch")
    (root / "imgs").mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8)).save(
        root / "imgs" / "a.png"
    )
    os.environ["VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        code = main(
            [
                "batch",
                str(root / "imgs"),
                "--tool",
                "dinov2.pca",
                "--model",
                str(tiny_model("dinov2")),
                "--param",
                "resolution=56",
                "--device",
                "cpu",
                "--out",
                str(root / "out"),
            ]
        )
    finally:
        del os.environ["VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD"]
    assert code == 0
    assert list((root / "out" / "arrays").rglob("*.npy"))
    return root / "out"


def _copy_of(folder, tmp_path):
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "copy"))


@pytest.mark.parametrize("victim", ["npy", "prediction", "manifest"])
def test_a_fifo_in_a_batch_folder_is_refused_by_export(victim, batch_out, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    folder = _copy_of(batch_out, tmp_path)
    path = {
        "npy": next(folder.rglob("*.npy")),
        "prediction": next((folder / "predictions").glob("*.json")),
        "manifest": folder / "manifest.json",
    }[victim]
    path.unlink()
    os.mkfifo(path)  # opening it for reading would block until a writer appears: never
    code, _, err = cli(capsys, "export", folder, "--format", "coco", "--out", tmp_path / "coco")
    one_error_line(code, err, path.name, "not a regular file")


def test_a_sidecar_claiming_more_data_than_it_holds_is_refused_before_allocating(
    batch_out, tmp_path, capsys, monkeypatch
):
    import numpy as np

    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    folder = _copy_of(batch_out, tmp_path)
    npy = next(folder.rglob("*.npy"))
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), np.float32))
    header["shape"] = (100_000, 100_000, 3)  # 120 GB of float32, in a file of a few hundred bytes
    with npy.open("wb") as fp:
        np.lib.format.write_array_header_1_0(fp, header)
        fp.write(b"\0" * 64)
    loads = []
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a))
    code, _, err = cli(capsys, "export", folder, "--format", "coco", "--out", tmp_path / "coco")
    one_error_line(code, err, npy.name, "claims 120000000000 bytes of data but holds 64")
    assert loads == []


# ------------------------------------------------------------------ item 4: a data.yaml alias bomb

BILLION_LAUGHS_YAML = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{x}: &{x} [{','.join([f'*{p}'] * 9)}]\n" for p, x in zip("abcdefgh", "bcdefghi"))
    + "names: *i\n"
)


def test_the_yaml_reader_refuses_an_alias_bomb_before_building_it(monkeypatch):
    import yaml

    from vfmstudio.core.yaml_safe import YAMLRefused, load_yaml

    built = []
    original = yaml.SafeLoader.construct_document
    monkeypatch.setattr(
        yaml.SafeLoader, "construct_document", lambda self, n: built.append(1) or original(self, n)
    )
    with pytest.raises(YAMLRefused, match="alias bomb"):
        load_yaml(BILLION_LAUGHS_YAML)
    assert built == []  # refused from the node graph, before any Python object
    assert load_yaml("names: &n [cat, dog]\nagain: *n\n") == {
        "names": ["cat", "dog"],
        "again": ["cat", "dog"],
    }
    with pytest.raises(YAMLRefused, match="more than 3 YAML aliases"):
        load_yaml("a: &a 1\nb: [*a, *a, *a, *a]", max_aliases=3)
    with pytest.raises(YAMLRefused):
        load_yaml("a: [unclosed")
    with pytest.raises(YAMLRefused):
        load_yaml("!!python/object/apply:os.system ['true']")  # safe: no Python objects from tags


def test_import_of_a_yolo_alias_bomb_is_one_line(tmp_path, capsys):
    src = _yolo_dataset(tmp_path / "yolo", "0 0.5 0.5 0.2 0.2", BILLION_LAUGHS_YAML)
    code, _, err = cli(capsys, "import", src, "--format", "yolo", "--into", tmp_path / "p.json")
    one_error_line(code, err, "data.yaml", "alias bomb")


# ------------------------------------------------------------------ item 4: records claiming huge sizes


def _doctored(sample, change):
    doc = json.loads(sample.read_text())
    change(doc)
    sample.write_text(json.dumps(doc))
    return sample


def test_an_image_record_of_a_million_squared_is_refused_on_load(sample, tmp_path, capsys):
    def huge(doc):
        doc["images"][0]["width"] = doc["images"][0]["height"] = 1_000_000

    _doctored(sample, huge)
    code, _, err = cli(capsys, "export", sample, "--format", "masks", "--out", tmp_path / "out")
    one_error_line(code, err, sample.name, "claims 1000000x1000000 pixels")
    assert not (tmp_path / "out").exists()


def test_a_mask_claiming_100000_squared_is_refused_before_decoding(sample, tmp_path, capsys, monkeypatch):
    from vfmstudio.core import rle

    def huge_mask(doc):
        for entry in doc["labels"]["images"].values():
            for ann in entry["annotations"]:
                if ann["shape"]["kind"] == "mask":
                    ann["shape"]["rle"] = {
                        "size": [100_000, 100_000],
                        "counts": rle.counts_to_string([10**10]),
                    }

    _doctored(sample, huge_mask)
    decoded = []
    monkeypatch.setattr(rle, "counts_to_mask", lambda *a: decoded.append(a))
    code, _, err = cli(capsys, "export", sample, "--format", "coco", "--out", tmp_path / "out")
    one_error_line(code, err, sample.name, "mask of 100000x100000 pixels exceeds the limit")
    assert decoded == []


def test_a_non_canonical_rle_claiming_a_huge_size_is_refused_before_decoding(monkeypatch):
    from vfmstudio.core import rle
    from vfmstudio.core.annotations import AnnotationError, Mask

    decoded = []
    monkeypatch.setattr(rle, "decode", lambda obj: decoded.append(obj))
    with pytest.raises(AnnotationError, match="exceeds the limit"):
        Mask.from_rle({"size": [100_000, 100_000], "counts": [0, 0, 10**10]})
    assert decoded == []


# ------------------------------------------------------------------ item 4: the decode memory budget


def test_the_decode_budget_is_checked_from_the_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    from vfmstudio.core.image import ImageLoadError, decode_bytes_estimate, load_image

    path = _png(tmp_path / "a.png", w=64, h=32)
    need = decode_bytes_estimate("RGB", 64, 32)
    assert need == 64 * 32 * 10
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(
        ImageLoadError,
        match=r"a.png: decoding this 64x32 RGB image needs about 0 MiB, over the "
        r"budget of 0 MiB \(set VFMSTUDIO_MAX_IMAGE_MB\)",
    ):
        load_image(path, max_bytes=need - 1)
    assert decoded == []
    monkeypatch.undo()
    assert load_image(path, max_bytes=need).width == 64
    assert load_image(path, max_bytes=None).width == 64


def test_wider_modes_cost_more_per_pixel():
    from vfmstudio.core.image import decode_bytes_estimate

    costs = {
        m: decode_bytes_estimate(m, 100, 100) for m in ("L", "RGB", "I;16", "CMYK", "RGBA", "F", "YCbCr")
    }
    assert costs["L"] < costs["RGB"] < costs["I;16"] < costs["CMYK"] < costs["RGBA"] < costs["F"]
    assert costs["YCbCr"] >= costs["RGBA"]  # unlisted modes take the worst case but one


def test_the_budget_comes_from_the_environment(monkeypatch, caplog):
    from vfmstudio.core.image import _max_decode_bytes_from_env

    assert _max_decode_bytes_from_env({}) == 2048 << 20
    assert _max_decode_bytes_from_env({"VFMSTUDIO_MAX_IMAGE_MB": "512"}) == 512 << 20
    assert _max_decode_bytes_from_env({"VFMSTUDIO_MAX_IMAGE_MB": "lots"}) == 2048 << 20
    assert "VFMSTUDIO_MAX_IMAGE_MB" in caplog.text


# ------------------------------------------------------------------ item 10: exit status 2, not "internal error"


@pytest.mark.parametrize("code_name", ["ENOSPC", "EROFS", "EACCES", "EDQUOT"])
def test_import_on_a_full_or_read_only_disk_is_exit_2(code_name, sample, tmp_path, capsys, monkeypatch):
    import errno

    from vfmstudio.core.project import Project

    code, _, err = cli(capsys, "export", sample, "--format", "coco", "--out", tmp_path / "coco")
    assert code == 0, err
    target = tmp_path / "new" / "project.json"
    target.parent.mkdir()

    def failing_save(self, *args, **kwargs):
        number = getattr(errno, code_name)
        raise OSError(number, os.strerror(number), str(self.path))

    monkeypatch.setattr(Project, "save", failing_save)
    code, _, err = cli(
        capsys, "import", tmp_path / "coco" / "annotations.json", "--format", "coco", "--into", target
    )
    one_error_line(code, err, str(target), os.strerror(getattr(errno, code_name)))
    assert "internal error" not in err


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (MemoryError(), "out of memory"),
        (OSError(28, "No space left on device"), "No space left on device"),
    ],
)
def test_memory_and_disk_failures_anywhere_are_exit_2(exc, fragment, capsys, monkeypatch):
    from vfmstudio.commands import formats

    def boom(args):
        raise exc

    monkeypatch.setattr(formats, "run", boom)
    code, _, err = cli(capsys, "formats")
    one_error_line(code, err, fragment)


def test_pillows_decompression_bomb_error_is_exit_2(capsys, monkeypatch):
    from PIL import Image

    from vfmstudio.commands import formats

    def boom(args):
        raise Image.DecompressionBombError("Image size (300000000 pixels) exceeds limit")

    monkeypatch.setattr(formats, "run", boom)
    code, _, err = cli(capsys, "formats")
    one_error_line(code, err, "decompression bomb", "300000000 pixels")


def test_a_real_bug_is_still_exit_1(capsys, monkeypatch):
    from vfmstudio.commands import formats

    def boom(args):
        raise OSError(5, "Input/output error")  # EIO: not the user's input

    monkeypatch.setattr(formats, "run", boom)
    code, _, err = cli(capsys, "formats")
    assert code == 1 and "internal error" in err


# ------------------------------------------------------------------ item 8: no half folders, a --resume that works


@pytest.fixture
def dinov2(tiny_model, capsys):
    path = tiny_model("dinov2")
    capsys.readouterr()  # building it prints a progress bar
    return path


@pytest.fixture
def one_image(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    _png(folder / "a.png", w=40, h=30)
    return folder


@pytest.mark.parametrize("points", ["nan,nan", "inf,3", "1,2; -inf,4"])
def test_non_finite_points_are_refused_before_the_output_folder_exists(
    points, one_image, tmp_path, capsys, monkeypatch, dinov2
):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    code, _, err = cli(
        capsys,
        "batch",
        one_image,
        "--tool",
        "dinov2.similarity",
        "--model",
        dinov2,
        "--param",
        f"points={points}",
        "--device",
        "cpu",
        "--out",
        tmp_path / "out",
    )
    one_error_line(code, err, "parameter 'points': point coordinates must be finite numbers")
    assert not (tmp_path / "out").exists()


def test_points_given_as_python_values_are_checked_too():
    from vfmstudio.core.tools import Param, ParamError, ParamType

    param = Param("points", ParamType.POINTS)
    assert param.coerce([(1, 2), (3.5, 4)]) == ((1.0, 2.0), (3.5, 4.0))
    with pytest.raises(ParamError, match="finite"):
        param.coerce([(float("nan"), 1.0)])


def test_a_batch_that_hit_a_full_disk_on_its_manifest_resumes(
    one_image, tmp_path, capsys, monkeypatch, dinov2
):
    import errno

    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    argv = [
        "batch",
        one_image,
        "--tool",
        "dinov2.pca",
        "--model",
        dinov2,
        "--param",
        "resolution=28",
        "--device",
        "cpu",
        "--out",
        tmp_path / "out",
        "--json",
    ]
    with monkeypatch.context() as patch:  # the first write to reach the disk is the manifest's
        patch.setattr(os, "fsync", full_disk)
        code, _, err = cli(capsys, *argv)
    one_error_line(code, err, "No space left on device", "--resume")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no half-written manifest left behind
    code, out, err = cli(capsys, *argv, "--resume")
    assert code == 0, err
    assert json.loads(out)["done"] == 1, out


def test_a_resume_clears_leftovers_of_a_run_killed_before_its_manifest(
    one_image, tmp_path, capsys, monkeypatch, dinov2
):
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".tmp-999-1-manifest.json").write_text('{"form')  # SIGKILL mid-write (old naming)
    (tmp_path / "out" / ".manifest.json.k2j3h4.tmp").write_text('{"form')  # and core.atomic's
    code, out, err = cli(
        capsys,
        "batch",
        one_image,
        "--tool",
        "dinov2.pca",
        "--model",
        dinov2,
        "--param",
        "resolution=28",
        "--device",
        "cpu",
        "--out",
        tmp_path / "out",
        "--resume",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["done"] == 1
    assert not list((tmp_path / "out").glob(".tmp-*")) and not list((tmp_path / "out").glob(".*.tmp"))


# ------------------------------------------------------------------ item 11: extreme aspect ratios


def test_an_extreme_aspect_ratio_is_scaled_to_fit_the_patch_limit():
    from vfmstudio_dinov2._features import MAX_TOKENS, plan_geometry

    g = plan_geometry(3, 4000, 112, 14)  # 4000x3 at 112 would be 8 x 10666 = 85328 patches
    rows, cols = g.grid
    assert rows * cols <= MAX_TOKENS
    assert "would need 85328 patches" in g.note and f"the limit is {MAX_TOKENS}" in g.note
    # The largest short side that fits: one pixel more would not.
    short = min(g.resized)
    assert f"scaled to {short} px" in g.note
    bigger = plan_geometry(3, 4000, short + 1, 14)
    assert bigger.note  # short + 1 itself had to be scaled down
    x0, y0, x1, y1 = g.extent  # the window still maps back into the image
    assert 0 <= x0 < x1 <= 4000 and 0 <= y0 < y1 <= 3
    assert plan_geometry(300, 470, 448, 14).note == ""  # ordinary images are untouched


def test_a_strip_too_long_even_one_patch_high_is_refused_in_one_line():
    from vfmstudio_dinov2._features import plan_geometry

    from vfmstudio.core.tools import ParamError

    with pytest.raises(ParamError, match=r"1000000x10 image is 100000 patches long even one patch high"):
        plan_geometry(10, 1_000_000, 28, 14)


def test_run_on_a_4000x3_strip_gives_a_result_and_says_it_was_scaled(tmp_path, capsys, monkeypatch, dinov2):
    from vfmstudio_dinov2 import _features

    from vfmstudio.core.context import RunContext

    # The real limit (16384) costs seconds of CPU attention on this strip; a lower one shows the same.
    monkeypatch.setattr(_features, "MAX_TOKENS", 2048)
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    strip = _png(tmp_path / "strip.png", w=4000, h=3)
    messages = []
    real_progress = RunContext.progress
    monkeypatch.setattr(
        RunContext, "progress", lambda self, f, m="": messages.append(m) or real_progress(self, f, m)
    )
    code, out, err = cli(
        capsys,
        "run",
        "dinov2.pca",
        strip,
        "--model",
        dinov2,
        "--param",
        "resolution=112",
        "--device",
        "cpu",
        "--json",
    )
    assert code == 0, err
    prediction = json.loads(out)
    assert prediction["tool"] == "dino.pca" and prediction["results"]
    assert any("strip.png: resolution 112 would need" in m and "the limit is 2048" in m for m in messages)
    # The result itself says so too (run --json, batch prediction files, the window's messages).
    (note,) = prediction["notes"]
    assert note.startswith("strip.png: resolution 112 would need") and "the limit is 2048" in note


# ------------------------------------------------------------------ item 8: an interrupted export says so


def test_an_export_that_fails_half_way_leaves_a_marker_and_a_finished_one_does_not(
    sample, tmp_path, capsys, monkeypatch
):
    from vfmstudio_formats import _yolo

    from vfmstudio.core.exchange import INCOMPLETE_MARKER

    out = tmp_path / "yolo"
    code, _, err = cli(capsys, "export", sample, "--format", "yolo", "--out", out)
    assert code == 0, err
    assert not (out / INCOMPLETE_MARKER).exists() and (out / "data.yaml").exists()
    with monkeypatch.context() as patch:  # a Ctrl-C (or a kill) half-way through the exporter
        patch.setattr(_yolo, "export_detect", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        code, _, err = cli(capsys, "export", sample, "--format", "yolo", "--out", out)
    assert code == 130
    assert "did not finish" in (out / INCOMPLETE_MARKER).read_text()
    code, _, err = cli(capsys, "export", sample, "--format", "yolo", "--out", out)
    assert code == 0 and not (out / INCOMPLETE_MARKER).exists()


def test_single_labels_of_map_results_are_one_line_too():
    import numpy as np

    from vfmstudio.core.results import Heatmap

    assert Heatmap(values=np.zeros((2, 2), np.float32), label="sim\n\x1b[1mx").label == "sim x"


# ------------------------------------------------------------------ one pixel limit for every header reader


def test_every_header_reader_uses_the_same_pixel_limit(tmp_path):
    # 190 MP: under our limit (200 MP) but over Pillow's own (179 MP), which project headers used.
    from vfmstudio.core.image import open_image
    from vfmstudio.core.project import image_size
    from vfmstudio.testing.hostile import _png_raw

    path = tmp_path / "big.png"
    path.write_bytes(_png_raw(19_000, 10_000, 1, 0, None))  # 1-bit grey: small to decode too
    assert image_size(path) == (19_000, 10_000)
    with open_image(path) as im:
        assert im.size == (19_000, 10_000)
    from PIL import Image

    with pytest.raises(Image.DecompressionBombError, match="exceeds the limit of 100 pixels"):
        open_image(path, max_pixels=100)


def test_a_labelme_mask_claiming_too_many_pixels_is_one_line(tmp_path, capsys, monkeypatch):
    import base64

    from vfmstudio.testing.hostile import _png_raw

    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    folder = tmp_path / "lm"
    folder.mkdir()
    _png(folder / "a.png")
    mask = base64.b64encode(_png_raw(20_000, 20_000, 1, 0, None)).decode()  # 400 MP in a few bytes
    doc = {
        "version": "5.4.1",
        "flags": {},
        "imagePath": "a.png",
        "imageData": None,
        "imageHeight": 6,
        "imageWidth": 8,
        "shapes": [{"label": "x", "points": [[0, 0], [7, 5]], "shape_type": "mask", "mask": mask}],
    }
    (folder / "a.json").write_text(json.dumps(doc))
    code, _, err = cli(
        capsys, "import", folder / "a.json", "--format", "labelme", "--into", folder / "p.json"
    )
    one_error_line(code, err, "a.json", "20000x20000 pixels exceeds the limit")

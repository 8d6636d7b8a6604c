"""No user file ever reaches an external program (issue 21, item 1; ADR 0100).

Pillow identifies files by content and its EPS plugin runs Ghostscript on them, so an EPS named
``.png`` used to run a PostScript program. Two guards:

- statically, every ``Image.open`` of the product code is the one in ``core/image.py`` and passes
  the allow-list (``formats=``);
- at run time, every way Python starts a program is replaced by a recorder, Pillow is told that
  Ghostscript is installed, and the hostile corpus goes through the loader, ``run``, ``batch``,
  ``import`` (labelme images and base64 masks), project headers, thumbnails and propagate masks.
  A first test proves the recorder catches Pillow's own call when the allow-list is bypassed.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from vfmstudio.cli import main
from vfmstudio.testing.hostile import EPS, EPS_DOS, PDF

ROOT = Path(__file__).resolve().parents[2]
_SPAWNERS = (
    "system",
    "popen",
    "posix_spawn",
    "posix_spawnp",
    "fork",
    "forkpty",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
)


@pytest.fixture
def spawned(monkeypatch):
    """The list of attempts to start a program; each attempt also fails, so nothing runs."""
    from PIL import EpsImagePlugin

    calls: list[str] = []

    def recorder(name):
        def refuse(*args, **kwargs):
            calls.append(f"{name}{args[:1]!r}")
            raise PermissionError(f"test: {name} refused")

        return refuse

    monkeypatch.setattr(subprocess, "Popen", recorder("subprocess.Popen"))
    for name in _SPAWNERS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, recorder(f"os.{name}"))
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "gs")  # as if Ghostscript were installed
    monkeypatch.setenv("VFMSTUDIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    before = _children()
    yield calls
    assert _children() <= before  # no process left behind
    assert not os.path.exists("/tmp/vfmstudio-hostile-eps-ran")  # what the EPS program would write


def _children() -> set[str]:
    """Ids of this process's child processes (Linux /proc)."""
    out: set[str] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{os.getpid()}/task/{task}/children") as fp:
            out |= set(fp.read().split())
    return out


@pytest.fixture
def hostile_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    files = {"eps.png": EPS, "eps.jpg": EPS, "dos-eps.tif": EPS_DOS, "doc.png": PDF}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_the_recorder_catches_pillow_running_ghostscript(spawned):
    from PIL import Image

    with pytest.raises(PermissionError), Image.open(io.BytesIO(EPS)) as im:  # every plugin, as before
        im.load()
    assert spawned and spawned[0].startswith("subprocess.Popen")


def _image_open_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "open"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "Image"
    ]


def test_every_image_open_is_the_allow_listed_one():
    calls = {}
    for folder in ("vfmstudio", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for call in _image_open_calls(path):
                calls.setdefault(path.relative_to(ROOT).as_posix(), []).append(call)
    assert list(calls) == ["vfmstudio/core/image.py"], f"decode images through core.image.open_image: {calls}"
    (only,) = calls["vfmstudio/core/image.py"]
    keywords = {k.arg: ast.unparse(k.value) for k in only.keywords}
    assert keywords == {"formats": "formats"}
    source = (ROOT / "vfmstudio/core/image.py").read_text(encoding="utf-8")
    assert "formats = allowed_formats()" in source  # narrowed only by intersection, never widened


def test_allowed_formats_are_library_decoders_only():
    from PIL import Image

    from vfmstudio.core.image import allowed_formats

    formats = allowed_formats()
    assert {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"} <= set(formats)
    assert not {"EPS", "PDF", "PS", "WMF", "XVTHUMB"} & set(formats)
    assert all(f in Image.OPEN for f in formats)  # an unregistered name would make Image.open raise


@pytest.mark.parametrize("name", ["eps.png", "eps.jpg", "dos-eps.tif", "doc.png"])
def test_loader_project_thumbnails_and_masks_refuse_without_spawning(name, hostile_files, spawned):
    from vfmstudio_dinov2._refmasks import _read_label_image
    from vfmstudio_formats._common import png_to_mask

    from vfmstudio.core.image import ImageLoadError, load_image
    from vfmstudio.core.project import image_size
    from vfmstudio.core.tools import ParamError
    from vfmstudio.qt.thumbnails import make_thumbnail

    path = hostile_files / name
    expected = "PDF document" if name == "doc.png" else "PostScript/EPS"
    with pytest.raises(ImageLoadError, match=expected):
        load_image(path)
    with pytest.raises(ImageLoadError, match=expected):
        image_size(path)
    with pytest.raises(OSError, match=expected):
        make_thumbnail(path)
    with pytest.raises(ParamError, match=expected):
        _read_label_image(path)
    with pytest.raises(OSError, match=expected):
        png_to_mask(path.read_bytes())
    assert spawned == []


@pytest.fixture(scope="module")
def dinov2(tiny_model):
    return str(tiny_model("dinov2"))


def test_run_and_batch_refuse_postscript_without_spawning(hostile_files, dinov2, tmp_path, spawned, capsys):
    code = main(
        [
            "run",
            "dinov2.pca",
            str(hostile_files / "eps.png"),
            "--model",
            dinov2,
            "--param",
            "resolution=28",
            "--device",
            "cpu",
            "--json",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "PostScript/EPS" in err
    code = main(
        [
            "batch",
            str(hostile_files),
            "--tool",
            "dinov2.pca",
            "--model",
            dinov2,
            "--param",
            "resolution=28",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["failed"] == 4
    reasons = [
        json.loads(line)["reason"] for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()
    ]
    assert sum("PostScript/EPS" in r for r in reasons) == 3 and sum("PDF" in r for r in reasons) == 1
    assert spawned == []


def _labelme(image: str, mask: bytes | None) -> dict:
    shapes = [{"label": "cat", "points": [[1, 1], [6, 1], [6, 6]], "shape_type": "polygon"}]
    if mask is not None:
        shapes = [
            {
                "label": "cat",
                "points": [[0, 0], [7, 7]],
                "shape_type": "mask",
                "mask": base64.b64encode(mask).decode(),
            }
        ]
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image,
        "imageData": None,
        "imageHeight": 8,
        "imageWidth": 8,
    }


@pytest.mark.parametrize(
    "mask", [EPS, EPS_DOS, PDF, None], ids=["eps-mask", "dos-eps-mask", "pdf-mask", "eps-image"]
)
def test_import_of_labelme_with_postscript_never_spawns(mask, hostile_files, tmp_path, spawned, capsys):
    doc = hostile_files / "eps.json"
    doc.write_text(json.dumps(_labelme("eps.png", mask)))
    code = main(["import", str(doc), "--format", "labelme", "--into", str(hostile_files / "project.json")])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and code == 2 and err.count("\n") == 1
    # The mask (refused, or dropped by a lenient import) or else the EPS image is named, with why.
    assert "PDF document" in err or "PostScript/EPS" in err
    assert str(doc) in err or str(hostile_files / "eps.png") in err
    assert spawned == []


def test_thumbnails_keep_the_loaders_budgets(tmp_path, monkeypatch):
    from PIL import ImageFile

    from vfmstudio.qt.thumbnails import make_thumbnail
    from vfmstudio.testing.hostile import _png_raw

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_raw(12_000, 12_000, 8, 6, None))  # 144 MP RGBA: ~3.3 GB to decode
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(ValueError, match="over the decode budget"):
        make_thumbnail(bomb)
    assert decoded == []

"""Issue 21, item 12: a file is hashed only once its header reads as an image.

Hashing reads every byte; an 8 GiB sparse file named ``.png`` (no disk used) must be refused from its
first bytes by every path that computes an image id, not after reading 8 GiB.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core import image
from vfmstudio.core.image import ImageLoadError, image_id_for_file
from vfmstudio.core.project import Project

SPARSE_BYTES = 8 << 30


@pytest.fixture
def hashed(monkeypatch):
    """Bytes fed to the content hash, per call (the real hash still runs)."""
    calls: list[int] = []
    real = image._id_for_stream

    def counting(fp):
        start = fp.tell()
        digest = real(fp)
        calls.append(fp.tell() - start)
        return digest

    monkeypatch.setattr(image, "_id_for_stream", counting)
    return calls


def _sparse(path):
    with path.open("wb") as fp:
        fp.truncate(SPARSE_BYTES)
    return path


def _png(path, w=8, h=6):
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path)
    return path


def test_image_id_for_file_refuses_a_sparse_non_image_unread(tmp_path, hashed):
    path = _sparse(tmp_path / "huge.png")
    with pytest.raises(ImageLoadError, match="not an image") as info:
        image_id_for_file(path)
    assert info.value.path == path
    assert hashed == []
    # A plugin reader that declines the file does not make it hashable either.
    declined = []
    with pytest.raises(ImageLoadError, match="not an image"):
        image_id_for_file(path, reader=lambda p: declined.append(p))
    assert declined == [path] and hashed == []


def test_image_id_for_file_still_hashes_real_images_whole(tmp_path, hashed):
    path = _png(tmp_path / "ok.png")
    assert image_id_for_file(path) == image.load_image(path).id
    assert hashed == [path.stat().st_size] * 2  # the id and the loader's, each over every byte


def test_image_id_for_file_refuses_empty_and_corrupt_headers(tmp_path, hashed):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="file is empty"):
        image_id_for_file(empty)
    html = tmp_path / "page.jpg"
    html.write_bytes(b"<!doctype html><p>hi</p>" * 40)
    with pytest.raises(ImageLoadError, match="looks like HTML/text"):
        image_id_for_file(html)
    eps = tmp_path / "doc.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\nshowpage\n")
    with pytest.raises(ImageLoadError, match="PostScript"):
        image_id_for_file(eps)
    assert hashed == []


def test_project_paths_refuse_the_sparse_file_before_hashing(tmp_path, hashed):
    project = Project(tmp_path / "p.vfmstudio.json")
    with pytest.raises(ImageLoadError, match="cannot read the image header"):
        project.add_image(_sparse(tmp_path / "huge.png"))
    assert project.images == {} and hashed == []

    rec = project.add_image(_png(tmp_path / "a.png"))
    assert len(hashed) == 1
    hashed.clear()
    # The image is replaced by the sparse file: reported as changed, without reading 8 GiB.
    _sparse(tmp_path / "a.png")
    issues = project.check_images()
    assert [(i.key, i.kind) for i in issues] == [(rec.key, "changed")]
    with pytest.raises(ImageLoadError, match="not an image"):
        project.relink(rec.key, tmp_path / "a.png")
    assert hashed == []

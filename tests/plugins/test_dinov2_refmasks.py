"""Reference masks for dinov2.propagate come from user files: hostile ones are one-line errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from vfmstudio_dinov2._refmasks import _read_file

from vfmstudio.core.tools import ParamError
from vfmstudio.testing.hostile import _png_raw


def test_a_label_png_reads_its_classes(tmp_path):
    labels = np.zeros((4, 6), np.uint8)
    labels[1:3, 2:5] = 2
    Image.fromarray(labels).save(tmp_path / "l.png")
    classes = _read_file(tmp_path / "l.png")
    assert len(classes) == 1 and int(next(iter(classes.values())).sum()) == 6


def test_a_bomb_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_raw(100_000, 100_000, 8, 0, None))
    with pytest.raises(ParamError, match="label image .*(limit|exceeds)") as err:
        _read_file(path)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX only")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    with pytest.raises(ParamError, match="not a regular file"):
        _read_file(path)

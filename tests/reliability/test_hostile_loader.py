"""Every hostile image through core.image.load_image: the expected picture or the expected one-line error."""

from __future__ import annotations

import numpy as np
import pytest

from vfmstudio.core.image import ImageLoadError, list_images, load_image
from vfmstudio.testing.hostile import CASES, Fails, Loads


def test_the_corpus_is_large_and_mixed():
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)
    assert sum(isinstance(c.expect, Fails) for c in CASES) >= 8
    assert sum(isinstance(c.expect, Loads) for c in CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_case_loads_correctly_or_fails_clearly(case, hostile_dir):
    path = case.path(hostile_dir)
    if isinstance(case.expect, Fails):
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        message = str(info.value)
        assert case.expect.fragment in message
        assert "\n" not in message and message.startswith(str(path))
    else:
        image = load_image(path)
        exp = case.expect
        assert (image.width, image.height) == (exp.width, exp.height)
        assert image.pixels.shape == (exp.height, exp.width, 3) and image.pixels.dtype == np.uint8
        for (x, y), rgb in exp.colours.items():
            got = image.pixels[y, x].astype(int)
            assert np.abs(got - rgb).max() <= exp.tol, f"({x}, {y}) is {tuple(got)}, expected {rgb}"
        if exp.n_frames is not None:
            assert image.metadata["n_frames"] == exp.n_frames


def test_exif_orientation_is_recorded_as_applied(hostile_dir):
    for n in range(2, 9):
        meta = load_image(hostile_dir / f"orientation-{n}.jpg").metadata
        assert meta["exif_orientation"] == n and meta["orientation_applied"] is True


def test_broken_icc_profile_is_noted_not_fatal(hostile_dir):
    assert load_image(hostile_dir / "broken-icc.jpg").metadata["icc"].startswith("ignored")


def test_folder_listing_skips_loops_and_folders_named_like_images(hostile_dir):
    listed = {p.relative_to(hostile_dir).as_posix() for p in list_images(hostile_dir)}
    expected = {c.filename for c in CASES if c.in_folder_listing}
    assert listed == expected

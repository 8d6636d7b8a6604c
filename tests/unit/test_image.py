"""vfmstudio.core.image: every file is generated here with Pillow/numpy; nothing is downloaded."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core import image as image_mod
from vfmstudio.core.image import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    LoadedImage,
    image_id_for_bytes,
    image_id_for_file,
    list_images,
    load_image,
)

# --------------------------------------------------------------------------------------------
# helpers


def _rgb(h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(arr_or_img, path: Path, fmt: str | None = None, **kw) -> Path:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(path, fmt, **kw)
    return path


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: list[bytes]) -> bytes:
    """A PNG written by hand, for what Pillow cannot write (16-bit RGB) or a lying header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\x00" + r for r in rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _load_error(path: Path, *fragments: str, **kwargs) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(path, **kwargs)
    err = info.value
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, msg
    assert path.name in msg, msg
    assert msg == f"{err.path}: {err.reason}"
    assert err.path == path
    for fragment in fragments:
        assert fragment in err.reason, msg
    return err


def _close(a: np.ndarray, b: np.ndarray, tol: int) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b.astype(int)).max()) <= tol


# --------------------------------------------------------------------------------------------
# formats


def test_jpeg_rgb(tmp_path):
    arr = np.zeros((32, 48, 3), np.uint8)
    arr[:, :24] = (200, 30, 40)
    arr[:, 24:] = (10, 120, 230)
    path = _save(arr, tmp_path / "a.jpg", quality=95, subsampling=0)
    img = load_image(path)
    assert isinstance(img, LoadedImage)
    assert (img.width, img.height, img.format) == (48, 32, "JPEG")
    assert img.pixels.shape == (32, 48, 3) and img.pixels.dtype == np.uint8
    assert _close(img.pixels, arr, 4)
    assert img.path == path and img.name == "a.jpg"
    assert img.metadata["mode"] == "RGB" and img.metadata["bit_depth"] == 8
    assert img.metadata["n_frames"] == 1


def test_pixels_are_read_only(tmp_path):
    img = load_image(_save(_rgb(), tmp_path / "a.png"))
    assert not img.pixels.flags.writeable
    with pytest.raises(ValueError):
        img.pixels[0, 0, 0] = 1
    with pytest.raises(AttributeError):
        img.width = 3  # frozen


@pytest.mark.parametrize(
    ("suffix", "fmt", "kw"),
    [
        (".png", "PNG", {}),
        (".bmp", "BMP", {}),
        (".tif", "TIFF", {}),
        (".webp", "WEBP", {"lossless": True}),
        (".ppm", "PPM", {}),
    ],
)
def test_lossless_rgb_formats_are_exact(tmp_path, suffix, fmt, kw):
    arr = _rgb()
    img = load_image(_save(arr, tmp_path / f"x{suffix}", **kw))
    assert img.format == fmt
    np.testing.assert_array_equal(img.pixels, arr)


def test_greyscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = load_image(_save(grey, tmp_path / "g.png"))
    assert img.pixels.shape == (16, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(img.pixels[:, :, c], grey)


def test_bilevel_image(tmp_path):
    bits = Image.fromarray(np.eye(8, dtype=bool))
    assert bits.mode == "1"
    img = load_image(_save(bits, tmp_path / "b.png"))
    np.testing.assert_array_equal(img.pixels[:, :, 0], np.eye(8, dtype=np.uint8) * 255)


def _check_16bit_scaling(pixels: np.ndarray, values: np.ndarray) -> None:
    got = pixels[..., 0].ravel()
    for k in range(256):
        assert got[k] == k, (k, got[k])  # 257*k -> k exactly
    assert got[256] == 255  # 65535 -> 255
    np.testing.assert_array_equal(got, (values.ravel().astype(np.int64) + 128) // 257)


_SIXTEEN = np.concatenate([np.arange(256) * 257, [65535, 0, 128, 129, 500, 65534, 32896, 1000]]).astype(
    np.uint16
)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_scaled_not_clipped(tmp_path, suffix):
    values = np.resize(_SIXTEEN, 264).reshape(1, 264)
    path = _save(Image.fromarray(values), tmp_path / f"g16{suffix}")
    with Image.open(path) as raw:
        assert raw.mode.startswith("I;16")
    img = load_image(path)
    assert img.metadata["bit_depth"] == 16
    _check_16bit_scaling(img.pixels, values)
    assert len(np.unique(img.pixels)) > 200  # a clip to 255 would flatten the gradient


def test_16bit_grey_with_transparent_value(tmp_path):
    values = np.array([[0, 65535, 257 * 100]], np.uint16)
    img = load_image(_save(Image.fromarray(values), tmp_path / "t16.png", transparency=0))
    np.testing.assert_array_equal(img.pixels[0, :, 0], [255, 255, 100])  # value 0 is see-through


def test_16bit_rgb_png(tmp_path):
    values = np.resize(_SIXTEEN, 264)
    rgb = np.stack([values, values, values], axis=-1).astype(">u2")  # PNG stores big-endian
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png_bytes(264, 1, 16, 2, [rgb.tobytes()]))
    img = load_image(path)
    assert img.metadata["bit_depth"] == 16
    got = img.pixels[0, :, 0]
    assert all(got[k] == k for k in range(256))
    assert got[256] == 255
    # Pillow keeps the high byte of 16-bit colour: within 1 of round(v / 257).
    assert np.abs(got.astype(int) - (values.astype(int) + 128) // 257).max() <= 1


def test_float_tiff_in_unit_range_scaled_by_255(tmp_path):
    values = np.linspace(0.0, 1.0, 11, dtype=np.float32).reshape(1, 11)
    img = load_image(_save(Image.fromarray(values), tmp_path / "f.tif"))
    np.testing.assert_array_equal(
        img.pixels[0, :, 0], np.rint(values[0].astype(np.float64) * 255).astype(np.uint8)
    )
    assert "[0, 1]" in img.metadata["value_scaling"]


def test_float_tiff_outside_unit_range_min_max(tmp_path):
    values = np.array([[-5.0, 0.0, 5.0, 15.0, np.nan]], dtype=np.float32)
    img = load_image(_save(Image.fromarray(values), tmp_path / "f.tif"))
    np.testing.assert_array_equal(img.pixels[0, :, 0], [0, 64, 128, 255, 0])
    assert "min-max" in img.metadata["value_scaling"]


def test_multipage_tiff_gives_first_page(tmp_path):
    pages = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "multi.tiff"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    img = load_image(path)
    assert img.metadata["n_frames"] == 3
    assert (img.pixels == (255, 0, 0)).all()


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 7), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = load_image(path)
    assert img.format == "GIF" and img.metadata["n_frames"] == 2
    assert (img.pixels == (255, 0, 0)).all()


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency_composited_over_white(tmp_path, suffix):
    idx = np.zeros((6, 6), np.uint8)
    idx[2:4, 2:4] = 1
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([0, 0, 0, 0, 200, 0] + [0] * (254 * 3))
    path = _save(pal, tmp_path / f"p{suffix}", transparency=0)
    img = load_image(path)
    assert img.metadata["mode"] == "P"
    assert (img.pixels[0, 0] == 255).all()  # transparent black index -> white, not black
    assert tuple(img.pixels[2, 2]) == (0, 200, 0)
    assert img.metadata["alpha"] == "composited over white"


def test_palette_without_transparency(tmp_path):
    pal = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * (254 * 3))
    img = load_image(_save(pal, tmp_path / "p.png"))
    np.testing.assert_array_equal(img.pixels[0], [[10, 20, 30], [40, 50, 60]])


def test_la_alpha_over_white(tmp_path):
    la = np.zeros((1, 4, 2), np.uint8)
    la[0, :, 0] = [0, 0, 0, 100]
    la[0, :, 1] = [0, 255, 128, 255]
    img = load_image(_save(Image.fromarray(la, mode="LA"), tmp_path / "la.png"))
    np.testing.assert_array_equal(img.pixels[0, :, 0], [255, 0, 127, 100])
    assert (img.pixels[..., 0] == img.pixels[..., 2]).all()


def test_rgba_alpha_over_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 0], [255, 0, 0, 255], [0, 0, 255, 128]]], np.uint8)
    img = load_image(_save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "rgba.png"))
    np.testing.assert_array_equal(img.pixels[0], [[255, 255, 255], [255, 0, 0], [127, 127, 255]])


def test_opaque_rgba_kept(tmp_path):
    arr = _rgb()
    rgba = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    img = load_image(_save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "o.png"))
    np.testing.assert_array_equal(img.pixels, arr)
    assert img.metadata["alpha"] == "fully opaque"


def test_cmyk_jpeg_colours(tmp_path):
    patches = {
        (255, 0, 0, 0): (0, 255, 255),  # cyan
        (0, 255, 0, 0): (255, 0, 255),  # magenta
        (0, 0, 255, 0): (255, 255, 0),  # yellow
        (0, 0, 0, 255): (0, 0, 0),  # black
        (0, 0, 0, 0): (255, 255, 255),  # paper white
    }
    cmyk = np.zeros((16, 16 * len(patches), 4), np.uint8)
    for i, c in enumerate(patches):
        cmyk[:, 16 * i : 16 * (i + 1)] = c
    path = _save(Image.fromarray(cmyk, mode="CMYK"), tmp_path / "cmyk.jpg", quality=95)
    # Pillow writes CMYK JPEGs the Adobe way (inverted, APP14 marker): the case Photoshop produces.
    with Image.open(path) as raw:
        assert raw.info.get("adobe") is not None
    img = load_image(path)
    assert img.metadata["mode"] == "CMYK"
    for i, rgb in enumerate(patches.values()):
        centre = img.pixels[8, 16 * i + 8]
        assert _close(centre, np.array(rgb), 12), (i, centre, rgb)


def test_broken_icc_profile_is_ignored(tmp_path):
    arr = _rgb()
    path = _save(arr, tmp_path / "icc.png", icc_profile=b"definitely not an ICC profile")
    img = load_image(path)
    np.testing.assert_array_equal(img.pixels, arr)
    assert img.metadata["icc"].startswith("ignored")


def test_broken_icc_on_cmyk_falls_back(tmp_path):
    cmyk = np.zeros((8, 8, 4), np.uint8)
    cmyk[..., 0] = 255
    path = _save(Image.fromarray(cmyk, mode="CMYK"), tmp_path / "c.jpg", icc_profile=b"\x00" * 200)
    img = load_image(path)
    assert _close(img.pixels[4, 4], np.array([0, 255, 255]), 12)
    assert img.metadata["icc"].startswith("ignored")


def test_srgb_icc_profile_noted_not_applied(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    arr = _rgb()
    img = load_image(_save(arr, tmp_path / "srgb.png", icc_profile=icc))
    np.testing.assert_array_equal(img.pixels, arr)
    assert "not applied" in img.metadata["icc"]


# --------------------------------------------------------------------------------------------
# EXIF orientation


def _quadrants(h: int = 32, w: int = 48) -> np.ndarray:
    """Four flat colours on 8x8-aligned blocks: every one of the 8 orientations looks different."""
    arr = np.empty((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = (220, 40, 40)
    arr[: h // 2, w // 2 :] = (40, 200, 40)
    arr[h // 2 :, : w // 2] = (40, 40, 220)
    arr[h // 2 :, w // 2 :] = (240, 240, 240)
    return arr


# What a viewer shows for stored pixels S, per the EXIF 2.3 definition of each value.
_UPRIGHT = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],  # mirrored horizontally
    3: lambda s: s[::-1, ::-1],  # rotated 180
    4: lambda s: s[::-1],  # mirrored vertically
    5: lambda s: s.transpose(1, 0, 2),  # transpose
    6: lambda s: np.rot90(s, k=-1),  # needs 90 degrees clockwise
    7: lambda s: s[::-1, ::-1].transpose(1, 0, 2),  # transverse
    8: lambda s: np.rot90(s, k=1),  # needs 90 degrees counter-clockwise
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_jpeg(tmp_path, orientation):
    stored = _quadrants()
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(stored, tmp_path / f"o{orientation}.jpg", quality=95, subsampling=0, exif=exif)
    img = load_image(path)

    with Image.open(path) as raw:  # Pillow's decode, orientation not applied
        decoded = np.asarray(raw.convert("RGB"))
    np.testing.assert_array_equal(img.pixels, _UPRIGHT[orientation](decoded))  # applied exactly once
    assert _close(img.pixels, _UPRIGHT[orientation](stored), 8)
    swapped = orientation >= 5
    assert (img.width, img.height) == ((32, 48) if swapped else (48, 32))
    assert img.metadata["exif_orientation"] == orientation
    assert img.metadata["orientation_applied"] is (orientation != 1)


def test_exif_orientation_png_exact(tmp_path):
    stored = _rgb(5, 7)
    exif = Image.Exif()
    exif[0x0112] = 6
    img = load_image(_save(stored, tmp_path / "o6.png", exif=exif))
    np.testing.assert_array_equal(img.pixels, np.rot90(stored, k=-1))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_does_not_cost_the_image(tmp_path):
    arr = np.full((8, 8, 3), 90, np.uint8)
    garbage = _save(arr, tmp_path / "garbage.jpg", exif=b"Exif\x00\x00MM\x00*garbage-garbage")
    assert load_image(garbage).metadata["orientation_applied"] is False
    # A well-formed IFD whose orientation is 9, which EXIF does not define.
    ifd = b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00"
    bad = load_image(_save(arr, tmp_path / "nine.jpg", exif=b"Exif\x00\x00" + ifd))
    assert bad.metadata["exif_orientation"] == 9 and "ignored" in bad.metadata["exif_note"]
    assert (bad.width, bad.height) == (8, 8)


# --------------------------------------------------------------------------------------------
# sizes and limits


def test_one_pixel(tmp_path):
    img = load_image(_save(np.array([[[1, 2, 3]]], np.uint8), tmp_path / "1x1.png"))
    assert (img.width, img.height) == (1, 1)
    assert tuple(img.pixels[0, 0]) == (1, 2, 3)


def test_very_wide_image_under_limit(tmp_path):
    arr = np.zeros((10, 100_000, 3), np.uint8)
    arr[:, ::2] = 255
    img = load_image(_save(arr, tmp_path / "wide.png"))
    assert (img.width, img.height) == (100_000, 10)
    np.testing.assert_array_equal(img.pixels, arr)


def test_default_limit():
    assert DEFAULT_MAX_PIXELS == image_mod._max_pixels_from_env()
    assert image_mod._max_pixels_from_env({}) == 200_000_000
    assert image_mod._max_pixels_from_env({"VFMSTUDIO_MAX_PIXELS": "1_000"}) == 1000
    assert image_mod._max_pixels_from_env({"VFMSTUDIO_MAX_PIXELS": "lots"}) == 200_000_000
    assert image_mod._max_pixels_from_env({"VFMSTUDIO_MAX_PIXELS": "-3"}) == 200_000_000


def test_header_claiming_huge_size_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(100_000, 100_000, 8, 0, [b"\x00"]))
    assert path.stat().st_size < 200
    before = Image.MAX_IMAGE_PIXELS
    err = _load_error(
        path, "100000x100000", f"exceeds the limit of {DEFAULT_MAX_PIXELS} pixels", "VFMSTUDIO_MAX_PIXELS"
    )
    assert not isinstance(err.__cause__, Image.DecompressionBombError)
    assert Image.MAX_IMAGE_PIXELS == before


def test_max_pixels_parameter(tmp_path):
    path = _save(_rgb(100, 100), tmp_path / "sq.png")
    _load_error(path, "100x100", "exceeds the limit of 9999 pixels", max_pixels=9999)
    assert load_image(path, max_pixels=10_000).width == 100
    assert load_image(path, max_pixels=None).width == 100
    with pytest.raises(ValueError):
        load_image(path, max_pixels=0)


def test_pillow_bomb_check_replaced_by_ours(tmp_path, monkeypatch):
    """An image over Pillow's global limit but under ours loads, without warning or error."""
    path = _save(_rgb(50, 50), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 2500 px > 2 * 100: Pillow would raise
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = load_image(path)
    assert img.width == 50
    assert Image.MAX_IMAGE_PIXELS == 100  # restored


def test_concurrent_loads_restore_pillow_limit(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    paths = [_save(_rgb(seed=i), tmp_path / f"t{i}.png") for i in range(8)]
    before = Image.MAX_IMAGE_PIXELS
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda p: load_image(p).id, paths * 4))
    assert len(set(ids)) == 8
    assert Image.MAX_IMAGE_PIXELS == before


# --------------------------------------------------------------------------------------------
# broken and non-image files


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, "JPEG")
    data = buf.getvalue()
    half = tmp_path / "half.jpg"
    half.write_bytes(data[: len(data) // 2])
    _load_error(half, "truncated or corrupt JPEG data")
    stub = tmp_path / "stub.jpg"
    stub.write_bytes(data[:3])  # magic only: Pillow cannot even identify it
    _load_error(stub, "truncated or corrupt JPEG data")


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, "PNG")
    data = buf.getvalue()
    for n in (len(data) // 2, 20):
        path = tmp_path / f"cut{n}.png"
        path.write_bytes(data[:n])
        _load_error(path, "truncated or corrupt PNG data")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    _load_error(path, "file is empty")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("page.jpg", b"<!DOCTYPE html>\n<html><body>Not Found</body></html>\n"),
        ("notes.png", "just some notes, caf\u00e9\n".encode()),
    ],
)
def test_text_named_like_an_image(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    _load_error(path, "not an image (looks like HTML/text)")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(bytes(range(256)) * 4)
    _load_error(path, "not an image")


def test_directory_named_like_an_image(tmp_path):
    path = tmp_path / "x.jpg"
    path.mkdir()
    _load_error(path, "is a directory")


def test_missing_file(tmp_path):
    _load_error(tmp_path / "nope.png", "file not found")


def test_permission_denied(tmp_path, monkeypatch):
    path = _save(_rgb(), tmp_path / "secret.png")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: simulate the refusal instead
            real_open = Path.open

            def refuse(self, *args, **kwargs):
                if self == path:
                    raise PermissionError(13, "Permission denied", str(self))
                return real_open(self, *args, **kwargs)

            monkeypatch.setattr(Path, "open", refuse)
        _load_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_error_pickles_and_formats():
    err = ImageLoadError(Path("a/b.jpg"), "file is\nempty")
    assert str(err) == f"{Path('a/b.jpg')}: file is empty"
    again = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes, round trip
    assert (again.path, again.reason, str(again)) == (err.path, err.reason, str(err))
    assert isinstance(err, ValueError)


# --------------------------------------------------------------------------------------------
# ids


def test_stable_content_id(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, "PNG")
    data = buf.getvalue()
    a, b = tmp_path / "a.png", tmp_path / "copy_of_a.png"
    a.write_bytes(data)
    b.write_bytes(data)
    c = _save(_rgb(seed=1), tmp_path / "c.png")
    ida = load_image(a).id
    assert ida == load_image(b).id == load_image(a).id
    assert ida == image_id_for_bytes(data) == image_id_for_file(a)
    assert len(ida) == 16 and all(ch in "0123456789abcdef" for ch in ida)
    assert load_image(c).id != ida
    assert image_id_for_file(c) == load_image(c).id


def test_image_id_for_file_errors(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        image_id_for_file(tmp_path / "missing.png")


def test_loaded_image_validates_shape():
    with pytest.raises(ValueError, match="shape"):
        LoadedImage(None, np.zeros((4, 4), np.uint8), "0" * 16, 4, 4, "PNG")
    img = LoadedImage(None, np.zeros((4, 5, 3), np.uint8), "ab" * 8, 5, 4, "PNG")
    assert img.name == "ab" * 8 and not img.pixels.flags.writeable


# --------------------------------------------------------------------------------------------
# plugin reader fallback


def test_reader_used_for_unknown_format(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"XYZ1" + bytes(60))
    calls = []

    def reader(p: Path):
        calls.append(p)
        return np.full((3, 4), 1000, np.uint16)

    img = load_image(path, reader=reader)
    assert calls == [path]
    assert (img.width, img.height, img.format) == (4, 3, "XYZ")
    assert (img.pixels == (1000 + 128) // 257).all()
    assert img.id == image_id_for_file(path, reader=reader)  # a format only the plugin reads
    assert "reader" in img.metadata


def test_reader_not_used_when_pillow_reads(tmp_path):
    path = _save(_rgb(), tmp_path / "a.png")

    def reader(p):
        raise AssertionError("reader must not be called")

    load_image(path, reader=reader)


def test_reader_declines_or_fails(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"\x01\x02\x03\xff" * 16)
    _load_error(path, "not an image", reader=lambda p: None)

    def broken(p):
        raise RuntimeError("codec exploded")

    _load_error(path, "plugin reader failed", "codec exploded", reader=broken)
    _load_error(path, "shape", reader=lambda p: np.zeros((2, 2, 7), np.uint8))
    _load_error(
        path, "exceeds the limit of 10 pixels", reader=lambda p: np.zeros((4, 4), np.uint8), max_pixels=10
    )


# --------------------------------------------------------------------------------------------
# list_images


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_list_images_natural_sort_and_filters(tmp_path):
    for name in ["img10.jpg", "img2.jpg", "IMG1.PNG", "img2.txt", ".hidden.jpg", "b/img3.jpg", "a/img1.tif"]:
        _touch(tmp_path / name)
    _touch(tmp_path / ".cache" / "thumb.jpg")  # hidden folder
    (tmp_path / "folder.jpg").mkdir()  # a folder named like an image
    got = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert got == ["a/img1.tif", "b/img3.jpg", "IMG1.PNG", "img2.jpg", "img10.jpg"]
    flat = [p.name for p in list_images(tmp_path, recursive=False)]
    assert flat == ["IMG1.PNG", "img2.jpg", "img10.jpg"]


def test_list_images_files_and_folders(tmp_path):
    a = _touch(tmp_path / "d" / "a.jpg")
    odd = _touch(tmp_path / "explicit.raw")
    got = list_images([odd, tmp_path / "d", a])  # explicit file kept; duplicate dropped
    assert got == [odd, a]
    assert list_images(str(tmp_path / "d")) == [a]
    with pytest.raises(FileNotFoundError):
        list_images([tmp_path / "missing"])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_list_images_symlink_loop(tmp_path):
    root = tmp_path / "root"
    _touch(root / "sub" / "p.png")
    try:
        (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    except OSError:
        pytest.skip("cannot create symlinks here")
    got = list_images(root)  # returns at all: a followed symlink loop would never end
    assert [p.name for p in got] == ["p.png"]


def test_image_extensions():
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"} <= IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


# --------------------------------------------------------------------------------------------
# import hygiene


def test_import_is_light():
    code = (
        "import sys, vfmstudio.core.image\n"
        "heavy = [m for m in ('torch', 'PySide6', 'cv2', 'transformers') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    assert out.stdout.strip() == "", f"importing vfmstudio.core.image pulled in: {out.stdout}"

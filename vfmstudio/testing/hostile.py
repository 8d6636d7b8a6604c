"""A generated corpus of odd and hostile image files, each with the outcome the studio must give.

Nothing is downloaded: every file is written here from numpy arrays, Pillow and a few hand-made
byte strings. :func:`build_corpus` writes all cases into a folder and returns them; each
:class:`Case` says either how the file must load (size, and the colour at a few points, which
checks orientation and colour handling at once) or which fragment the one-line
:class:`~vfmstudio.core.image.ImageLoadError` must contain.

Most "good" cases show the same picture, :func:`pattern`: four flat quadrants (red top-left,
green top-right, blue bottom-left, white bottom-right), so a wrong rotation or flip or a channel
mix-up moves a colour to the wrong corner. Lossy cases (JPEG) are checked with a tolerance.

Used by ``tests/reliability`` through the loader, ``vfmstudio run``, ``vfmstudio batch`` and the
window. Pillow and numpy only (no torch).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["CASES", "EPS", "EPS_DOS", "PDF", "Case", "Fails", "Loads", "build_corpus", "pattern", "QUADRANTS"]

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
#: Colour of each quadrant of :func:`pattern`, by (column, row) of the quadrant.
QUADRANTS = {(0, 0): RED, (1, 0): GREEN, (0, 1): BLUE, (1, 1): WHITE}
W, H = 32, 24  # landscape, so a 90-degree mistake also shows in the size


def pattern(w: int = W, h: int = H) -> np.ndarray:
    """(h, w, 3) uint8: red, green / blue, white quadrants."""
    out = np.empty((h, w, 3), np.uint8)
    out[: h // 2, : w // 2] = RED
    out[: h // 2, w // 2 :] = GREEN
    out[h // 2 :, : w // 2] = BLUE
    out[h // 2 :, w // 2 :] = WHITE
    return out


def _quadrant_points(w: int = W, h: int = H) -> dict[tuple[int, int], tuple[int, int, int]]:
    """The centre of each quadrant and its colour."""
    return {((2 * c + 1) * w // 4, (2 * r + 1) * h // 4): rgb for (c, r), rgb in QUADRANTS.items()}


@dataclass(frozen=True)
class Loads:
    """The file must load as a ``width`` x ``height`` image with ``colours`` at (x, y) within ``tol``."""

    width: int
    height: int
    colours: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)
    tol: int = 0
    n_frames: int | None = None


@dataclass(frozen=True)
class Fails:
    """The file must be refused with an ImageLoadError whose message contains ``fragment``."""

    fragment: str


@dataclass(frozen=True)
class Case:
    name: str
    filename: str  # relative to the corpus folder; may contain folders, spaces and non-ASCII
    make: Callable[[Path], None]
    expect: Loads | Fails
    in_folder_listing: bool = True  # False where list_images skips it (a folder, a symlink loop)

    def path(self, root: Path) -> Path:
        return root / self.filename


# --------------------------------------------------------------------------------------------- writers


def _save(img: Image.Image, **kwargs) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        img.save(path, **kwargs)

    return make


def _bytes(data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(data)

    return make


def _encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_raw(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB, nor lie about its size)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _rgb16_png(path: Path) -> None:
    # 16-bit colour: 257*k decodes to k whether a reader keeps the high byte or divides by 257.
    px = pattern().astype(">u2") * 257
    rows = b"".join(b"\x00" + px[y].tobytes() for y in range(H))
    path.write_bytes(_png_raw(W, H, 16, 2, rows))


def _grey16_png(path: Path) -> None:
    grey = np.tile(np.array([0, 257 * 128, 65535], np.uint16), (H, W // 3 + 1))[:, :W]
    Image.fromarray(grey).save(path)  # mode I;16


def _grey16_tiff(path: Path) -> None:
    grey = np.full((H, W), 257 * 64, np.uint16)
    grey[:, W // 2 :] = 65535
    Image.fromarray(grey).save(path, format="TIFF")


def _float_tiff(path: Path) -> None:
    values = np.zeros((H, W), np.float32)
    values[:, W // 2 :] = 1.0  # [0, 1] floats scale by 255
    Image.fromarray(values, mode="F").save(path, format="TIFF")


def _palette_png(path: Path) -> None:
    idx = np.zeros((H, W), np.uint8)
    idx[:, W // 2 :] = 1  # right half uses entry 1, which is fully transparent
    im = Image.fromarray(idx, mode="P")
    im.putpalette([255, 0, 0, 0, 0, 0] + [0] * (256 * 3 - 6))
    im.save(path, transparency=1)


def _la_png(path: Path) -> None:
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 0] = 0  # black grey level...
    la[..., 1] = 255
    la[:, W // 2 :, 1] = 0  # ...transparent on the right: white there
    Image.fromarray(la, mode="LA").save(path)


def _rgba_half_png(path: Path) -> None:
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 128  # red at half alpha over white -> (255, 127, 127)
    Image.fromarray(rgba, mode="RGBA").save(path)


def _cmyk_jpeg(path: Path) -> None:
    cmyk = np.zeros((H, W, 4), np.uint8)
    cmyk[: H // 2, : W // 2] = (0, 255, 255, 0)  # red
    cmyk[: H // 2, W // 2 :] = (255, 0, 255, 0)  # green
    cmyk[H // 2 :, : W // 2] = (255, 255, 0, 0)  # blue
    cmyk[H // 2 :, W // 2 :] = (0, 0, 0, 0)  # white
    Image.fromarray(cmyk, mode="CMYK").save(path, format="JPEG", quality=95)


# EXIF orientation n: the file stores the picture transformed by the inverse of what a viewer
# applies (Pillow's exif_transpose methods), so a correct loader shows pattern() upright.
_STORE_FOR_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # viewer rotates 270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # viewer rotates 90
}


def _oriented_jpeg(orientation: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        im = Image.fromarray(pattern())
        method = _STORE_FOR_ORIENTATION[orientation]
        if method is not None:
            im = im.transpose(method)
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(path, format="JPEG", quality=95, exif=exif)

    return make


def _animated_gif(path: Path) -> None:
    frames = [Image.fromarray(pattern()).convert("P")] + [
        Image.fromarray(np.full((H, W, 3), c, np.uint8)).convert("P") for c in (GREEN, BLUE)
    ]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _multipage_tiff(path: Path) -> None:
    first = Image.fromarray(pattern())
    second = Image.fromarray(np.zeros((10, 10, 3), np.uint8))
    first.save(path, format="TIFF", save_all=True, append_images=[second])


def _broken_icc_jpeg(path: Path) -> None:
    Image.fromarray(pattern()).save(path, format="JPEG", quality=95, icc_profile=b"not an ICC profile" * 8)


def _symlink_loop(path: Path) -> None:
    os.symlink(path.name, path)  # points at itself: stat() fails with ELOOP


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # open() would block until a writer appears: the loader must not open it


def _text_chunk_bomb(path: Path) -> None:
    # A valid 32x24 PNG plus a zTXt chunk that inflates to 64 MiB: Pillow's text-chunk limit refuses it.
    png = _encoded(Image.fromarray(pattern()), "PNG")
    bomb = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * (64 << 20), 9))
    iend = png.rindex(b"IEND") - 4
    path.write_bytes(png[:iend] + bomb + png[iend:])


def _truncated(fmt: str, keep: float) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        data = _encoded(
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), fmt
        )
        path.write_bytes(data[: int(len(data) * keep)])

    return make


def _wide(path: Path) -> None:
    px = np.zeros((10, 100_000, 3), np.uint8)
    px[:, 50_000:] = WHITE
    Image.fromarray(px).save(path, compress_level=1)


#: A three-line EPS: Pillow identifies it by content whatever its name and, with every plugin
#: enabled, hands it to Ghostscript (``/usr/bin/gs``), which runs the PostScript program.
EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
    b"(/tmp/vfmstudio-hostile-eps-ran) (w) file closefile showpage\n"
)
#: The same as a DOS-binary EPS (a 30-byte header pointing at the PostScript section).
EPS_DOS = b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 30, len(EPS), 0, 0, 0, 0) + b"\xff\xff" + EPS
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _sparse(size: int) -> Callable[[Path], None]:
    """A file of ``size`` bytes, all holes (no disk used): the header of zeros must refuse it."""

    def make(path: Path) -> None:
        with path.open("wb") as fp:
            fp.truncate(size)

    return make


_PATTERN = Image.fromarray(pattern())
_Q = _quadrant_points()

#: Every case, in a fixed order. Names are unique and usable as pytest ids.
CASES: tuple[Case, ...] = (
    # --- refused with a clear reason
    Case("zero-bytes", "empty.jpg", _bytes(b""), Fails("file is empty")),
    Case(
        "text-named-jpg", "notes.jpg", _bytes(b"just some text, not a picture\n" * 4), Fails("not an image")
    ),
    Case(
        "html-named-jpg",
        "page.jpg",
        _bytes(b"<!DOCTYPE html><html><body>404</body></html>\n"),
        Fails("looks like HTML/text"),
    ),
    Case(
        "svg-named-png",
        "vector.png",
        _bytes(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
        Fails("SVG"),
    ),
    Case("truncated-jpeg", "truncated.jpg", _truncated("JPEG", 0.5), Fails("truncated or corrupt")),
    Case("truncated-png", "truncated.png", _truncated("PNG", 0.5), Fails("truncated or corrupt")),
    Case(
        "png-magic-only",
        "magic.png",
        _bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20),
        Fails("truncated or corrupt"),
    ),
    Case(
        "random-bytes",
        "noise.jpg",
        _bytes(np.random.default_rng(1).integers(0, 255, 4096, np.uint8).tobytes()),
        Fails("not an image"),
    ),
    Case(
        "decompression-bomb-header",
        "bomb.png",
        _bytes(_png_raw(100_000, 100_000, 8, 2, None)),
        Fails("exceeds the limit"),
    ),
    Case("symlink-loop", "loop.jpg", _symlink_loop, Fails("cannot read file"), in_folder_listing=False),
    Case("directory-named-jpg", "folder.jpg", _directory, Fails("is a directory"), in_folder_listing=False),
    *(
        [Case("fifo-named-jpg", "pipe.jpg", _fifo, Fails("not a regular file"), in_folder_listing=False)]
        if hasattr(os, "mkfifo")
        else []
    ),  # POSIX only
    Case("text-chunk-bomb-png", "ztxt-bomb.png", _text_chunk_bomb, Fails("truncated or corrupt PNG")),
    Case("eps-named-png", "vector-eps.png", _bytes(EPS), Fails("PostScript/EPS")),
    Case("eps-named-jpg", "photo-eps.jpg", _bytes(EPS), Fails("PostScript/EPS")),
    Case("dos-eps-named-tif", "scan-eps.tif", _bytes(EPS_DOS), Fails("PostScript/EPS")),
    Case("pdf-named-png", "document.png", _bytes(PDF), Fails("PDF document")),
    Case("sparse-8gib-png", "sparse.png", _sparse(8 << 30), Fails("not an image")),
    # 144 MP is under the pixel limit, but RGBA needs ~3.3 GB to decode: refused from the header.
    Case(
        "rgba-memory-bomb-header",
        "rgba-bomb.png",
        _bytes(_png_raw(12_000, 12_000, 8, 6, None)),
        Fails("over the budget of"),
    ),
    # --- loads, with size and colours checked
    Case("png-rgb", "plain.png", _save(_PATTERN), Loads(W, H, _Q)),
    Case("cmyk-jpeg", "cmyk.jpg", _cmyk_jpeg, Loads(W, H, _Q, tol=40)),
    Case(
        "grey16-png",
        "grey16.png",
        _grey16_png,
        Loads(W, H, {(0, 0): (0, 0, 0), (1, 0): (128, 128, 128), (2, 0): (255, 255, 255)}),
    ),
    Case("rgb16-png", "rgb16.png", _rgb16_png, Loads(W, H, _Q)),
    Case("grey16-tiff", "grey16.tif", _grey16_tiff, Loads(W, H, {(1, 1): (64, 64, 64), (W - 2, 1): WHITE})),
    Case("float-tiff", "float.tif", _float_tiff, Loads(W, H, {(1, 1): (0, 0, 0), (W - 2, 1): WHITE})),
    Case(
        "palette-transparency-png", "palette.png", _palette_png, Loads(W, H, {(1, 1): RED, (W - 2, 1): WHITE})
    ),
    Case("la-png", "la.png", _la_png, Loads(W, H, {(1, 1): (0, 0, 0), (W - 2, 1): WHITE})),
    Case("rgba-half-alpha-png", "rgba.png", _rgba_half_png, Loads(W, H, {(1, 1): (255, 127, 127)}, tol=1)),
    *(
        Case(f"exif-orientation-{n}", f"orientation-{n}.jpg", _oriented_jpeg(n), Loads(W, H, _Q, tol=40))
        for n in range(1, 9)
    ),
    Case("one-pixel", "one.png", _save(Image.new("RGB", (1, 1), GREEN)), Loads(1, 1, {(0, 0): GREEN})),
    Case(
        "one-bit",
        "bits.png",
        _save(Image.fromarray(pattern()[..., 0] > 0).convert("1")),
        Loads(W, H, {(1, 1): WHITE, (1, H - 2): (0, 0, 0)}),
    ),
    Case("100000x10", "wide.png", _wide, Loads(100_000, 10, {(10, 5): (0, 0, 0), (99_990, 5): WHITE})),
    Case("animated-gif", "animated.gif", _animated_gif, Loads(W, H, _Q, tol=8, n_frames=3)),
    Case("multipage-tiff", "pages.tif", _multipage_tiff, Loads(W, H, _Q, n_frames=2)),
    Case("webp-lossless", "lossless.webp", _save(_PATTERN, lossless=True), Loads(W, H, _Q)),
    Case("bmp", "plain.bmp", _save(_PATTERN), Loads(W, H, _Q)),
    Case("broken-icc-profile", "broken-icc.jpg", _broken_icc_jpeg, Loads(W, H, _Q, tol=40)),
    Case("unicode-and-spaces-path", "ünï cödé/фото 猫 1.png", _save(_PATTERN), Loads(W, H, _Q)),
)


def build_corpus(root: str | os.PathLike[str], cases: tuple[Case, ...] = CASES) -> list[tuple[Case, Path]]:
    """Write ``cases`` under ``root`` (created if needed); returns each case with its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for case in cases:
        path = case.path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        case.make(path)
        out.append((case, path))
    return out

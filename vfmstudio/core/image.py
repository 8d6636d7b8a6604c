"""Image loading: one EXIF-corrected RGB uint8 frame per file, or one clear error.

Everything downstream (canvas, inference, export) uses the frame returned by :func:`load_image`,
so the choices made here are the project's choices:

- EXIF orientation is applied exactly once, here (``ImageOps.exif_transpose``).
- Transparency is composited over **white**, as labelme-like tools show it.
- Greyscale 16-bit is scaled with ``round(v / 257)`` (65535 -> 255, 257*k -> k), never clipped.
  Pillow itself decodes 16-bit *colour* PNG/TIFF to 8 bits by keeping the high byte
  (``floor(v / 256)``), which differs from ``round(v / 257)`` by at most 1; we take that as is.
- Float images: values already in [0, 1] are scaled by 255; anything else is stretched min-max
  to [0, 255] (non-finite values count as the minimum). Wider integer images (Pillow mode "I",
  plugin arrays) are read by value range: [0, 255] as is, [0, 65535] as 16-bit, else min-max.
- CMYK is converted to RGB through its embedded ICC profile when it has a usable one, else with
  Pillow's plain formula (Adobe-inverted CMYK JPEGs are un-inverted by Pillow on decode).
  RGB ICC profiles are recorded but not applied: model preprocessing (Pillow, OpenCV, Hugging
  Face processors) ignores them, and we want the pixels a model sees to match its training data.
- A pixel limit is checked from the header before decoding. Pillow's own decompression-bomb
  check is replaced by ours for that one header read (see :func:`_open_header`); Pillow's
  ``LOAD_TRUNCATED_IMAGES`` is never touched, so truncated files are errors.

Pillow and numpy only: this module is imported by the Qt-free, torch-free core.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vfmstudio import settings

__all__ = [
    "DEFAULT_MAX_DECODE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "OPTIONAL_FORMATS",
    "SAFE_FORMATS",
    "ImageLoadError",
    "LoadedImage",
    "allowed_formats",
    "decode_bytes_estimate",
    "image_id_for_bytes",
    "image_id_for_file",
    "list_images",
    "load_image",
    "open_image",
    "reduction_note",
]

log = logging.getLogger(__name__)

_BUILTIN_MAX_PIXELS = 200_000_000  # the declared default (vfmstudio/settings.py)
_MAX_PIXELS_ENV = "VFMSTUDIO_MAX_PIXELS"


def _max_pixels_from_env(environ: dict[str, str] | os._Environ[str] | None = None) -> int:
    """The pixel limit from ``VFMSTUDIO_MAX_PIXELS``; a bad value falls back to the default."""
    return int(settings.get(_MAX_PIXELS_ENV, environ, strict=False))


#: Largest width*height that :func:`load_image` decodes by default (read once, at import).
DEFAULT_MAX_PIXELS: int = _max_pixels_from_env()

_BUILTIN_MAX_DECODE_MB = 2048
_MAX_DECODE_ENV = "VFMSTUDIO_MAX_IMAGE_MB"


def _max_decode_bytes_from_env(environ: dict[str, str] | os._Environ[str] | None = None) -> int:
    """The decode memory budget from ``VFMSTUDIO_MAX_IMAGE_MB`` (MiB); a bad value falls back."""
    return int(settings.get(_MAX_DECODE_ENV, environ, strict=False)) << 20


#: Most bytes :func:`load_image` may need to decode one image, estimated from its header before
#: decoding (see :func:`decode_bytes_estimate`): 2 GiB by default, a 200 MP RGB photo or a 90 MP
#: RGBA one. The pixel limit alone let a 24 KB PNG claim 200 MP of RGBA (4.6 GB to decode).
DEFAULT_MAX_DECODE_BYTES: int = _max_decode_bytes_from_env()

# Peak bytes per pixel of load_image by Pillow mode: Pillow's buffer + numpy copy + conversion
# temporaries + the (H, W, 3) result. Measured peaks per pixel: RGB 10.2, RGBA 23.2, L 6.2,
# I;16 12.3, F 24.7, CMYK 13.6. Unlisted modes (P with transparency, LA, YCbCr...) take the
# RGBA-like worst case.
_DECODE_BYTES_PER_PIXEL = {
    "RGB": 10,
    "RGBA": 23,
    "L": 6,
    "1": 7,
    "I;16": 13,
    "I;16B": 13,
    "I;16L": 13,
    "I;16N": 13,
    "I": 25,
    "F": 25,
    "CMYK": 14,
}
_DECODE_BYTES_DEFAULT = 24

#: Suffixes :func:`list_images` collects from folders (formats Pillow reads without plugins).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif",
        ".png",
        ".tif", ".tiff",
        ".bmp", ".dib",
        ".webp",
        ".gif",
        ".pbm", ".pgm", ".ppm", ".pnm",
    }
)  # fmt: skip

_HASH_CHUNK = 1 << 20

#: The only Pillow formats any vfmstudio code decodes (ADR 0100). Pillow identifies a file by its
#: content, not its name, and some of its plugins hand the file to an external program (EPS and PS
#: to Ghostscript), so "every plugin Pillow has" would let a PostScript file named .png run code.
#: These decoders are library code only. PPM covers the .pbm/.pgm/.ppm/.pnm of IMAGE_EXTENSIONS.
SAFE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "PPM")
#: Decoded only where a Pillow plugin has registered them (Pillow's AVIF module when built with
#: libavif, pillow-heif's opener); neither runs an external program.
OPTIONAL_FORMATS: tuple[str, ...] = ("AVIF", "HEIF")


class ImageLoadError(ValueError):
    """A file that could not be turned into an image; ``str(e)`` is ``"{path}: {reason}"``."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = Path(path) if path is not None else None
        # One line, always: the message goes into status bars, logs and CLI output.
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path if self.path is not None else '<image>'}: {self.reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Default exception pickling would call __init__ with the message only (batch workers pickle).
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """One decoded image: read-only (H, W, 3) uint8 RGB pixels, upright, plus where it came from.

    ``id`` is the content hash of the file bytes (see :func:`image_id_for_bytes`), so caches
    keyed by it survive renames and never mix up two files with the same name.
    """

    path: Path | None
    pixels: np.ndarray
    id: str
    width: int
    height: int
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        px = self.pixels
        if not isinstance(px, np.ndarray) or px.dtype != np.uint8 or px.ndim != 3 or px.shape[2] != 3:
            shape = getattr(px, "shape", None)
            dtype = getattr(px, "dtype", type(px).__name__)
            raise ValueError(f"LoadedImage.pixels must be (H, W, 3) uint8, got shape {shape} dtype {dtype}")
        if px.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"LoadedImage.pixels has shape {px.shape} but width={self.width}, height={self.height}"
            )
        if not px.flags.c_contiguous:
            px = np.ascontiguousarray(px)
            object.__setattr__(self, "pixels", px)
        # Shared between the canvas, tools and caches on several threads: nobody may edit it.
        px.flags.writeable = False

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else self.id

    @property
    def full_size(self) -> tuple[int, int]:
        """(width, height) of the upright image at full resolution; larger than (width, height)
        only when :func:`load_image` decoded it at a reduced size (``min_side``)."""
        reduced = self.metadata.get("reduced")
        return tuple(reduced["full_size"]) if reduced else (self.width, self.height)

    def __repr__(self) -> str:
        return f"LoadedImage({self.name!r}, {self.width}x{self.height}, {self.format}, id={self.id})"


def reduction_note(image: LoadedImage) -> str:
    """One line for a prediction made from an image decoded at a reduced size; "" otherwise."""
    reduced = image.metadata.get("reduced")
    if not reduced:
        return ""
    (fw, fh), f = reduced["full_size"], reduced["factor"]
    return (
        f"{image.name}: decoded at 1/{f} size ({image.width}x{image.height} of {fw}x{fh}, "
        f"{reduced['by']}): the tool needs a short side of {reduced['min_side']} px"
    )


# ---------------------------------------------------------------------------------------------
# Content ids


def image_id_for_bytes(data: bytes | bytearray | memoryview) -> str:
    """The first 16 hex characters of the SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()[:16]


def _id_for_stream(fp: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: fp.read(_HASH_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()[:16]


def image_id_for_file(path: str | os.PathLike[str], *, reader: Reader | None = None) -> str:
    """Same id as :func:`load_image` gives the file, computed by streaming (no pixel decode).

    The header is judged first, as :func:`load_image` does: hashing reads every byte, so a file
    that is not an image (an 8 GiB sparse file named ``.png``) is refused from its first bytes.
    A header Pillow does not identify is accepted only when ``reader`` (a plugin's decoder)
    returns pixels for the file; exotic formats pay a decode for their id.
    """
    p = Path(path)
    _size, fp = _open_non_empty(p)
    with fp:
        im = _require_image_header(p, fp, reader)
        try:
            return _hash_file(p, fp)
        finally:
            if im is not None:
                im.close()  # after hashing: closing the image closes the file it read


def _require_image_header(p: Path, fp: BinaryIO, reader: Reader | None) -> Image.Image | None:
    """Raise :class:`ImageLoadError` unless ``fp`` starts like an image; no pixels are decoded.
    Returns the opened header (None when ``reader`` vouched for the file)."""
    try:
        head = fp.read(512)
        fp.seek(0)
    except OSError as exc:
        raise ImageLoadError(p, _os_error_reason(exc)) from exc
    try:
        return open_image(fp, max_pixels=None)  # the size limit is judged when it is decoded
    except UnidentifiedImageError:
        pass
    except MemoryError as exc:
        raise ImageLoadError(p, "not enough memory to read the image header") from exc
    except Exception as exc:  # any parser failure in a header is a corrupt file
        raise ImageLoadError(p, _corrupt_reason(_sniff_format(head), exc)) from exc
    if reader is not None:
        try:
            if reader(p) is not None:
                return None
        except Exception as exc:  # a plugin reader is a fault boundary
            raise ImageLoadError(p, f"plugin reader failed ({type(exc).__name__}: {exc})") from exc
    raise ImageLoadError(p, _unidentified_reason(head))


# ---------------------------------------------------------------------------------------------
# The one way to open an image file


# Pillow's decompression-bomb limit is a module global. We swap it only around the header read,
# under this lock, so concurrent load_image calls never restore each other's value.
_PIL_LIMIT_LOCK = threading.RLock()  # re-entered: _open_header holds it around open_image


def allowed_formats() -> tuple[str, ...]:
    """:data:`SAFE_FORMATS` plus the :data:`OPTIONAL_FORMATS` a plugin has registered with Pillow.

    Computed per call (cheap) because a format plugin may register its opener after import.
    """
    Image.init()  # registers Pillow's own plugins once; without it optional ones look missing
    return SAFE_FORMATS + tuple(f for f in OPTIONAL_FORMATS if f in Image.OPEN)


def open_image(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    only: tuple[str, ...] | None = None,
) -> Image.Image:
    """``Image.open`` restricted to :func:`allowed_formats`; every caller in vfmstudio uses this.

    A file in any other format (PostScript, PDF, ...) raises ``UnidentifiedImageError`` (an
    ``OSError``) whose message says what the file looks like, so callers keep their handlers.
    The pixel limit is ours (``max_pixels``), not Pillow's lower one, so every reader of a header
    agrees with :func:`load_image`; above it ``Image.DecompressionBombError`` is raised.
    ``only`` narrows the allow-list further (a mask reader that takes PNG only).
    """
    with _PIL_LIMIT_LOCK:  # Pillow's limit is a module global: off for this open only
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            im = _open_allowed(source, only)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    if max_pixels is not None and im.width * im.height > max_pixels:
        im.close()
        raise Image.DecompressionBombError(
            f"image of {im.width}x{im.height} pixels exceeds the limit of {max_pixels} pixels (set {_MAX_PIXELS_ENV})"
        )
    return im


def _open_allowed(source: str | os.PathLike[str] | BinaryIO, only: tuple[str, ...] | None) -> Image.Image:
    formats = allowed_formats()
    if only is not None:
        formats = tuple(f for f in formats if f in only)
    try:
        return Image.open(source, formats=formats)
    except UnidentifiedImageError:
        head = b""
        try:
            if isinstance(source, str | os.PathLike):
                with open(source, "rb") as fp:
                    head = fp.read(512)
            else:
                source.seek(0)
                head = source.read(512)
                source.seek(0)
        except (OSError, ValueError):
            pass
        raise UnidentifiedImageError(_unidentified_reason(head)) from None


# ---------------------------------------------------------------------------------------------
# Loading

Reader = Callable[[Path], "np.ndarray | None"]


_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"BM", 0, "BMP"),
    (b"WEBP", 8, "WebP"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    reader: Reader | None = None,
    max_bytes: int | None = DEFAULT_MAX_DECODE_BYTES,
    min_side: int | None = None,
) -> LoadedImage:
    """Decode ``path`` into an upright RGB uint8 :class:`LoadedImage`.

    ``max_pixels`` bounds width*height and ``max_bytes`` the memory decoding needs (both checked
    from the header, before decoding); ``None`` disables a bound. ``reader(path)`` is consulted only when Pillow cannot identify the file
    (plugins supply exotic formats through it); it returns an (H, W[, C]) array or ``None``.

    ``min_side``: the caller needs only this many pixels on the short side (a tool that resizes
    its input anyway), so a large image may be decoded at a reduced size whose short side is still
    at least ``min_side``: JPEG by DCT scaling while decoding (``Image.draft``, 1/2 to 1/8), other
    formats by averaging whole blocks after decoding (``Image.reduce``). The image then has the
    reduced width and height and ``metadata["reduced"]`` records the factor and the full upright
    size (see :attr:`LoadedImage.full_size`); the limits above still judge the full size.

    Every failure raises :class:`ImageLoadError` with a one-line reason.
    """
    if max_pixels is not None and max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
    p = Path(path)
    size, fp = _open_non_empty(p)
    with fp:
        # The header is judged before the file is hashed: hashing reads every byte, and an
        # 8 GiB sparse "image" must be refused from its first bytes, not after reading 8 GiB.
        try:
            head = fp.read(512)
            fp.seek(0)
        except OSError as exc:
            raise ImageLoadError(p, _os_error_reason(exc)) from exc
        meta: dict[str, Any] = {"file_bytes": size}
        try:
            im, n_frames = _open_header(fp)
        except UnidentifiedImageError:
            im, n_frames = None, None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow's check is off in _open_header; this only fires if that ever changes.
            raise ImageLoadError(p, f"image exceeds Pillow's decompression-bomb limit ({exc})") from exc
        except MemoryError as exc:
            raise ImageLoadError(p, "not enough memory to read the image header") from exc
        except Exception as exc:  # any parser failure in a header is a corrupt file
            raise ImageLoadError(p, _corrupt_reason(_sniff_format(head), exc)) from exc

        if im is None:
            return _load_with_reader(p, head, lambda: _hash_file(p, fp), meta, max_pixels, reader)
        meta["n_frames"] = n_frames
        with im:
            _check_limit(p, im.width, im.height, max_pixels)
            _check_budget(p, im.mode, im.width, im.height, max_bytes)
            image_id = _hash_file(p, fp)
            return _decode_pillow(p, im, image_id, meta, max_pixels, min_side)


def _hash_file(p: Path, fp: BinaryIO) -> str:
    """The content id, read from the start; the caller's position in ``fp`` is restored."""
    try:
        pos = fp.tell()
        fp.seek(0)
        image_id = _id_for_stream(fp)
        fp.seek(pos)
    except OSError as exc:
        raise ImageLoadError(p, _os_error_reason(exc)) from exc
    return image_id


def _open_non_empty(p: Path) -> tuple[int, BinaryIO]:
    """(size, the open file) of a regular, non-empty file; ImageLoadError otherwise."""
    size = _check_regular_file(p)
    if size == 0:
        raise ImageLoadError(p, "file is empty")
    try:
        return size, p.open("rb")
    except OSError as exc:
        raise ImageLoadError(p, _os_error_reason(exc)) from exc


def _check_regular_file(p: Path) -> int:
    """Stat before opening: a FIFO or device would block ``open``; returns the size in bytes."""
    try:
        st = p.stat()
    except OSError as exc:
        raise ImageLoadError(p, _os_error_reason(exc)) from exc
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(p, "is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(p, "not a regular file")
    return st.st_size


def _os_error_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not an image file"
    return f"cannot read file ({exc.strerror or exc})"


def _open_header(fp: BinaryIO) -> tuple[Image.Image, int | None]:
    """``Image.open`` (headers only, no pixels) with Pillow's bomb check off; ours runs next.

    Pillow warns above ~89 MP and refuses above ~179 MP, both below our default limit, and its
    limit is a module global: it is set to None only for this header read, under a lock, and
    restored. Counting frames walks the frame headers (GIF, TIFF) and re-runs Pillow's check on
    the way back to frame 0, so it happens here too; it must precede load(), since seeking back
    to frame 0 afterwards would reset the decoded frame.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            im = open_image(fp, max_pixels=None)  # load_image words its own limit error
            try:
                n_frames: int | None = int(getattr(im, "n_frames", 1) or 1)
            except Exception:  # a count that fails is only metadata; load() judges the file
                n_frames = None
            return im, n_frames
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def decode_bytes_estimate(mode: str, width: int, height: int) -> int:
    """Peak bytes :func:`load_image` needs for an image of this header: Pillow's buffer (RGB takes
    32 bits a pixel), the numpy copy of it, the working arrays of the conversion to 8-bit RGB
    (16-bit, float and alpha images go through wider types) and the RGB result. Calibrated on
    12 MP images of each mode in a fresh process (``benchmarks/bench_decode_memory.py``)."""
    return width * height * _DECODE_BYTES_PER_PIXEL.get(mode, _DECODE_BYTES_DEFAULT)


def _check_budget(p: Path, mode: str, width: int, height: int, max_bytes: int | None) -> None:
    need = decode_bytes_estimate(mode, width, height)
    if max_bytes is not None and need > max_bytes:
        raise ImageLoadError(
            p,
            f"decoding this {width}x{height} {mode} image needs about {need >> 20} MiB, over the budget "
            f"of {max_bytes >> 20} MiB (set {_MAX_DECODE_ENV})",
        )


def _check_limit(p: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            p,
            f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels "
            f"(set {_MAX_PIXELS_ENV})",
        )


def _decode_pillow(
    p: Path,
    im: Image.Image,
    image_id: str,
    meta: dict[str, Any],
    max_pixels: int | None,
    min_side: int | None = None,
) -> LoadedImage:
    fmt = im.format or "UNKNOWN"
    _check_limit(p, im.width, im.height, max_pixels)
    full = im.size
    meta.update(mode=im.mode, bit_depth=_bit_depth(im), source_size=full)
    factor = _draft(im, min_side)  # before load(): JPEG decodes straight to the smaller size
    try:
        im.load()  # first frame / first page: Image.open already sits on it
    except MemoryError as exc:
        raise ImageLoadError(p, f"not enough memory to decode a {im.width}x{im.height} image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(p, f"image exceeds Pillow's decompression-bomb limit ({exc})") from exc
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, zlib...
        raise ImageLoadError(p, _corrupt_reason(fmt, exc)) from exc

    _apply_orientation(im, meta)
    im = _convert_colour(p, im, meta)
    how = "DCT scaling while decoding"
    if factor == 1:
        how = "block averaging"
        if not (im.mode.startswith("I") and "transparency" in im.info):  # a colour key must stay exact
            im, factor = _reduce(im, min_side)
    if factor > 1:
        upright = full[::-1] if meta.get("orientation_applied") and meta["exif_orientation"] >= 5 else full
        meta["reduced"] = {"factor": factor, "full_size": upright, "min_side": min_side, "by": how}
    try:
        arr = np.asarray(im)
    except MemoryError as exc:
        raise ImageLoadError(p, f"not enough memory to decode a {im.width}x{im.height} image") from exc
    transparency = im.info.get("transparency") if im.mode.startswith("I") else None
    pixels = _to_rgb8(arr, meta, transparency=transparency)
    return _finish(p, pixels, image_id, fmt, meta)


def _draft(im: Image.Image, min_side: int | None) -> int:
    """Ask Pillow's JPEG decoder for the largest 1/2, 1/4 or 1/8 scale that keeps the short side
    at least ``min_side``; returns the factor (1: full size, or not a JPEG)."""
    if not min_side or min(im.size) // min_side < 2:
        return 1
    width = im.width
    try:
        drafted = im.draft(
            None, (min_side, min_side)
        )  # scale = min(W // side, H // side), floored to 8/4/2/1
    except Exception:  # a decoder that cannot draft decodes in full
        return 1
    if drafted is None:  # not a JPEG (the base class does nothing)
        return 1
    return max(1, round(width / drafted[1][2]))


def _reduce(im: Image.Image, min_side: int | None) -> tuple[Image.Image, int]:
    """Average ``factor`` x ``factor`` blocks, the largest factor keeping the short side >= ``min_side``."""
    factor = min(im.size) // min_side if min_side else 1
    if factor < 2:
        return im, 1
    try:
        return im.reduce(factor), factor  # ceil(W / factor) x ceil(H / factor): the edge block counts
    except (ValueError, MemoryError):  # modes Pillow cannot reduce (I;16): keep the full frame
        return im, 1


def _finish(p: Path, pixels: np.ndarray, image_id: str, fmt: str, meta: dict[str, Any]) -> LoadedImage:
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    return LoadedImage(path=p, pixels=pixels, id=image_id, width=w, height=h, format=fmt, metadata=meta)


def _bit_depth(im: Image.Image) -> int:
    # 16-bit colour decodes to an 8-bit mode; the undecoded tile's raw mode still says ";16".
    tiles = getattr(im, "tile", None) or []
    for tile in tiles[:1]:
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode:
            return 16
    return {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}.get(im.mode, 8)


def _apply_orientation(im: Image.Image, meta: dict[str, Any]) -> None:
    try:
        orientation = im.getexif().get(0x0112)
    except Exception as exc:  # corrupt EXIF must not cost the user the image
        meta.update(exif_orientation=None, orientation_applied=False, exif_note=f"unreadable EXIF ({exc})")
        return
    meta["exif_orientation"] = orientation
    meta["orientation_applied"] = False
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        try:
            ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of a large frame
        except Exception as exc:
            meta["exif_note"] = f"orientation {orientation} not applied ({exc})"
            return
        meta["orientation_applied"] = True
    elif orientation not in (None, 1):
        meta["exif_note"] = f"invalid orientation value {orientation!r} ignored"


def _convert_colour(p: Path, im: Image.Image, meta: dict[str, Any]) -> Image.Image:
    """Bring any Pillow mode to one numpy takes as is: L, LA, RGB, RGBA, I;16*, I or F."""
    mode = im.mode
    icc = im.info.get("icc_profile")
    if icc:
        meta["icc"] = _icc_note(icc)
    if mode == "CMYK":
        converted = _cmyk_via_icc(im, icc, meta) if icc else None
        return converted if converted is not None else im.convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return im  # scaled in _to_rgb8; a tRNS grey value is passed along separately
    if mode == "1":
        return im.convert("L")
    if im.has_transparency_data:
        # Alpha, a transparent palette entry or a colour key: make it an alpha channel; composited
        # in _to_rgb8 so the rule (over white) lives in one place.
        return im if mode in ("RGBA", "LA") else im.convert("RGBA")
    if mode in ("RGB", "L"):
        return im
    try:
        return im.convert("RGB")  # P, RGBX, YCbCr, HSV, ...
    except Exception as exc:  # e.g. LAB has no direct conversion
        raise ImageLoadError(p, f"unsupported pixel mode {mode!r}") from exc


def _icc_note(icc: bytes) -> str:
    try:
        from PIL import ImageCms

        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except Exception as exc:  # a broken profile is ignored, never fatal
        return f"ignored: unreadable ICC profile ({type(exc).__name__})"
    return f"embedded profile {desc!r}, not applied" if desc else "embedded profile, not applied"


def _cmyk_via_icc(im: Image.Image, icc: bytes, meta: dict[str, Any]) -> Image.Image | None:
    """CMYK -> sRGB through the file's profile: the plain formula is visibly off for print CMYK."""
    if meta.get("icc", "").startswith("ignored"):
        return None
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception as exc:
        meta["icc"] = f"ignored: CMYK profile could not be applied ({type(exc).__name__})"
        return None
    if out is None:
        return None
    meta["icc"] = "CMYK converted to sRGB with the embedded profile"
    return out


def _to_rgb8(arr: np.ndarray, meta: dict[str, Any], *, transparency: Any = None) -> np.ndarray:
    """(H, W), (H, W, 1|2|3|4) of any numeric dtype -> (H, W, 3) uint8, alpha over white."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W) or (H, W, 1|2|3|4) array, got shape {arr.shape}")
    n = arr.shape[2]
    colour, alpha = (arr[:, :, : n - 1], arr[:, :, n - 1]) if n in (2, 4) else (arr, None)
    if alpha is None and transparency is not None and isinstance(transparency, int):
        alpha = np.where(colour[:, :, 0] == transparency, 0, 255).astype(np.uint8)
    rgb = _scale_to_uint8(colour, meta, "value_scaling")
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if alpha is not None:
        a = _scale_to_uint8(alpha, {}, None)
        if a.size and a.min() < 255:
            a16 = a.astype(np.uint16)[:, :, None]
            # rgb*a/255 + 255*(255-a)/255, rounded, in integers.
            rgb = ((rgb.astype(np.uint16) * a16 + 255 * (255 - a16) + 127) // 255).astype(np.uint8)
            meta["alpha"] = "composited over white"
        else:
            meta["alpha"] = "fully opaque"
    return rgb


def _scale_to_uint8(x: np.ndarray, meta: dict[str, Any], key: str | None) -> np.ndarray:
    def note(text: str) -> None:
        if key is not None:
            meta[key] = text

    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255
    if x.dtype.kind == "u" and x.dtype.itemsize == 2:
        note("16-bit to 8-bit: round(v / 257)")
        return ((x.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if x.dtype.kind == "f":
        return _scale_float(x, note)
    if x.dtype.kind in "iu":
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo >= 0 and hi <= 255:
            note("integer values in [0, 255] kept")
            return x.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            note("integer values in [0, 65535] read as 16-bit: round(v / 257)")
            return ((x.astype(np.uint32) + 128) // 257).astype(np.uint8)
        note(f"integer values min-max stretched from [{lo}, {hi}]")
        return _stretch(x.astype(np.float64), lo, hi)
    raise ValueError(f"unsupported pixel dtype {x.dtype}")


def _scale_float(x: np.ndarray, note: Callable[[str], None]) -> np.ndarray:
    finite = np.isfinite(x)
    if not finite.all():
        lo_f = float(x[finite].min()) if finite.any() else 0.0
        x = np.where(finite, x, lo_f)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        note("float values in [0, 1] scaled by 255")
        return np.rint(x.astype(np.float64) * 255.0).astype(np.uint8)
    note(f"float values min-max stretched from [{lo:g}, {hi:g}]")
    return _stretch(x.astype(np.float64), lo, hi)


def _stretch(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.rint((x - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def _load_with_reader(
    p: Path,
    head: bytes,
    image_id: Callable[[], str],
    meta: dict[str, Any],
    max_pixels: int | None,
    reader: Reader | None,
) -> LoadedImage:
    if reader is not None:
        try:
            arr = reader(p)
        except ImageLoadError:
            raise
        except Exception as exc:  # a plugin reader is a fault boundary
            raise ImageLoadError(p, f"plugin reader failed ({type(exc).__name__}: {exc})") from exc
        if arr is not None:
            arr = np.asarray(arr)
            if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
                raise ImageLoadError(
                    p, f"plugin reader returned an array of shape {arr.shape}, not (H, W[, C])"
                )
            h, w = arr.shape[:2]
            _check_limit(p, w, h, max_pixels)
            meta.update(
                mode=f"array {arr.dtype} {arr.shape}",
                bit_depth=arr.dtype.itemsize * 8,
                n_frames=1,
                source_size=(w, h),
                exif_orientation=None,
                orientation_applied=False,
                reader=getattr(reader, "__qualname__", type(reader).__name__),
            )
            try:
                pixels = _to_rgb8(arr, meta)
            except ValueError as exc:
                raise ImageLoadError(p, f"plugin reader returned unusable pixels ({exc})") from exc
            fmt = p.suffix.lstrip(".").upper() or "UNKNOWN"
            return _finish(p, pixels, image_id(), fmt, meta)  # hashed only once it is an image
    raise ImageLoadError(p, _unidentified_reason(head))


def _sniff_format(head: bytes) -> str | None:
    for magic, offset, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF/AVIF"
    return None


def _unidentified_reason(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"%!PS", b"%!", b"\xc5\xd0\xd3\xc6")):  # PostScript / EPS (DOS binary EPS)
        return "PostScript/EPS, which is not read: decoding it would run an external interpreter"
    if text.startswith(b"%PDF"):
        return "PDF document, not a raster image (not supported)"
    fmt = _sniff_format(head)
    if fmt == "HEIF/AVIF":
        return "HEIF/HEIC/AVIF image that this installation cannot read (a format plugin is needed)"
    if fmt is not None:
        return f"truncated or corrupt {fmt} data"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG vector image, not a raster image (not supported)"
    if text.startswith((b"<!doctype", b"<html", b"<head", b"<?xml")) or _looks_like_text(head):
        return "not an image (looks like HTML/text)"
    return "not an image, or a format that is not supported"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A cut in the middle of a multi-byte character at the end of the sample is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _corrupt_reason(fmt: str | None, exc: BaseException) -> str:
    detail = str(exc).strip()
    kind = fmt or "image"
    return f"truncated or corrupt {kind} data ({detail})" if detail else f"truncated or corrupt {kind} data"


# ---------------------------------------------------------------------------------------------
# Listing


def _natural_key(name: str) -> tuple[Any, ...]:
    # re.split with a group alternates text, number, text...: positions hold the same type.
    parts = re.split(r"([0-9]+)", name)
    return tuple(int(t) if i % 2 else t.casefold() for i, t in enumerate(parts))


def _path_key(rel: Path) -> tuple[Any, ...]:
    return (tuple(_natural_key(part) for part in rel.parts), str(rel))


def _is_hidden(entry: os.DirEntry[str]) -> bool:
    if entry.name.startswith("."):
        return True
    attrs = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)  # Windows only
    return bool(attrs & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def list_images(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    recursive: bool = True,
    *,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
) -> list[Path]:
    """The image files in ``paths`` (files and folders), without duplicates.

    A file named explicitly is kept whatever its suffix (the caller chose it; :func:`load_image`
    reports whether it reads). A folder contributes its files whose lower-case suffix is in
    ``extensions``, naturally sorted (``img2`` before ``img10``), skipping hidden files and
    folders; symlinked folders are followed once each, so symlink loops end. Arguments keep
    their order. A path that does not exist raises :class:`FileNotFoundError`.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    exts = frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    out: list[Path] = []
    seen: set[tuple[int, int] | str] = set()

    def add(p: Path) -> None:
        try:
            st = p.stat()
            key: tuple[int, int] | str = (st.st_dev, st.st_ino)
        except OSError:
            key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found: list[Path] = []
            _walk(p, recursive, exts, found, visited=set())
            for _, f in sorted((_path_key(f.relative_to(p)), f) for f in found):
                add(f)
        elif p.exists():
            add(p)
        else:
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", str(p))
    return out


def _walk(folder: Path, recursive: bool, exts: frozenset[str], found: list[Path], visited: set) -> None:
    try:
        st = folder.stat()
    except OSError:
        return
    key = (st.st_dev, st.st_ino)
    if key in visited:  # a symlink back up the tree, or a second link to the same folder
        return
    visited.add(key)
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:  # unreadable sub-folder: skip it, keep the rest
        log.debug("skipping %s: %s", folder, exc)
        return
    for entry in entries:
        try:
            if _is_hidden(entry):
                continue
            if entry.is_dir(follow_symlinks=True):
                if recursive:
                    _walk(Path(entry.path), recursive, exts, found, visited)
            elif entry.is_file(follow_symlinks=True) and os.path.splitext(entry.name)[1].lower() in exts:
                found.append(Path(entry.path))
        except OSError:  # broken symlink, vanished file
            continue

"""Peak memory of ``load_image`` per pixel mode against the estimate the loader checks its budget with.

Each case runs in a fresh subprocess (peak RSS from ``resource.getrusage`` minus the RSS after
imports), on an image written here. Also measures the issue-21 "memory bomb": a small PNG just
under the 200 MP pixel limit, loaded with the old behaviour (no decode budget) and the new one.

    .venv/bin/python benchmarks/bench_decode_memory.py [--megapixels 24] [--bomb]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from vfmstudio.core.image import ImageLoadError, decode_bytes_estimate, load_image
    from PIL import Image
    path, budget = sys.argv[1], (None if sys.argv[2] == "none" else int(sys.argv[2]))
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        mode, w, h = im.mode, im.width, im.height
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        load_image(path, max_bytes=budget)
        outcome = "loaded"
    except ImageLoadError as exc:
        outcome = str(exc).split(": ", 1)[1][:90]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"mode": mode, "peak": peak - base, "estimate": decode_bytes_estimate(mode, w, h),
                      "outcome": outcome}))
""")


def write_cases(folder: Path, megapixels: float) -> list[Path]:
    import numpy as np
    from PIL import Image

    side = int((megapixels * 1e6) ** 0.5)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (side, side, 3), np.uint8)
    out = []
    for name, img in [
        ("rgb.png", Image.fromarray(rgb)),
        ("rgba.png", Image.fromarray(np.dstack([rgb, rng.integers(0, 255, (side, side), np.uint8)]))),
        ("grey.png", Image.fromarray(rgb[..., 0])),
        ("grey16.png", Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)),
        ("float.tif", Image.fromarray(rgb[..., 0].astype(np.float32) / 255.0, mode="F")),
        ("cmyk.jpg", Image.fromarray(np.dstack([rgb, rgb[..., :1]]), mode="CMYK")),
    ]:
        path = folder / name
        img.save(path, compress_level=1) if name.endswith(".png") else img.save(path)
        out.append(path)
    return out


def bomb(folder: Path) -> Path:
    """A small RGBA PNG of 14000x14000 transparent pixels (196 MP, just under the 200 MP pixel limit)."""
    import struct
    import zlib

    w = h = 14_000
    row = b"\x00" + b"\x00" * (w * 4)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    path = folder / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )
    return path


DEFAULT_BUDGET = 2048 << 20


def measure(path: Path, budget: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), budget], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--bomb", action="store_true", help="also load the 196 MP PNG without a budget (~4.5 GB)")
    ap.add_argument("--write-to", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_to:
        write_cases(args.write_to, args.megapixels)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Written by a child: Linux children start with their parent's peak RSS, so the parent stays small.
        subprocess.run(
            [sys.executable, __file__, "--megapixels", str(args.megapixels), "--write-to", tmp], check=True
        )
        print(f"{'file':12} {'mode':6} {'peak MiB':>9} {'estimate MiB':>13} {'estimate/peak':>14}")
        for path in sorted(folder.iterdir()):
            r = measure(path, "none")
            print(
                f"{path.name:12} {r['mode']:6} {r['peak'] / 2**20:9.0f} {r['estimate'] / 2**20:13.0f} "
                f"{r['estimate'] / max(r['peak'], 1):14.2f}"
            )
        path = bomb(folder)
        print(f"\nbomb: {path.stat().st_size / 1024:.0f} KB file, 14000x14000 RGBA")
        r = measure(path, str(DEFAULT_BUDGET))
        print(
            f"  with the default {DEFAULT_BUDGET >> 20} MiB budget: peak {r['peak'] / 2**20:.0f} MiB, {r['outcome']}"
        )
        if args.bomb:
            r = measure(path, "none")
            print(f"  without a budget (before): peak {r['peak'] / 2**20:.0f} MiB, {r['outcome']}")


if __name__ == "__main__":
    main()

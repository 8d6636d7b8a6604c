"""Check our exports with datumaro, an independent reader, kept in its own environment (its pins
clash with ours: Pillow 12, and it must never share a venv with the app).

    .venv/bin/python scripts/datumaro_oracle.py export OUT        # writes OUT/<format>/ with our exporters
    /path/to/datumaro-venv/bin/python scripts/datumaro_oracle.py read OUT   # datumaro reads each one

``read`` prints, per format, the items and annotations datumaro found by type, and exits 1 when
datumaro finds fewer annotations than we wrote (``OUT/expected.json``). Last run (datumaro 1.13.12,
2026-12-06): every object found in COCO (7: datumaro adds a bbox per object), VOC (6), YOLO (6),
CVAT (7 of 9: its CVAT reader skips ``<ellipse>``, so the circle and the ellipse are not counted).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# our format id -> datumaro format name
FORMATS = {"coco": "coco_instances", "voc": "voc_detection", "yolo": "yolo", "cvat": "cvat"}
# datumaro finds COCO files only under annotations/ (its layout; ours accepts both)
PARAMS = {"coco": {"filename": "annotations/instances_default.json"}}


def export(out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "plugins"))
    from test_formats_peers import _every_shape_project  # one of every shape, on one image

    from vfmstudio._plugin_host import PluginHost
    from vfmstudio.core.exchange import export_project

    host = PluginHost(builtins=("vfmstudio_formats",), entry_points=False).load()
    project = _every_shape_project(out / "src")
    expected = {}
    for fmt in FORMATS:
        ctx = export_project(
            host.format(fmt), project, out / fmt, {"copy_images": True, **PARAMS.get(fmt, {})}
        )
        written = sum(ctx.report.kept.values()) + sum(ctx.report.converted.values()) - ctx.report.kept["tag"]
        if fmt == "cvat":  # datumaro 1.13 does not read CVAT's <ellipse> (CVAT itself does)
            written -= ctx.report.kept["circle"] + ctx.report.kept["ellipse"]
        expected[fmt] = written
        print(f"{fmt}: {ctx.report.summary()}")
    (out / "expected.json").write_text(json.dumps(expected))


def read(out: Path) -> int:
    import datumaro as dm

    expected = json.loads((out / "expected.json").read_text())
    bad = 0
    for fmt, dm_name in FORMATS.items():
        try:
            ds = dm.Dataset.import_from(str(out / fmt), dm_name)
            kinds = Counter(ann.type.name for item in ds for ann in item.annotations)
            n = sum(kinds.values())
            print(
                f"{fmt} -> datumaro {dm_name}: {len(ds)} items, {n} annotations {dict(kinds)} "
                f"(we wrote {expected[fmt]})"
            )
            bad += n < expected[fmt]
        except Exception as exc:  # noqa: BLE001 - an oracle reports every failure and goes on
            print(f"{fmt} -> datumaro {dm_name}: FAILED {type(exc).__name__}: {exc}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    mode, folder = sys.argv[1], Path(sys.argv[2])
    if mode == "export":
        export(folder)
    else:
        sys.exit(read(folder))

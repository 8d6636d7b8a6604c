"""Captions and tags per image as JSONL (``{"image", "caption", "tags"}`` per line) or CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from vfmstudio.plugin_api import ExchangeContext, FormatError, ImageRecord, Project, in_memory, safe_join

from ._common import drop_annotations, iter_images, read_text


def export_jsonl(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    path = safe_join(out, params["filename"], what="parameter 'filename'")
    with path.open("w", encoding="utf-8") as fp:
        for _, rec in iter_images(project, ctx, "captions"):
            caption = project.labels.captions.get(rec.key, "")
            tags = list(project.labels.tags.get(rec.key, ()))
            if caption or tags or params["include_empty"]:
                fp.write(
                    json.dumps({"image": rec.path, "caption": caption, "tags": tags}, ensure_ascii=False)
                    + "\n"
                )
    ctx.wrote(path)
    drop_annotations(project, ctx, "a captions file")


def export_csv(project: Project, out: Path, params: dict, ctx: ExchangeContext) -> None:
    path = safe_join(out, params["filename"].replace(".jsonl", ".csv"), what="parameter 'filename'")
    with path.open("w", encoding="utf-8", newline="") as fp:
        writer = csv.writer(fp)
        writer.writerow(["image", "caption", "tags"])
        for _, rec in iter_images(project, ctx, "captions"):
            caption = project.labels.captions.get(rec.key, "")
            tags = project.labels.tags.get(rec.key, ())
            if caption or tags or params["include_empty"]:
                writer.writerow([rec.path, caption, ";".join(tags)])
    ctx.wrote(path)
    drop_annotations(project, ctx, "a captions file")


def import_jsonl(source: Path, params: dict, ctx: ExchangeContext) -> Project:
    root = Path(params["image_root"]) if params.get("image_root") else source.parent
    project = in_memory(root)
    for n, line in enumerate(read_text(source).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rel = str(row["image"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise FormatError(f"{source}: line {n}: expected a JSON object with 'image'") from None
        key = (
            safe_join(root, rel, what=f"{source.name}: line {n}: image")
            .relative_to(root.resolve())
            .as_posix()
        )
        project.images.setdefault(key, ImageRecord(key, key))
        if row.get("caption"):
            project.labels.set_caption(key, str(row["caption"]))
        if row.get("tags"):
            project.labels.set_tags(key, [str(t) for t in row["tags"]])
    return project

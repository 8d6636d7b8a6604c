"""The parts of a batch run without a tool: sources and keys, the output folder, progress, stop rule."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.results import Heatmap, Prediction
from vfmstudio.engines.job import BatchError, Progress, StopRule
from vfmstudio.engines.outputs import BatchOutput, OutputError, iter_predictions, read_failures
from vfmstudio.engines.progress import format_duration, progress_line
from vfmstudio.engines.sources import Item, SourceError, image_key, resolve_source
from vfmstudio.engines.worker import Outcome


def touch_image(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(path)
    return path


def test_keys_are_safe_stable_and_distinct():
    rels = [
        "a/b.jpg",
        "a__b.jpg",
        "a b.jpg",
        "a_b.jpg",
        "A/b.jpg",
        "ünï/cödé.png",
        "x/" + "long" * 80 + ".png",
    ]
    keys = [image_key(r) for r in rels]
    assert len(set(keys)) == len(keys)
    assert keys == [image_key(r) for r in rels]  # a pure function of the relative path
    for k in keys:
        assert re.fullmatch(r"[A-Za-z0-9._-]+-[0-9a-f]{10}", k) and len(k) <= 111, k
    assert keys[0].startswith("a__b.jpg-")


def test_folder_source_is_recursive_natural_and_skips_hidden(tmp_path):
    for name in ["img10.png", "img2.png", "sub/img1.jpg", ".hidden/x.png", "notes.txt"]:
        touch_image(tmp_path / name) if name.endswith((".png", ".jpg")) else (tmp_path / name).write_text("x")
    src = resolve_source(tmp_path)
    assert src.kind == "folder" and src.root == str(tmp_path)
    assert [it.rel for it in src.items] == ["img2.png", "img10.png", "sub/img1.jpg"]
    assert [it.rel for it in resolve_source(tmp_path, limit=2).items] == ["img2.png", "img10.png"]
    assert all(os.path.isabs(it.path) for it in src.items)


def test_list_file_paths_are_relative_to_the_list(tmp_path, monkeypatch):
    a = touch_image(tmp_path / "data" / "cats" / "a.png")
    touch_image(tmp_path / "data" / "dogs" / "b.png")
    listing = tmp_path / "lists" / "pick.txt"
    listing.parent.mkdir()
    listing.write_text(
        f"# two images and a missing one\n../data/dogs/b.png\n\n{a}\n../data/cats/gone.png\n../data/dogs/b.png\n"
    )
    monkeypatch.chdir(tmp_path / "lists")
    src = resolve_source("pick.txt")
    assert src.kind == "list" and src.root == str(tmp_path / "data")
    assert [it.rel for it in src.items] == ["dogs/b.png", "cats/a.png", "cats/gone.png"]  # duplicates once


def test_glob_and_single_file_and_errors(tmp_path):
    for name in ["a/x1.png", "a/b/x2.png", "a/y.png"]:
        touch_image(tmp_path / name)
    src = resolve_source(str(tmp_path / "a" / "**" / "x*.png"))
    assert src.kind == "glob" and src.root == str(tmp_path / "a")
    assert sorted(it.rel for it in src.items) == ["b/x2.png", "x1.png"]
    one = resolve_source(tmp_path / "a" / "y.png")
    assert one.kind == "file" and [it.rel for it in one.items] == ["y.png"]
    (tmp_path / "data.bin").write_bytes(b"x")
    with pytest.raises(SourceError, match="not an image, folder or list file"):
        resolve_source(tmp_path / "data.bin")
    with pytest.raises(SourceError, match="no images found"):
        resolve_source(str(tmp_path / "*.jpeg"))


def prediction(image_id: str, size: int) -> Prediction:
    values = np.arange(size * size, dtype=np.float32).reshape(size, size)
    return Prediction(
        tool="x.y", model=None, image_ids=(image_id,), results=(Heatmap(values, image_id=image_id),)
    )


def test_output_folder_writes_complete_files_and_knows_what_is_done(tmp_path):
    img = touch_image(tmp_path / "src" / "a.png")
    item = Item(str(img), "a.png", image_key("a.png"))
    out = BatchOutput(tmp_path / "out")
    out.open({"tool": "x.y", "model": None, "params": {"t": (1, 2)}, "source": {"root": "r"}}, resume=False)
    assert not out.is_done(item)
    from vfmstudio.engines.outputs import SourceStat

    out.write_prediction(item, prediction("id1", 80), SourceStat.of(img))  # 6400 values: a sidecar array
    assert out.is_done(item)
    assert not [
        p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")
    ]
    [(record, pred)] = list(iter_predictions(tmp_path / "out"))
    assert record["rel"] == "a.png" and pred.results[0].values.shape == (80, 80)
    assert (tmp_path / "out" / "arrays" / item.key).is_dir()
    st = os.stat(img)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not out.is_done(item)  # the source changed since

    again = BatchOutput(tmp_path / "out")
    with pytest.raises(OutputError, match="pass --resume"):
        again.open(
            {"tool": "x.y", "model": None, "params": {"t": [1, 2]}, "source": {"root": "r"}}, resume=False
        )
    again.open({"tool": "x.y", "model": None, "params": {"t": [1, 2]}, "source": {"root": "r"}}, resume=True)
    with pytest.raises(OutputError, match=r"model: None then, 'm' now"):
        again.open(
            {"tool": "x.y", "model": "m", "params": {"t": [1, 2]}, "source": {"root": "r"}}, resume=True
        )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        BatchOutput(tmp_path / "other").open({"tool": "x.y"}, resume=False)


def test_failures_file_survives_a_torn_line_and_drops_retried_images(tmp_path):
    out = BatchOutput(tmp_path)
    a, b = Item("/a.png", "a.png", "ka"), Item("/b.png", "b.png", "kb")
    out.add_failure(a, "read", "file is\nempty")
    out.add_failure(b, "run", "boom")
    with open(out.failures_path, "a") as fp:
        fp.write('{"key": "kc", "pa')  # a run killed mid-line
    assert [(f["key"], f["reason"]) for f in read_failures(tmp_path)] == [
        ("ka", "file is empty"),
        ("kb", "boom"),
    ]
    out.reset_failures({"ka"})
    assert [f["key"] for f in read_failures(tmp_path)] == ["kb"]
    assert all(json.loads(line) for line in out.failures_path.read_text().splitlines())


def test_progress_line_and_stop_rule():
    p = Progress(total=110, skipped=10)
    p.started -= 10.0
    for i in range(20):
        p.add(Outcome(Item("p", "r", f"k{i}"), ok=i % 10 != 0, stage="read", reason="bad"))
    line = progress_line(p)
    assert (
        "20/100 (10 done before)" in line
        and "2.0 img/s" in line
        and "ETA 00:40" in line
        and "failed 2" in line
    )
    assert format_duration(3725) == "1:02:05" and format_duration(None) == "--:--"

    stop = StopRule()
    for i in range(5):  # read failures and per-image reasons never stop a run
        stop.check(Outcome(Item("p", "r", f"r{i}"), False, "read", "file is empty"))
        stop.check(Outcome(Item("p", "r", f"i{i}"), False, "run", f"image {i} too small"))
    stop.check(Outcome(Item("p", "r", "a"), False, "run", "model missing"))
    stop.check(Outcome(Item("p", "r", "b"), False, "run", "model missing"))
    with pytest.raises(BatchError, match="model missing"):
        stop.check(Outcome(Item("p", "r", "c"), False, "run", "model missing"))
    late = StopRule()
    late.check(Outcome(Item("p", "r", "ok"), True))
    for i in range(5):  # once an image worked, failures are the images' own
        late.check(Outcome(Item("p", "r", f"x{i}"), False, "run", "model missing"))


def test_batch_feature_cache_keeps_only_what_the_last_batch_used():
    from vfmstudio.engines.worker import BatchFeatureCache

    cache = BatchFeatureCache(1 << 20)
    arr = lambda: np.zeros(10, np.float32)  # noqa: E731
    for batch in range(3):
        cache.get_or_create("text embeddings", arr)  # every batch uses it
        for i in range(4):
            cache.put(("image", batch, i), arr())
        for i in range(4):
            assert cache.get(("image", batch, i)) is not None  # the runs of the batch
        cache.end_batch()
        assert sorted(map(str, cache.keys())) == sorted(
            ["text embeddings", *(str(("image", batch, i)) for i in range(4))]
        )
    assert cache.end_batch() == 5 and len(cache) == 0  # a batch that used nothing keeps nothing

"""The folder index end to end on tiny checkpoints: incremental updates, search, duplicates, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vfmstudio._plugin_host import get_host
from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import image_id_for_file, load_image
from vfmstudio.execution import Services, run_tool
from vfmstudio.index.build import update_index

ROOT = Path(__file__).resolve().parents[2]


def vfm(*args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vfmstudio", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


def _write(path: Path, seed: int, size=(40, 56)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    for i in range(5):
        _write(root / f"img{i}.png", seed=i)
    _write(root / "sub" / "again.png", seed=2)  # an exact copy of img2.png, in a sub-folder
    return root


@pytest.fixture
def embedded_images():
    """Counts images that go through any vision tower: the batch size of each patch-embedding convolution
    (the only Conv2d in CLIP's and DINOv2's towers)."""
    counts = {"images": 0}

    def hook(module, args, output):
        if isinstance(module, torch.nn.Conv2d):
            counts["images"] += int(args[0].shape[0])

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    yield counts
    handle.remove()


def _services():
    return Services(models=ByteLRUCache(1 << 30), features=ByteLRUCache(64 << 20))


def _update(folder, model, tool_id, **params):
    return update_index(
        folder, model=model, tool=get_host().tool(tool_id), params=params, services=_services()
    )


@pytest.mark.parametrize("family, tool_id", [("clip", "clip.embed"), ("dinov2", "dino.embed")])
def test_updates_embed_only_new_or_changed_images_and_drop_removed_ones(
    tiny_model, folder, embedded_images, family, tool_id
):
    model = str(tiny_model(family))
    first = _update(folder, model, tool_id)
    assert first.report.as_dict() == {"images": 6, "embedded": 5, "reused": 0, "removed": 0, "failed": []}
    assert embedded_images["images"] == 5  # the copy is embedded once

    embedded_images["images"] = 0
    again = _update(folder, model, tool_id)
    assert (again.report.embedded, again.report.reused, embedded_images["images"]) == (0, 5, 0)

    _write(folder / "img0.png", seed=100)  # changed content
    _write(folder / "new.png", seed=101)  # new
    (folder / "img4.png").unlink()  # removed
    third = _update(folder, model, tool_id)
    assert third.report.as_dict() == {"images": 6, "embedded": 2, "reused": 3, "removed": 2, "failed": []}
    assert embedded_images["images"] == 2
    assert len(third.store) == 5 and sorted(third.store.files) == sorted(
        ["img0.png", "img1.png", "img2.png", "img3.png", "new.png", "sub/again.png"]
    )


def test_stored_vectors_equal_the_tool_run_directly(tiny_model, folder):
    model = str(tiny_model("dinov2"))
    index = _update(folder, model, "dino.embed", pool="mean")
    image = load_image(folder / "img3.png")
    direct = run_tool(
        get_host().tool("dino.embed"), [image], {"pool": "mean"}, model=model, services=_services()
    )
    np.testing.assert_allclose(index.store.vector(image.id), direct.results[0].vector, atol=1e-6)


def test_exact_copies_are_always_found(tiny_model, folder):
    index = _update(folder, str(tiny_model("clip")), "clip.embed")
    groups = index.duplicates(threshold=1.1)  # no near-duplicate can reach 1.1: exact copies only
    assert groups == [{"kind": "exact", "files": ["img2.png", "sub/again.png"]}]


def test_unreadable_files_are_listed_and_the_rest_indexed(tiny_model, folder):
    (folder / "broken.png").write_bytes(b"not a png at all")
    index = _update(folder, str(tiny_model("clip")), "clip.embed")
    # The broken file is refused from its header before it is hashed, so it is not counted as an image.
    assert index.report.images == 6 and index.report.embedded == 5 and len(index.store) == 5
    assert [(f["path"], f["reason"]) for f in index.report.failed] == [
        ("broken.png", "not an image (looks like HTML/text)")
    ]
    assert "broken.png" not in index.store.files  # so the next update tries it again


def test_similar_text_ranks_as_clip_search_does(tiny_model, folder):
    model = str(tiny_model("clip"))
    proc = vfm("similar", str(folder), "--model", model, "--text", "a red square", "--top", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)["results"]
    search = run_tool(
        get_host().tool("clip.search"),
        [load_image(folder / "img0.png")],
        {"query": "a red square", "folder": str(folder), "recursive": True},
        model=model,
        services=_services(),
    )
    ranking = search.results[0]
    want = {image_id: float(s) for image_id, s in zip(ranking.image_ids, ranking.scores)}  # one per content
    assert len(got) == 6 and len(want) == 5
    for hit in got:
        assert hit["score"] == pytest.approx(want[image_id_for_file(folder / hit["path"])], abs=1e-5)
    assert [h["score"] for h in got] == sorted((h["score"] for h in got), reverse=True)


def test_cli_index_similar_and_duplicates(tiny_model, folder):
    model = str(tiny_model("dinov2"))
    proc = vfm("index", str(folder), "--model", model, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {k: report[k] for k in ("images", "embedded", "reused", "removed")} == {
        "images": 6,
        "embedded": 5,
        "reused": 0,
        "removed": 0,
    }
    proc = vfm("similar", str(folder), str(folder / "img1.png"), "--model", model, "--top", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    top = json.loads(proc.stdout)["results"]
    assert top[0]["path"] == "img1.png" and top[0]["score"] == pytest.approx(1.0, abs=1e-5)
    outside = _write(folder.parent / "elsewhere.png", seed=1)  # same pixels as img1, outside the folder
    proc = vfm("similar", str(folder), str(outside), "--model", model, "--top", "1", "--json")
    assert json.loads(proc.stdout)["results"][0]["path"] == "img1.png"
    proc = vfm("duplicates", str(folder), "--model", model, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["groups"][0] == {"kind": "exact", "files": ["img2.png", "sub/again.png"]}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["index", "{missing}", "--model", "{clip}"], "not a folder"),
        (
            ["similar", "{folder}", "--model", "{dinov2}", "--text", "a cat"],
            "text search needs a CLIP/SigLIP model",
        ),
        (["similar", "{folder}", "--model", "{clip}"], "give a query IMAGE or --text"),
        (["index", "{folder}", "--model", "{folder}"], "not a known model"),
        (
            ["duplicates", "{folder}", "--model", "{clip}", "--threshold", "2"],
            "--threshold must be between 0 and 1",
        ),
        (
            ["duplicates", "{folder}", "--model", "{clip}", "--keep", "largest"],
            "--keep goes with --remove-from",
        ),
        (
            ["duplicates", "{folder}", "--model", "{clip}", "--remove-from", "{missing}"],
            "no such project file",
        ),
        (["index", "{folder}", "--model", "{clip}", "--ray-address", "x:1"], "applies to --engine ray only"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_model, folder, tmp_path, args, needle):
    values = {
        "missing": str(tmp_path / "nope"),
        "folder": str(folder),
        "clip": str(tiny_model("clip")),
        "dinov2": str(tiny_model("dinov2")),
    }
    proc = vfm(*[a.format(**values) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def test_a_text_tool_runs_without_images_and_is_kept_out_of_batch_and_the_window(tiny_model, tmp_path):
    proc = vfm(
        "run", "clip.embed-text", "--model", str(tiny_model("clip")), "--param", "text=a dog", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["type"] == "embedding"
    assert not get_host().tool("clip.embed-text").for_window and not get_host().tool("clip.embed").for_window
    assert get_host().tool("clip.search").for_window
    proc = vfm(
        "batch",
        str(tmp_path),
        "--tool",
        "clip.embed-text",
        "--param",
        "text=x",
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 2 and "takes no image" in proc.stderr
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_on_stored_sees_the_reused_vectors_first_then_each_stored_batch(tiny_model, folder, monkeypatch):
    import vfmstudio.index.build as build

    model = str(tiny_model("dinov2"))
    _update(folder, model, "dino.embed")  # 5 contents stored
    for i in range(5, 12):
        _write(folder / f"new{i}.png", seed=i)
    monkeypatch.setattr(build, "FLUSH_EVERY", 3)
    seen = []
    update_index(
        folder,
        model=model,
        tool=get_host().tool("dino.embed"),
        params={},
        services=_services(),
        batch_size=2,
        on_stored=lambda store, files: seen.append((len(store), len(files))),
    )
    # The reused 5 before any embedding, then 3 + 3 + 1 new vectors; every file is known from the start.
    assert seen == [(5, 13), (8, 13), (11, 13), (12, 13)]


def test_cli_duplicates_remove_from_the_project_keeps_one_copy_and_the_files(tiny_model, folder):
    from vfmstudio.core.project import Project, open_project

    project = Project(folder.parent / "vfmstudio.json")  # the project file sits above the folder
    for path in sorted(folder.rglob("*.png")):
        project.add_image(path)
    project.labels.set_tags("photos/sub/again.png", ["copy"])
    project.save()
    model = str(tiny_model("dinov2"))
    proc = vfm(
        "duplicates",
        str(folder),
        "--model",
        model,
        "--threshold",
        "1",
        "--remove-from",
        str(project.path),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    removed = json.loads(proc.stdout)["removed"]
    assert removed == {
        "project": str(project.path),
        "keep": "first",
        "files": ["sub/again.png"],
        "not_in_project": 0,
    }
    again = open_project(project.path)
    assert "photos/sub/again.png" not in again.images and "photos/img2.png" in again.images
    assert "photos/sub/again.png" not in again.labels.tags
    assert (folder / "sub" / "again.png").exists()


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance (2 CPUs) for the Ray index test."""
    import ray  # part of the dev extra: CI runs this test, never skips it

    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    ctx = ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": env} if env else None,
    )
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


def test_indexing_on_ray_stores_the_vectors_the_local_engine_stores(
    tiny_model, folder, tmp_path, ray_address
):
    model = str(tiny_model("dinov2"))
    tool = get_host().tool("dino.embed")
    local = update_index(folder, model=model, tool=tool, params={}, services=_services())
    _write(folder / "broken.png", seed=0).write_bytes(b"not a png")
    on_ray = update_index(
        folder,
        model=model,
        tool=tool,
        params={},
        engine="ray",
        ray_address=ray_address,
        store_root=tmp_path / "ray-store",
    )
    assert (on_ray.report.embedded, on_ray.report.reused) == (5, 0)
    assert [f["path"] for f in on_ray.report.failed] == ["broken.png"]
    # The actors sent the vectors back; they wrote no prediction files.
    assert not list((tmp_path / "ray-store" / "run").rglob("predictions/*.json"))
    assert sorted(on_ray.store.ids) == sorted(local.store.ids)
    for image_id in local.store.ids:
        np.testing.assert_allclose(on_ray.store.vector(image_id), local.store.vector(image_id), atol=1e-5)
    assert on_ray.files_of() == local.files_of()

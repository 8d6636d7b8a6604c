"""``vfmstudio batch`` end to end, over both engines: outputs, resume, failures, batching, errors.

A cheap numpy plugin (``batch_plugin/vfmstudio_batchfake``) is installed through an entry point
in a temporary site folder, visible to this process, to subprocesses and to Ray workers.
Ray runs on one shared local 2-CPU instance for the whole module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfmstudio.cli import main
from vfmstudio.engines.outputs import iter_predictions, read_failures, read_manifest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).resolve().parent / "batch_plugin" / "vfmstudio_batchfake"
ENGINES = ("local", "ray")


@pytest.fixture(scope="module")
def ray_instance(fake_site):
    """One local Ray instance (2 CPUs) for every Ray test; its workers see the fake plugin."""
    import ray  # part of the dev extra: CI runs these tests, never skips them

    ctx = ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}},
    )
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture
def call_log(tmp_path):
    """``--param log=...`` and a reader of the lines the fake tool writes there: 'prepare N' per
    batched pass, 'forward ID' per single-image pass (from any process, Ray workers included)."""
    path = tmp_path / "calls.log"

    class Log:
        param = f"log={path}"

        def __call__(self):
            return path.read_text().splitlines() if path.exists() else []

    return Log()


def make_images(folder: Path, n: int, *, corrupt: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        where = folder / "sub" if i % 3 == 0 else folder
        pixels = rng.integers(0, 255, (24 + i % 5, 40 + i % 7, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(where / f"img{i}.png")
    for i in range(corrupt):
        (folder / f"broken{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg" if i % 2 else b"")
    return folder


def batch(*args: str, engine: str = "local", ray_address: str | None = None) -> int:
    argv = ["batch", *args, "--engine", engine]
    if engine == "ray" and ray_address:
        argv += ["--ray-address", ray_address]
    return main(argv)


def normalized(out: Path) -> dict[str, dict]:
    """Every prediction file by key, without the fields that differ between runs (time stamps)."""
    found = {}
    for path in sorted((out / "predictions").glob("*.json")):
        obj = json.loads(path.read_text())
        obj.pop("created"), obj.pop("timings")
        arrays = out / "arrays" / path.stem
        obj["arrays"] = {f.name: np.load(f).tolist() for f in sorted(arrays.glob("*.npy"))}
        found[path.stem] = obj
    return found


@pytest.fixture(params=ENGINES)
def engine(request, fake_site):
    if request.param == "ray":
        return "ray", request.getfixturevalue("ray_instance")
    return "local", None


def test_folder_gives_one_prediction_per_image_and_lists_corrupt_files(engine, tmp_path, call_log):
    name, address = engine
    src = make_images(tmp_path / "images", 10, corrupt=2)
    out = tmp_path / "out"
    code = batch(
        str(src),
        "--tool",
        "batchfake.stats",
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--param",
        "grid=70",
        "--param",
        call_log.param,
        engine=name,
        ray_address=address,
    )
    assert code == 0
    manifest = read_manifest(out)
    assert manifest["tool"] == "batchfake.stats" and manifest["params"]["grid"] == 70
    records = list(iter_predictions(out))
    assert len(records) == 10
    rels = sorted(rec["rel"] for rec, _ in records)
    assert "sub/img0.png" in rels and "img1.png" in rels
    for rec, pred in records:
        heat = pred.results[0]
        assert heat.values.shape == (70, 70)  # 4900 values: stored as a sidecar .npy
        pixels = np.asarray(Image.open(rec["path"]).convert("RGB"), dtype=np.float64).mean(axis=2)
        assert heat.values[0, 0] == pytest.approx(pixels[0, 0], abs=1e-3)  # 1x1-pixel cells at the corner
    assert len(list((out / "arrays").iterdir())) == 10
    failures = read_failures(out)
    assert sorted(f["rel"] for f in failures) == ["broken0.jpg", "broken1.jpg"]
    assert all(f["stage"] == "read" and f["reason"] for f in failures)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["engine"]) == (10, 2, name)
    # Batched preparation fills the cache for every image: no single-image forward pass.
    calls = call_log()
    assert not [c for c in calls if c.startswith("forward")]
    assert sum(int(c.split()[1]) for c in calls) == 10
    if name == "local":  # decoded images are batched as they come, corrupt files left out
        assert calls == ["prepare 4", "prepare 4", "prepare 2"]


def test_engines_write_identical_outputs(fake_site, ray_instance, tmp_path):
    src = make_images(tmp_path / "images", 9, corrupt=1)
    outs = {}
    for name in ENGINES:
        outs[name] = tmp_path / f"out-{name}"
        assert (
            batch(
                str(src),
                "--tool",
                "batchfake.stats",
                "--out",
                str(outs[name]),
                "--batch-size",
                "3",
                "--param",
                "grid=70",
                engine=name,
                ray_address=ray_instance,
            )
            == 0
        )
    local, ray = normalized(outs["local"]), normalized(outs["ray"])
    assert len(local) == 9 and local == ray
    strip = lambda fs: sorted((f["key"], f["stage"], f["reason"]) for f in fs)  # noqa: E731
    assert strip(read_failures(outs["local"])) == strip(read_failures(outs["ray"]))


def test_resume_skips_finished_images_and_retries_failed_ones(engine, tmp_path, call_log):
    name, address = engine
    src = make_images(tmp_path / "images", 6)
    out = tmp_path / "out"
    args = [
        str(src),
        "--tool",
        "batchfake.stats",
        "--out",
        str(out),
        "--batch-size",
        "2",
        "--param",
        call_log.param,
    ]
    assert batch(*args, "--limit", "4", engine=name, ray_address=address) == 0
    prepared = lambda: sum(int(c.split()[1]) for c in call_log() if c.startswith("prepare"))  # noqa: E731
    assert prepared() == 4
    assert batch(*args, "--resume", "--limit", "4", engine=name, ray_address=address) == 0
    assert prepared() == 4  # nothing was left to do
    assert batch(*args, "--resume", engine=name, ray_address=address) == 0  # the rest of the folder
    assert prepared() == 6 and len(list(iter_predictions(out))) == 6
    (src / "img1.png").write_bytes(b"broken now")  # changed since its prediction: done again
    os.utime(src / "img1.png", ns=(time.time_ns(), time.time_ns()))
    assert batch(*args, "--resume", engine=name, ray_address=address) == 0
    assert [f["rel"] for f in read_failures(out)] == ["img1.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["done"], summary["failed"]) == (5, 0, 1)
    assert prepared() == 6 and not [c for c in call_log() if c.startswith("forward")]


def test_killed_run_resumes_to_the_same_outputs(fake_site, tmp_path):
    src = make_images(tmp_path / "images", 24, corrupt=1)
    common = ["--tool", "batchfake.stats", "--batch-size", "2", "--param", "delay=0.1", "--param", "grid=70"]
    whole = tmp_path / "whole"
    assert batch(str(src), *common, "--out", str(whole)) == 0

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vfmstudio", "batch", str(src), *common, "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(list((out / "predictions").glob("*.json"))) < 6 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list((out / "predictions").glob("*.json")))
    assert 6 <= finished < 24, "the run should have been killed midway"

    assert batch(str(src), *common, "--out", str(out), "--resume") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] >= finished and summary["done"] + summary["skipped"] == 24
    assert normalized(out) == normalized(whole)
    assert [f["rel"] for f in read_failures(out)] == ["broken0.jpg"]
    assert not list(out.rglob(".tmp-*")) and not list(out.rglob(".*.tmp"))


def test_list_file_and_glob_sources(fake_site, tmp_path):
    src = make_images(tmp_path / "images", 5)
    listing = tmp_path / "list.txt"
    listing.write_text("# chosen images\nimages/img1.png\n\nimages/sub/img0.png\nimages/missing.png\n")
    out = tmp_path / "from-list"
    assert batch(str(listing), "--tool", "batchfake.stats", "--out", str(out)) == 0
    assert sorted(rec["rel"] for rec, _ in iter_predictions(out)) == ["img1.png", "sub/img0.png"]
    assert [(f["rel"], f["stage"]) for f in read_failures(out)] == [("missing.png", "read")]

    out = tmp_path / "from-glob"
    assert batch(str(src / "**" / "img*.png"), "--tool", "batchfake.stats", "--out", str(out)) == 0
    assert len(list(iter_predictions(out))) == 5


def test_bad_input_exits_2_with_one_line(fake_site, tmp_path, capsys):
    src = make_images(tmp_path / "images", 2)
    out = tmp_path / "out"
    cases = [
        (
            [str(tmp_path / "nowhere"), "--tool", "batchfake.stats", "--out", str(out)],
            "no such file or folder",
        ),
        ([str(src), "--tool", "batchfake.stat", "--out", str(out)], "did you mean batchfake.stats"),
        (
            [str(src), "--tool", "batchfake.stats", "--out", str(out), "--param", "grid=0"],
            "below the minimum",
        ),
        (
            [str(src), "--tool", "batchfake.stats", "--out", str(out), "--gpus-per-worker", "1"],
            "--engine ray",
        ),
        ([str(tmp_path / "empty"), "--tool", "batchfake.stats", "--out", str(out)], "no images found"),
    ]
    (tmp_path / "empty").mkdir()
    for argv, expected in cases:
        assert main(["batch", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert main(["batch", str(src), "--tool", "batchfake.stats", "--out", str(out)]) == 0
    assert main(["batch", str(src), "--tool", "batchfake.stats", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (
        main(
            [
                "batch",
                str(src),
                "--tool",
                "batchfake.stats",
                "--out",
                str(out),
                "--resume",
                "--param",
                "grid=3",
            ]
        )
        == 2
    )
    assert "params.grid: 8 then, 3 now" in capsys.readouterr().err


def test_a_tool_that_fails_on_everything_stops_early(fake_site, tmp_path, capsys):
    src = make_images(tmp_path / "images", 12)
    out = tmp_path / "out"
    # Every run fails with the same message: the run stops instead of booking 12 failures.
    code = main(
        [
            "batch",
            str(src),
            "--tool",
            "batchfake.stats",
            "--out",
            str(out),
            "--batch-size",
            "2",
            "--param",
            "fail_on=*",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "stopped: the tool failed on the first 3 images" in err
    assert len(read_failures(out)) == 3


def test_json_summary_and_ray_hint_without_ray(fake_site, tmp_path, capsys, monkeypatch):
    src = make_images(tmp_path / "images", 2)
    assert main(["batch", str(src), "--tool", "batchfake.stats", "--out", str(tmp_path / "o"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["done"] == 2 and summary["images_per_s"] > 0
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    assert (
        main(
            ["batch", str(src), "--tool", "batchfake.stats", "--out", str(tmp_path / "r"), "--engine", "ray"]
        )
        == 2
    )
    assert "pip install 'vfmstudio[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written: a rerun needs no --resume
    monkeypatch.undo()
    assert (
        main(
            [
                "batch",
                str(src),
                "--tool",
                "batchfake.stats",
                "--out",
                str(tmp_path / "r"),
                "--engine",
                "ray",
                "--ray-address",
                "127.0.0.1:1",
            ]
        )
        == 2
    )
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_real_tiny_dinov2_tool_matches_single_runs(fake_site, tiny_model, tmp_path, monkeypatch):
    """dinov2.pca through the same from_pretrained path users hit: every batch prediction equals a
    plain one-image run_tool. (Ray is covered by the tests above; a Ray worker importing torch
    would add ~15 s to this file for the same per-image code.)"""
    from vfmstudio._plugin_host import get_host
    from vfmstudio.core.image import load_image
    from vfmstudio.execution import Services, run_tool

    src = tmp_path / "photos"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(90, 120), (100, 100), (80, 140), (70, 70)]):
        coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((w, h), Image.BICUBIC).save(src / f"photo{i}.png")
    model = str(tiny_model("dinov2"))
    tool = get_host().tool("dinov2.pca")
    services = Services(models=_cache(), features=_cache())
    expected = {}
    for path in sorted(src.iterdir()):
        pred = run_tool(
            tool, [load_image(path)], {"resolution": 56}, model=model, device="cpu", services=services
        )
        expected[path.name] = pred.to_json()
    from vfmstudio.engines import worker

    made = []
    monkeypatch.setattr(worker, "batch_services", lambda: made.append(worker_services()) or made[-1])
    out = tmp_path / "out"
    assert (
        batch(
            str(src),
            "--tool",
            "dinov2.pca",
            "--model",
            model,
            "--param",
            "resolution=56",
            "--device",
            "cpu",
            "--batch-size",
            "3",
            "--out",
            str(out),
        )
        == 0
    )
    if tool.prepare:  # the plugin's batched preparation filled the cache: every run read its features
        assert made[0].features.stats()["hits"] >= 4
    records = list(iter_predictions(out))
    assert len(records) == 4
    for rec, pred in records:
        want = expected[Path(rec["path"]).name]
        got = pred.to_json()
        assert got["device"] == "cpu" and got["precision"] == "fp32" and got["model"] == model
        assert [r["type"] for r in got["results"]] == [r["type"] for r in want["results"]]
        for a, b in zip(got["results"], want["results"]):
            _assert_close(a, b)


def worker_services():
    from vfmstudio.execution import Services

    return Services(models=_cache(), features=_cache())


def _cache():
    from vfmstudio.core.cache import ByteLRUCache

    return ByteLRUCache(1 << 30)


def _assert_close(a, b, where="result"):
    """Equal JSON, floats to 1e-5 (torch may pick other kernels for another thread count)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        if a and all(isinstance(x, float | int) and not isinstance(x, bool) for x in a + b):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=where)
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5), where
    else:
        assert a == b, where

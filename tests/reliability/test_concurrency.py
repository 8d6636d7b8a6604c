"""200 rapid submit / cancel / switch-image cycles, in the core JobRunner and in the window: no
deadlock, no leaked thread, and every result that lands belongs to the image it was computed for."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import load_image
from vfmstudio.core.jobs import FINAL_STATUSES, THREAD_NAME, JobRunner
from vfmstudio.execution import Services, run_tool

CYCLES = 200


def wait_idle(qtbot, window, timeout=10000):
    qtbot.waitUntil(lambda: not window.jobs and window.runner.runner.pending() == 0, timeout=timeout)


@pytest.fixture
def five_images(tmp_path):
    folder = tmp_path / "five"
    folder.mkdir()
    for i in range(5):
        px = np.full((12 + i, 16 + i, 3), 40 * i + 10, np.uint8)  # each image has its own grey level
        Image.fromarray(px).save(folder / f"img{i}.png")
    return folder


def _expected(image, scale):
    return image.pixels.astype(np.float32).mean(axis=2) * scale


def test_core_runner_switching_images_never_mixes_results(faulty_host, five_images):
    images = [load_image(p) for p in sorted(five_images.iterdir())]
    services = Services(
        models=ByteLRUCache(1 << 20, name="models"), features=ByteLRUCache(1 << 16, name="features")
    )
    tool = faulty_host.tool("faulty.ok")
    rng = random.Random(7)
    before = {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)}
    runner = JobRunner()
    jobs, delivered = [], []
    lock = threading.Lock()

    def on_done(result):
        with lock:
            delivered.append(result.job_id)

    for i in range(CYCLES):
        image, scale = images[rng.randrange(5)], rng.choice([0.5, 1.0, 2.0])

        def work(ctx, image=image, scale=scale):
            prediction = run_tool(tool, [image], {"scale": scale}, cancel=ctx.cancel, services=services)
            return image, scale, prediction

        job = runner.submit(work, key=rng.choice(["view", "view", f"img{i % 5}"]), on_done=on_done)
        jobs.append(job)
        if rng.random() < 0.3:
            job.cancel()
        elif rng.random() < 0.1:
            rng.choice(jobs).cancel()
    results = [j.result(10) for j in jobs]  # a deadlock fails here, not by hanging the suite
    assert runner.shutdown(wait=True, timeout=10)
    assert all(r.status in FINAL_STATUSES for r in results)
    assert sorted(delivered) == sorted(j.job_id for j in jobs)  # on_done exactly once each
    done = [r for r in results if r.status == "done"]
    assert (
        done
        and any(r.status == "superseded" for r in results)
        and any(r.status == "cancelled" for r in results)
    )
    for r in done:
        image, scale, prediction = r.value
        assert prediction.image_ids == (image.id,)
        np.testing.assert_allclose(prediction.results[0].values, _expected(image, scale), rtol=1e-6)
    assert {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)} <= before
    assert services.features.total_bytes <= 1 << 16


def test_window_rapid_switching_lands_every_result_on_its_own_image(qtbot, faulty_window, five_images):
    w = faulty_window
    before = {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)}
    w.open_paths([five_images])
    paths = w.browser.paths()
    assert len(paths) == 5
    tool = w.host.tool("faulty.ok")
    rng = random.Random(11)
    submitted = 0
    for i in range(CYCLES):
        w.browser.list.setCurrentRow(rng.randrange(5))
        if w.submit_tool(tool, {"scale": rng.choice([0.5, 1.0, 2.0])}, live=rng.random() < 0.5) is not None:
            submitted += 1
        if rng.random() < 0.2:
            w.cancel_jobs()
        if i % 20 == 0:
            qtbot.wait(1)  # let some results land while the storm goes on
    wait_idle(qtbot, w, timeout=20000)
    assert submitted == CYCLES
    landed = 0
    for path in paths:
        image = load_image(path)
        prediction = w.session.prediction(image.id, "faulty.ok")
        if prediction is None:
            continue
        landed += 1
        assert prediction.image_ids == (image.id,)
        values = prediction.results[0].values
        assert values.shape == (image.height, image.width)
        np.testing.assert_allclose(values, _expected(image, prediction.params["scale"]), rtol=1e-6)
        for layer in w.layer_store.layers(image.id):
            assert layer.prediction.image_ids == (image.id,)
    assert landed >= 1
    # The window is still usable: a plain run on the image on view finishes and lands there.
    w.browser.list.setCurrentRow(2)
    qtbot.waitUntil(lambda: w.current is not None and w.current_path == paths[2], timeout=5000)
    w.submit_tool(tool, {"scale": 3.0})
    wait_idle(qtbot, w)
    assert w.session.prediction(w.current.id, "faulty.ok").params["scale"] == 3.0
    w.close()  # shuts the runner down: its inference thread ends
    qtbot.waitUntil(
        lambda: {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME)} <= before, timeout=5000
    )

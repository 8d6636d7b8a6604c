"""Prefetch with a real tiny DINOv2: stepping to a prefetched image runs no forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfmstudio._plugin_host import PluginHost
from vfmstudio.core.image import load_image
from vfmstudio.core.jobs import JobRunner
from vfmstudio.execution import Services, run_tool
from vfmstudio.prefetch import Prefetcher, PrefetchRequest


@pytest.fixture
def forwards(monkeypatch):
    import transformers.models.dinov2.modeling_dinov2 as modeling

    calls = {"n": 0, "batch": []}
    forward = modeling.Dinov2Model.forward

    def counting_forward(self, pixel_values=None, *args, **kwargs):
        calls["n"] += 1
        calls["batch"].append(int(pixel_values.shape[0]))
        return forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(modeling.Dinov2Model, "forward", counting_forward)
    return calls


@pytest.fixture
def folder(tmp_path) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for i, (w, h) in enumerate([(70, 56), (84, 56), (56, 70), (56, 56)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_stepping_to_a_prefetched_image_runs_no_forward(tiny_model, folder, forwards):
    tool = PluginHost(builtins=("vfmstudio_dinov2",), entry_points=False).load().tools["dinov2.pca"]
    model = str(tiny_model("dinov2"))
    services = Services.create()
    params = {"resolution": 56}
    runner = JobRunner(thread_name="test-prefetch-dinov2")
    try:
        run_tool(tool, [load_image(folder[0])], params, model=model, device="cpu", services=services)
        assert forwards["n"] == 1
        pf = Prefetcher(runner, load_image, services=services, ahead=2)
        jobs = pf.schedule(folder, folder[0], PrefetchRequest(tool, params, model, "cpu", "auto"))
        assert [j.result(timeout=60).status for j in jobs] == ["done", "done"]
        assert forwards["batch"][1:] == [1, 1]  # one image per job: a user job waits one forward at most

        before = forwards["n"]
        for path in folder[1:3]:
            prediction = run_tool(
                tool, [load_image(path)], params, model=model, device="cpu", services=services
            )
            assert prediction.results
        assert forwards["n"] == before  # both steps read prefetched features
        run_tool(tool, [load_image(folder[3])], params, model=model, device="cpu", services=services)
        assert forwards["n"] == before + 1  # beyond the prefetch window: computed on demand
    finally:
        runner.shutdown(wait=True, timeout=10)

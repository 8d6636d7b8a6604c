"""A long session through the tiny DINOv2 with a small feature budget: the caches never exceed their
byte budgets, process memory stays flat, and reruns on cached images still skip the forward pass."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest
from PIL import Image

from vfmstudio.core.cache import ByteLRUCache
from vfmstudio.core.image import load_image
from vfmstudio.execution import Services, run_tool

N_IMAGES = 40


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as fp:
        return int(fp.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def forward_counter(monkeypatch):
    import transformers

    calls = {"n": 0}
    original = transformers.Dinov2Model.forward

    def forward(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Dinov2Model, "forward", forward)
    return calls


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc (Linux)")
def test_long_session_keeps_the_caches_within_budget(tmp_path, tiny_model, forward_counter):
    from vfmstudio._plugin_host import PluginHost

    tool = PluginHost(safe_mode=True, entry_points=False).load().tool("dinov2.pca")
    model = str(tiny_model("dinov2"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N_IMAGES):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(rng.integers(0, 255, (48 + i % 5, 64, 3), np.uint8)).save(paths[-1])

    def run(svc, path, threshold="auto"):
        return run_tool(
            tool,
            [load_image(path)],
            {"resolution": 28, "threshold": threshold},
            model=model,
            device="cpu",
            services=svc,
        )

    # Measure what one image's features cost, then allow about three images' worth.
    probe = Services(
        models=ByteLRUCache(1 << 30, name="models"), features=ByteLRUCache(1 << 30, name="features")
    )
    run(probe, paths[0])
    per_image = probe.features.total_bytes
    assert per_image > 0
    budget = int(per_image * 3.5)
    svc = Services(
        models=ByteLRUCache(1 << 30, name="models"), features=ByteLRUCache(budget, name="features")
    )

    rss_after = {}
    for i, path in enumerate(paths):
        run(svc, path)
        assert svc.features.total_bytes <= budget
        if i == 0:
            models_loaded = len(svc.models)
        if i in (9, N_IMAGES - 1):
            gc.collect()
            rss_after[i] = rss_bytes()
    # 30 more images through a bounded cache: no growth beyond allocator noise.
    assert rss_after[N_IMAGES - 1] - rss_after[9] < 64 << 20, rss_after

    calls = forward_counter["n"]
    run(svc, paths[-1], threshold=0.3)  # an edit on the image on view: cached features
    assert forward_counter["n"] == calls
    run(svc, paths[0], threshold=0.3)  # long evicted: computed again, once
    assert forward_counter["n"] == calls + 1
    assert svc.features.total_bytes <= budget
    assert len(svc.models) == models_loaded  # loaded once for the whole session

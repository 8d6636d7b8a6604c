"""Shared fixtures. Tiny checkpoints are built once per test session into a temp folder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests never reach a model hub: everything is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_model(tiny_models_root):
    """``tiny_model("dinov2")`` -> path of a tiny random checkpoint, built once per session."""
    from vfmstudio.testing.fixtures import tiny_model_dir

    def build(name: str):
        return tiny_model_dir(name, tiny_models_root)

    return build


@pytest.fixture
def isolated_hub(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache for one test."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A stand-in hub on 127.0.0.1 (vfmstudio.testing.fake_hub), with HF_ENDPOINT pointed at it and an
    empty cache and token home in tmp_path; the network is allowed for this test only."""
    from vfmstudio.testing.fake_hub import FakeHub

    with FakeHub() as fake:
        for name, value in fake.environment(tmp_path / "hf-home").items():
            monkeypatch.setenv(name, value)
        for name in (
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
        ):
            monkeypatch.delenv(name, raising=False)
        yield fake


# The slow tier, named in one place (other test files need no edit): modules that load real tiny
# models or start subprocesses per test, and single tests that take seconds. `make test-fast` leaves
# them out (`-m "not slow"`); `make test` and CI run everything.
SLOW_MODULES = {
    "tests/e2e/test_batch.py",
    "tests/e2e/test_batch_parts.py",
    "tests/e2e/test_cli.py",
    "tests/plugins/test_formats_fuzz.py",
    "tests/plugins/test_paligemma_parsing.py",
    "tests/qt/test_startup.py",
    "tests/plugins/test_clip_classify.py",
    "tests/plugins/test_clip_plugin.py",
    "tests/plugins/test_clip_search.py",
    "tests/plugins/test_clip_segment.py",
    "tests/plugins/test_compile_setting.py",
    "tests/plugins/test_device_preprocess.py",
    "tests/plugins/test_dinov2_cli.py",
    "tests/plugins/test_dinov2_features.py",
    "tests/plugins/test_dinov2_refmasks.py",
    "tests/plugins/test_dinov2_tools.py",
    "tests/plugins/test_paligemma_tools.py",
    "tests/plugins/test_paligemma_mask_decoder.py",
    "tests/plugins/test_prefetch_dinov2.py",
    "tests/plugins/test_tiny_dinov2.py",
    "tests/qt/test_real_dinov2.py",
    "tests/qt/test_prefetch_window.py",
    "tests/reliability/test_memory.py",
    "tests/reliability/test_real_process.py",
    "tests/reliability/test_hostile_cli.py",
    "tests/reliability/test_runtime_faults.py",
    "tests/unit/test_project_crash.py",
    # This round's modules that load tiny models, start servers or subprocesses per test.
    "tests/e2e/test_index.py",
    "tests/e2e/test_models_pull.py",
    "tests/unit/test_download.py",
    "tests/plugins/test_sam_cli.py",
    "tests/plugins/test_sam_reference.py",
    "tests/plugins/test_sam_tools.py",
    "tests/plugins/test_tiny_sam.py",
    "tests/plugins/test_sam3_text.py",
    "tests/plugins/test_sam_chunking.py",
    "tests/qt/test_sam3_window.py",
    "tests/plugins/test_dinov3.py",
    "tests/plugins/test_siglip2.py",
    "tests/qt/test_model_manager.py",
    "tests/qt/test_smart_tool.py",
    "tests/qt/test_explore.py",
    "tests/reliability/test_tool_isolation.py",
    "tests/reliability/test_plugin_faults.py",
    "tests/reliability/test_two_writers.py",
    "tests/reliability/test_external_programs.py",
    "tests/plugin_host/test_probe.py",
}
SLOW_TESTS = {
    "test_random_edit_sequences_undo_and_redo_exactly",
    "test_mask_to_polygons_rasterises_back_exactly",
    "test_encode_equals_pycocotools",
    "test_project_masks_decode_like_the_reference_decoder",
    "test_third_party_plugin_runs_and_broken_one_is_reported",
    "test_unknown_tool_and_bad_param_exit_2",
    "test_window_stays_responsive_while_exporting_and_the_export_can_be_cancelled",
    "test_random_json_as_a_project_is_refused_in_one_line",
    "test_random_json_as_annotation_files",
    "test_never_raises_and_only_returns_valid_objects",
    "test_a_broken_third_party_plugin_in_the_window_and_safe_mode",
    "test_killed_run_into_a_project_continues_to_what_batch_out_writes",
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        rel = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if rel in SLOW_MODULES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)

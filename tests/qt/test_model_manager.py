"""Models in the window, against the stand-in hub on 127.0.0.1: the model manager (every known model,
size, access, cached state; Download with progress, Cancel, resume; the token prompt for gated models),
the "Browse for a local folder…" entry, and the README's first run: pick a tool, Run, accept the
download, see the result."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from vfmstudio.testing.fake_hub import random_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from conftest import build_window, fake_plugin_host, open_and_wait  # noqa: E402

WAIT_MS = 60_000


@pytest.fixture
def manager(qtbot, fake_host, tmp_path, fake_hub):
    from vfmstudio.qt.model_manager import open_model_manager

    window = build_window(qtbot, fake_host, tmp_path)
    dialog = open_model_manager(window)
    yield dialog
    dialog.close()
    window.close()


def test_lists_every_known_model_with_size_access_and_state(manager, fake_hub):
    from vfmstudio.ml.catalog import list_models
    from vfmstudio.qt.model_manager import COLUMNS

    models = list_models()
    table = manager.table
    assert table.rowCount() == len(models)
    rows = {
        table.item(r, 0).data(Qt.ItemDataRole.UserRole): [
            table.item(r, c).text() for c in range(len(COLUMNS))
        ]
        for r in range(table.rowCount())
    }
    assert {cells[1] for cells in rows.values()} == {m["family"] for m in models}
    for m in models:
        cells = rows[m["ref"]]
        assert m["ref"] in cells[0] and m["size"] in cells[2]
        assert ("gated" in cells[3]) == m["gated"]
        assert cells[4] == "not downloaded"
    assert not manager.download_button.isEnabled()  # nothing selected yet


def test_download_with_progress_cancel_and_resume(qtbot, manager, fake_hub):
    from vfmstudio.ml.download import partial_bytes

    ref = "facebook/dinov2-small"
    files = random_checkpoint()
    fake_hub.add_repo(ref, {k: files[k] for k in ("config.json", "model.safetensors")})
    fake_hub.fault, fake_hub.trickle_interval_s = "trickle", 0.002
    assert manager.select(ref)
    qtbot.mouseClick(manager.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "model.safetensors" in manager.status.text(), timeout=WAIT_MS)
    assert manager.state_of(ref).startswith("downloading")
    assert "/s" in manager.status.text() and manager.cancel_button.isEnabled()

    qtbot.mouseClick(manager.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: manager.state_of(ref).startswith("partly downloaded"), timeout=WAIT_MS)
    kept = partial_bytes(ref)
    assert kept > 0 and "cancelled" in manager.status.text()

    fake_hub.fault = None
    qtbot.mouseClick(manager.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: manager.state_of(ref) == "cached", timeout=WAIT_MS)
    assert fake_hub.file_requests("model.safetensors")[-1]["range"] == f"bytes={kept}-"
    assert manager.progress.value() == 1000 and not manager.download_button.isEnabled()
    row = manager._row_of(ref)
    assert "on disk" in manager.table.item(row, 2).text()


def test_quitting_stops_a_running_download(qtbot, manager, fake_hub):
    """The download thread is not a daemon: shutting the downloader down (window closed, app quitting)
    cancels a download blocked on a silent hub instead of waiting for it."""
    ref = "facebook/dinov2-small"
    fake_hub.add_repo(ref, random_checkpoint())
    fake_hub.fault = "stall"
    manager.select(ref)
    qtbot.mouseClick(manager.download_button, Qt.MouseButton.LeftButton)
    assert fake_hub.first_body_byte.wait(30)
    assert manager.downloads.shutdown(timeout=10)  # True: the thread has stopped


def test_gated_model_asks_for_a_token_stores_it_and_downloads(qtbot, manager, fake_hub, tmp_path):
    from vfmstudio.qt.download_dialog import TokenDialog

    ref = "google/paligemma2-3b-mix-224"
    fake_hub.add_repo(ref, random_checkpoint(n_floats=100), gated=True, token="hf_good")
    assert manager.select(ref)
    qtbot.mouseClick(manager.download_button, Qt.MouseButton.LeftButton)
    prompt = manager.findChild(TokenDialog)
    assert prompt is not None and prompt.isVisible()
    prompt.edit.setText("two words")
    qtbot.mouseClick(prompt.save_button, Qt.MouseButton.LeftButton)
    assert prompt.isVisible() and "token" in prompt.error.text()  # refused, nothing stored
    prompt.edit.setText("hf_good")
    qtbot.mouseClick(prompt.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: manager.state_of(ref) == "cached", timeout=WAIT_MS)
    assert (tmp_path / "hf-home" / "token").read_text() == "hf_good"


def test_a_wrong_token_gives_the_gated_message_and_a_new_prompt(qtbot, manager, fake_hub):
    from vfmstudio.ml.hub_auth import store_token
    from vfmstudio.qt.download_dialog import TokenDialog

    ref = "google/paligemma2-3b-mix-448"
    fake_hub.add_repo(ref, random_checkpoint(n_floats=100), gated=True, token="hf_good")
    store_token("hf_stale")
    manager.select(ref)
    qtbot.mouseClick(manager.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "gated" in manager.status.text(), timeout=WAIT_MS)
    assert "licence" in manager.status.text() and manager.state_of(ref) == "not downloaded"
    assert any(d.isVisible() for d in manager.findChildren(TokenDialog))


def test_browse_for_a_local_folder_in_the_model_box(qtbot, window, monkeypatch, tmp_path):
    from vfmstudio.qt import model_picker

    assert window.tools.select_tool("fake.pca")
    combo = window.tools.model_combo
    browse = combo.findData(model_picker.BROWSE)
    assert browse == combo.count() - 1 and combo.itemText(browse) == model_picker.BROWSE_TEXT
    before = window.tools.model_ref()

    monkeypatch.setattr(model_picker, "choose_folder", lambda parent: "")  # the user cancels
    combo.setCurrentIndex(browse)
    combo.activated.emit(browse)
    assert window.tools.model_ref() == before

    folder = str(tmp_path / "my-model")
    monkeypatch.setattr(model_picker, "choose_folder", lambda parent: folder)
    combo.setCurrentIndex(browse)
    combo.activated.emit(browse)
    assert window.tools.model_ref() == folder
    assert combo.findData(model_picker.BROWSE) == combo.count() - 1  # still last


def test_readme_first_run_pick_a_tool_run_accept_the_download_see_the_result(
    qtbot, monkeypatch, tmp_path, tiny_model, image_folder, fake_hub
):
    """The default model of dinov2.pca is not downloaded: Run offers it, one click downloads it from
    the stand-in hub through the normal `from_pretrained` path, and the tool runs."""
    from vfmstudio.ml.hub import is_cached
    from vfmstudio.qt.download_dialog import DownloadDialog

    fake_hub.add_repo("facebook/dinov2-small", tiny_model("dinov2"))
    window = build_window(qtbot, fake_plugin_host(monkeypatch, "vfmstudio_dinov2"), tmp_path)
    image = open_and_wait(qtbot, window, image_folder, 0)
    assert window.tools.select_tool("dinov2.pca")
    assert window.tools.model_ref() == "facebook/dinov2-small"
    window.tools.form.set_value("resolution", 56)

    qtbot.mouseClick(window.tools.run_button, Qt.MouseButton.LeftButton)
    offer = window.findChild(DownloadDialog)
    assert offer is not None and offer.isVisible() and not window.jobs  # nothing runs before the download
    qtbot.mouseClick(offer.download_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(
        lambda: "feature_image" in {la.kind for la in window.layer_store.layers(image.id)}, timeout=120_000
    )
    assert is_cached("facebook/dinov2-small")
    combo = window.tools.model_combo
    assert "cached" in combo.itemText(combo.findData("facebook/dinov2-small"))
    assert "not downloaded" not in combo.itemText(combo.findData("facebook/dinov2-small"))
    assert not window.messages.texts("error"), window.messages.texts("error")
    window.close()


def test_declining_the_offer_runs_nothing_and_offline_runs_offer_nothing(
    qtbot, window, image_folder, fake_hub, monkeypatch
):
    from vfmstudio.qt.download_dialog import DownloadDialog

    fake_hub.add_repo("fake/tiny", random_checkpoint(n_floats=100))
    open_and_wait(qtbot, window, image_folder, 0)
    assert window.tools.select_tool("fake.pca") and window.tools.model_ref() == "fake/tiny"
    assert window.run_current_tool() is None
    offer = window.findChild(DownloadDialog)
    assert offer is not None and offer.isVisible()
    qtbot.mouseClick(offer.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.findChild(DownloadDialog) is None, timeout=WAIT_MS)  # closed and deleted
    assert not window.jobs and not fake_hub.requests

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing can be downloaded: Run goes ahead as before
    assert window.run_current_tool() is not None
    assert window.findChild(DownloadDialog) is None
    qtbot.waitUntil(lambda: not window.jobs, timeout=WAIT_MS)


def test_run_offer_for_a_gated_model_takes_a_token_then_runs(qtbot, window, image_folder, fake_hub, tmp_path):
    from vfmstudio.qt.download_dialog import DownloadDialog, TokenDialog

    fake_hub.add_repo("fake/tiny", random_checkpoint(n_floats=100), gated=True, token="hf_ok")
    open_and_wait(qtbot, window, image_folder, 0)
    assert window.tools.select_tool("fake.pca")
    window.run_current_tool()
    offer = window.findChild(DownloadDialog)
    qtbot.mouseClick(offer.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "gated" in offer.detail.text(), timeout=WAIT_MS)
    assert offer.token_button.isVisible() and offer.download_button.text() == "Try again" and not window.jobs

    qtbot.mouseClick(offer.token_button, Qt.MouseButton.LeftButton)
    prompt = offer.findChild(TokenDialog)
    prompt.edit.setText("hf_ok")
    qtbot.mouseClick(prompt.save_button, Qt.MouseButton.LeftButton)  # stores it and downloads again
    qtbot.waitUntil(lambda: window.findChild(DownloadDialog) is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.jobs, timeout=WAIT_MS)
    assert (tmp_path / "hf-home" / "token").read_text() == "hf_ok"
    assert any(text.startswith("fake.pca on img0.png") for text in window.messages.texts("info"))  # it ran


def test_a_run_that_failed_for_its_model_offers_the_download_and_resubmits(
    qtbot, window, fake_hub, monkeypatch
):
    """RunController.on_model_missing (e.g. a click-run refused by a gated hub on the inference thread)."""
    from types import SimpleNamespace

    from vfmstudio.qt.download_dialog import DownloadDialog

    fake_hub.add_repo("fake/tiny", random_checkpoint(n_floats=100))
    submitted = []
    monkeypatch.setattr(window.controller, "submit", submitted.append)
    request = SimpleNamespace(model="fake/tiny")
    message = "model 'fake/tiny' is gated: accept its licence on https://huggingface.co/fake/tiny, ..."
    assert window.controller.on_model_missing(request, message) is True
    offer = window.findChild(DownloadDialog)
    assert offer.detail.text() == message and offer.token_button.isVisible()
    qtbot.mouseClick(offer.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: submitted == [request], timeout=WAIT_MS)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing to offer: the error is posted as before
    assert window.controller.on_model_missing(SimpleNamespace(model="fake/other"), "offline") is False

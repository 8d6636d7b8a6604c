"""The download engine against the stand-in hub on 127.0.0.1: cache layout, resume after a dropped
connection, prompt cancel, deadlines against a trickling or silent hub, gated repos and tokens.

No wall-clock assertions: deadlines are set small through parameters, and promptness is checked with
events, joins with generous timeouts and byte counts.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.ml import hub, hub_auth
from vfmstudio.ml.download import Deadlines, SnapshotDownload, partial_bytes
from vfmstudio.ml.errors import (
    GatedModelError,
    HubTimeoutError,
    ModelError,
    ModelNotAvailableError,
    UnsafeModelError,
)
from vfmstudio.testing.fake_hub import random_checkpoint

REPO = "tiny-org/tiny-model"
RELAXED = Deadlines(connect_s=5, idle_s=60, request_s=120, min_rate=1, rate_window_s=600)


def repo_files() -> dict[str, bytes]:
    return random_checkpoint()


WANTED = ("config.json", "model.safetensors", "preprocessor_config.json")


def fetched(fake) -> set[str]:
    return {r["path"].rsplit("/", 1)[-1] for r in fake.requests if "/resolve/" in r["path"]}


def test_download_lands_in_the_hf_cache_layout_with_progress(fake_hub):
    files = repo_files()
    repo = fake_hub.add_repo(REPO, files)
    seen = []
    path = SnapshotDownload(REPO, progress=seen.append, deadlines=RELAXED).run()

    cache = hub.hub_cache_dir()
    storage = cache / "models--tiny-org--tiny-model"
    assert path == storage / "snapshots" / repo.commit
    assert (storage / "refs" / "main").read_text() == repo.commit
    for name in WANTED:
        pointer = path / name
        assert pointer.is_symlink() and pointer.read_bytes() == files[name]
        assert pointer.resolve().parent == (storage / "blobs").resolve()
    assert fetched(fake_hub) == set(WANTED)  # never code, pickle or sub-folders
    assert not list((storage / "blobs").glob("*.incomplete"))

    # huggingface_hub reads it as its own download, offline.
    from huggingface_hub import snapshot_download, try_to_load_from_cache

    assert try_to_load_from_cache(REPO, "model.safetensors", cache_dir=str(cache)) == str(
        path / "model.safetensors"
    )
    assert Path(snapshot_download(REPO, cache_dir=str(cache), local_files_only=True)) == path
    assert hub.is_cached(REPO)

    total = sum(len(files[n]) for n in WANTED)
    assert seen[-1].done == seen[-1].total == total
    assert seen[-1].files_done == seen[-1].files_total == 3
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert "/" in seen[-1].describe() and "/s" in seen[-1].describe()


def test_a_second_download_fetches_nothing(fake_hub):
    fake_hub.add_repo(REPO, repo_files())
    first = SnapshotDownload(REPO, deadlines=RELAXED).run()
    fake_hub.requests.clear()
    assert SnapshotDownload(REPO, deadlines=RELAXED).run() == first
    assert [r["path"] for r in fake_hub.requests] == [f"/api/models/{REPO}/revision/main"]


def test_resumes_with_a_range_request_after_a_dropped_connection(fake_hub):
    files = repo_files()
    fake_hub.add_repo(REPO, files)
    fake_hub.fault, fake_hub.drop_after, fake_hub.drops_left = "drop", 64 * 1024, 1
    download = SnapshotDownload(REPO, deadlines=RELAXED)
    path = download.run()

    assert download.drops == 1 and fake_hub.drops_left == 0
    gets = [r for r in fake_hub.file_requests("model.safetensors") if r["method"] == "GET"]
    assert len(gets) == 2 and gets[0]["range"] is None
    start = int(gets[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 64 * 1024  # only the rest was asked for
    assert (path / "model.safetensors").read_bytes() == files["model.safetensors"]


def test_gives_up_with_one_line_when_the_connection_keeps_dropping(fake_hub):
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.fault, fake_hub.drop_after, fake_hub.drops_left = "drop", 0, 100  # no byte ever arrives
    with pytest.raises(ModelError, match="keeps dropping") as info:
        SnapshotDownload(REPO, deadlines=RELAXED).run()
    assert "\n" not in str(info.value)


def _run_in_thread(download: SnapshotDownload) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["path"] = download.run()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, outcome


def test_cancel_interrupts_a_read_blocked_on_a_silent_hub(fake_hub):
    """The hub sends headers and then nothing: the read blocks in the kernel until the idle timeout
    (60 s here). Cancel must not wait for it: the socket is shut down under the read."""
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.fault = "stall"
    token = CancelToken()
    thread, outcome = _run_in_thread(SnapshotDownload(REPO, cancel=token, deadlines=RELAXED))
    assert fake_hub.first_body_byte.wait(10)  # the download is inside a file body now
    token.cancel()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), Cancelled)


def test_cancel_interrupts_a_pooled_connection_waiting_for_headers(fake_hub):
    """The file request reuses the listing's keep-alive connection (no connect event) and the hub never
    answers it: cancel must still cut it rather than wait for the idle timeout."""
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.fault = "stall_headers"
    token = CancelToken()
    thread, outcome = _run_in_thread(SnapshotDownload(REPO, cancel=token, deadlines=RELAXED))
    assert fake_hub.headers_stalled.wait(10)
    token.cancel()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), Cancelled)
    assert len([r for r in fake_hub.requests if "/api/" in r["path"]]) == 1


def test_cancel_keeps_the_partial_file_and_the_next_download_resumes_it(fake_hub):
    files = repo_files()
    fake_hub.add_repo(REPO, {k: v for k, v in files.items() if k in ("config.json", "model.safetensors")})
    fake_hub.fault, fake_hub.trickle_interval_s = "trickle", 0.002
    token = CancelToken()
    reached = threading.Event()

    def progress(p) -> None:
        if p.file == "model.safetensors" and p.done > 300:
            reached.set()

    thread, outcome = _run_in_thread(
        SnapshotDownload(REPO, cancel=token, progress=progress, deadlines=RELAXED)
    )
    assert reached.wait(30)
    token.cancel()
    thread.join(timeout=10)
    assert not thread.is_alive() and isinstance(outcome.get("error"), Cancelled)
    kept = partial_bytes(REPO)
    size = len(files["model.safetensors"])
    assert 0 < kept < size and fake_hub.bytes_by_target["files"] < size  # it stopped well before the end

    fake_hub.fault = None
    path = SnapshotDownload(REPO, deadlines=RELAXED).run()
    last = fake_hub.file_requests("model.safetensors")[-1]
    assert last["range"] == f"bytes={kept}-"
    assert (path / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert partial_bytes(REPO) == 0


@pytest.mark.parametrize("target", ["api", "files"])
def test_a_hub_trickling_one_byte_a_second_is_cut_by_the_deadline(fake_hub, target):
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.fault, fake_hub.fault_target = "trickle", target  # one byte per second (the default)
    limits = Deadlines(connect_s=5, idle_s=30, request_s=1.5, min_rate=1e6, rate_window_s=600)
    with pytest.raises(HubTimeoutError) as info:
        SnapshotDownload(REPO, deadlines=limits).run()
    text = str(info.value)
    assert "\n" not in text and "deadline" in text and "resume" in text
    assert ("repo listing" if target == "api" else "config.json") in text
    assert fake_hub.bytes_by_target[target] < 10


def test_a_trickle_below_the_minimum_rate_is_cut_before_the_total_deadline(fake_hub):
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.fault = "trickle"
    limits = Deadlines(connect_s=5, idle_s=30, request_s=600, min_rate=1000, rate_window_s=1.5)
    with pytest.raises(HubTimeoutError, match="sent only .* in 1.5 s"):
        SnapshotDownload(REPO, deadlines=limits).run()


def test_a_silent_hub_is_cut_by_the_idle_timeout(fake_hub):
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.fault, fake_hub.fault_target = "stall", "api"
    limits = Deadlines(connect_s=5, idle_s=1, request_s=600, min_rate=1, rate_window_s=600)
    with pytest.raises(HubTimeoutError, match="sent nothing for 1 s"):
        SnapshotDownload(REPO, deadlines=limits).run()


def test_gated_repo_answers_401_until_a_token_is_stored(fake_hub, tmp_path):
    fake_hub.add_repo(REPO, repo_files(), gated=True, token="hf_letmein")
    with pytest.raises(GatedModelError) as info:
        SnapshotDownload(REPO, deadlines=RELAXED).run()
    text = str(info.value)
    assert "\n" not in text and "licence" in text and "access token" in text and REPO in text
    assert any(r["path"].endswith("/config.json") for r in fake_hub.requests)

    hub_auth.store_token("hf_wrong")
    with pytest.raises(GatedModelError, match="check that your access token"):
        SnapshotDownload(REPO, deadlines=RELAXED).run()

    stored = hub_auth.store_token("  hf_letmein\n")
    assert stored == tmp_path / "hf-home" / "token"  # where huggingface_hub reads it under HF_HOME
    assert stored.read_text() == "hf_letmein" and stored.stat().st_mode & 0o777 == 0o600
    assert SnapshotDownload(REPO, deadlines=RELAXED).run().is_dir()
    assert all(r["auth"] == "Bearer hf_letmein" for r in fake_hub.requests[-3:])


def test_bad_tokens_are_refused_before_storing(fake_hub):
    for bad in ("", "   ", "two words", "tab\there"):
        with pytest.raises(ModelError, match="token"):
            hub_auth.store_token(bad)
    assert not hub_auth.token_path().exists()


def test_unknown_repo_revision_and_pickle_only_repos(fake_hub):
    with pytest.raises(ModelError, match="no such model 'tiny-org/none'"):
        SnapshotDownload("tiny-org/none", deadlines=RELAXED).run()
    fake_hub.add_repo(REPO, repo_files())
    with pytest.raises(ModelError, match="no revision 'v9'"):
        SnapshotDownload(f"{REPO}@v9", deadlines=RELAXED).run()
    fake_hub.add_repo("tiny-org/pickled", {"config.json": b"{}", "pytorch_model.bin": b"PK"})
    with pytest.raises(UnsafeModelError):
        SnapshotDownload("tiny-org/pickled", deadlines=RELAXED).run()
    assert fetched(fake_hub) == set()


def test_damaged_download_is_removed(fake_hub):
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.corrupt.add("model.safetensors")  # the listing announces the true checksum; other bytes arrive
    with pytest.raises(ModelError, match="arrived damaged .*checksum") as info:
        SnapshotDownload(REPO, deadlines=RELAXED).run()
    assert "\n" not in str(info.value)
    assert partial_bytes(REPO) == 0 and not hub.is_cached(REPO)


def test_a_body_longer_than_announced_is_stopped(fake_hub):
    fake_hub.add_repo(REPO, repo_files())
    fake_hub.oversize["model.safetensors"] = 10 << 20  # a hub that would fill the disk
    with pytest.raises(ModelError, match="sent more than .* it announced for model.safetensors"):
        SnapshotDownload(REPO, deadlines=RELAXED).run()
    assert partial_bytes(REPO) == 0 and fake_hub.bytes_by_target["files"] < (10 << 20)


def test_listed_names_never_leave_the_snapshot_folder(fake_hub, tmp_path):
    files = repo_files()
    hostile = {"..\\..\\escape.json": b"{}", "..": b"x", "C:evil.json": b"{}", "bad\x1b[2J.json": b"{}"}
    repo = fake_hub.add_repo(REPO, {**files, **hostile})
    path = SnapshotDownload(REPO, deadlines=RELAXED).run()
    assert fetched(fake_hub) == set(WANTED)
    assert sorted(p.name for p in path.iterdir()) == sorted(WANTED)
    assert path == hub.hub_cache_dir() / "models--tiny-org--tiny-model" / "snapshots" / repo.commit


def test_pull_uses_the_engine_and_falls_back_to_a_complete_cache_when_the_hub_is_down(fake_hub, monkeypatch):
    fake_hub.add_repo(REPO, repo_files())
    path = hub.pull(REPO, deadlines=RELAXED)
    assert hub.is_cached(REPO)
    fake_hub.stop()  # the hub goes away: the complete copy is still served
    assert hub.pull(REPO, deadlines=RELAXED) == path
    with pytest.raises(ModelNotAvailableError, match="cannot connect"):
        hub.pull("tiny-org/other", deadlines=RELAXED)


def test_the_stand_in_hub_speaks_huggingface_hubs_protocol_and_shares_its_cache(fake_hub, monkeypatch):
    """huggingface_hub's own hf_hub_download works against the stand-in hub, and finds our download as
    its own (a HEAD for the metadata, no GET of the file again)."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # frozen at import from the test environment
    files = repo_files()
    repo = fake_hub.add_repo(REPO, files)
    cache = str(hub.hub_cache_dir())
    theirs = huggingface_hub.hf_hub_download(
        REPO, "preprocessor_config.json", cache_dir=cache, endpoint=fake_hub.url
    )
    assert Path(theirs).read_bytes() == files["preprocessor_config.json"]
    path = SnapshotDownload(REPO, deadlines=RELAXED).run()
    assert Path(theirs) == path / "preprocessor_config.json"  # the same snapshot folder and blob
    fake_hub.requests.clear()
    again = huggingface_hub.hf_hub_download(REPO, "model.safetensors", cache_dir=cache, endpoint=fake_hub.url)
    assert Path(again) == path / "model.safetensors"
    assert [r["method"] for r in fake_hub.requests] == ["HEAD"]
    assert repo.commit in again

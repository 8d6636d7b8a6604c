"""Hub resolution without network: HF_HUB_CACHE points at a temp folder; nothing is downloaded."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from vfmstudio.ml import hub
from vfmstudio.ml.errors import ModelError, ModelNotAvailableError, UnsafeModelError
from vfmstudio.ml.refs import parse_model_ref

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "tiny-org/tiny-dinov2"


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A valid safetensors file of zeros: 8-byte little-endian header size, JSON header, data."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def write_checkpoint(folder: Path, *, weights: str = "safetensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "dinov2", "hidden_size": 8}))
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": "BitImageProcessor"})
    )
    if weights == "safetensors":
        write_safetensors(folder / "model.safetensors", {"w": ("F32", [8, 8]), "ids": ("I64", [4])})
    elif weights == "bin":
        (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not really a pickle")
    return folder


def populate_cache(cache: Path, repo_id: str = REPO, *, weights: str = "safetensors") -> Path:
    """The hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = write_checkpoint(storage / "snapshots" / COMMIT, weights=weights)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "direct"))
    assert hub.hub_cache_dir() == tmp_path / "direct"


def test_uncached_model_offline_gives_one_clear_message(offline_cache, monkeypatch):
    import socket

    def no_connection(*args, **kwargs):
        raise AssertionError("a connection was attempted offline")

    monkeypatch.setattr(socket.socket, "connect", no_connection)  # offline means no network wait at all
    with pytest.raises(ModelNotAvailableError) as info:
        hub.resolve_local_path("facebook/dinov2-small", allow_download=True)
    msg = str(info.value)
    assert "\n" not in msg
    assert "facebook/dinov2-small" in msg
    assert str(offline_cache) in msg
    assert "vfmstudio models pull facebook/dinov2-small" in msg
    assert not hub.is_cached("facebook/dinov2-small")
    with pytest.raises(ModelNotAvailableError):
        hub.pull("facebook/dinov2-small")


def test_downloads_disabled_never_touch_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(hub, "pull", no_network)
    with pytest.raises(ModelNotAvailableError, match="downloads are disabled"):
        hub.resolve_local_path("facebook/dinov2-small", allow_download=False)


def test_fake_populated_cache_resolves_offline(offline_cache):
    snapshot = populate_cache(offline_cache)
    assert hub.is_cached(REPO)
    assert hub.is_cached(f"{REPO}@main")
    assert hub.is_cached(parse_model_ref(f"{REPO}@{COMMIT}"))
    assert not hub.is_cached(f"{REPO}@v9")
    assert hub.resolve_local_path(REPO) == snapshot
    assert hub.resolve_local_path(f"{REPO}@{COMMIT}") == snapshot
    assert hub.pull(REPO) == snapshot  # nothing to fetch
    with pytest.raises(ModelNotAvailableError, match="@v9"):
        hub.resolve_local_path(f"{REPO}@v9")
    listed = hub.list_cached()
    assert [entry["ref"] for entry in listed] == [REPO]
    assert listed[0]["revisions"] == ["main"]


def test_cached_but_online_resolution_skips_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    snapshot = populate_cache(tmp_path)
    monkeypatch.setattr(hub, "pull", lambda *a, **k: pytest.fail("network used"))
    assert hub.resolve_local_path(REPO, allow_download=True) == snapshot


def test_pickle_only_weights_are_refused(offline_cache, tmp_path):
    local = write_checkpoint(tmp_path / "bin-model", weights="bin")
    with pytest.raises(UnsafeModelError, match="safetensors"):
        hub.resolve_local_path(str(local))
    assert not hub.is_cached(str(local))
    populate_cache(offline_cache, "org/pickled", weights="bin")
    with pytest.raises(UnsafeModelError):
        hub.resolve_local_path("org/pickled")


def test_local_directory_checks(offline_cache, tmp_path):
    good = write_checkpoint(tmp_path / "good")
    assert hub.resolve_local_path(str(good), allow_download=False) == good.resolve()
    assert hub.is_cached(str(good))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        hub.resolve_local_path(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="does not exist"):
        hub.resolve_local_path(str(tmp_path / "missing"))
    no_weights = write_checkpoint(tmp_path / "no-weights", weights="none")
    with pytest.raises(ModelError, match="no weights"):
        hub.resolve_local_path(str(no_weights))


def test_incomplete_sharded_snapshot(offline_cache):
    snapshot = populate_cache(offline_cache, "org/sharded", weights="none")
    write_safetensors(snapshot / "model-00001-of-00002.safetensors", {"a": ("F32", [2])})
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (snapshot / "model.safetensors.index.json").write_text(json.dumps(index))
    assert not hub.is_cached("org/sharded")
    with pytest.raises(ModelNotAvailableError, match="incomplete"):
        hub.resolve_local_path("org/sharded")
    write_safetensors(snapshot / "model-00002-of-00002.safetensors", {"b": ("F32", [2])})
    assert hub.is_cached("org/sharded")
    assert hub.resolve_local_path("org/sharded") == snapshot


# Downloads (pull) are tested against the stand-in hub in test_download.py.

"""Hugging Face hub access: cache location, offline resolution and bounded downloads.

No torch/transformers here; huggingface_hub is imported inside functions so that importing this module
is free. Every failure is turned into a one-line ModelError subclass (see errors.py).

Downloads go through ``vfmstudio.ml.download`` (deadlines on every read, prompt cancel, resume; see
ADR 0130). Offline resolution uses ``snapshot_download(local_files_only=True)``: it makes no network call.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vfmstudio.core.atomic import atomic_write_bytes
from vfmstudio.ml.errors import (
    GatedModelError,
    HubTimeoutError,
    ModelError,
    ModelNotAvailableError,
    UnsafeModelError,
)
from vfmstudio.ml.refs import ModelRef, parse_model_ref

if TYPE_CHECKING:
    from vfmstudio.core.cancel import CancelToken
    from vfmstudio.ml.download import Deadlines, DownloadProgress

# Everything a transformers model/processor/tokenizer needs, never code (*.py) nor pickle weights.
ALLOW_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.tiktoken", "*.npz"]
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
DEFAULT_TIMEOUT = 10.0


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_cache_dir() -> Path:
    """The hub cache directory, read from the environment at call time.

    huggingface_hub reads HF_HUB_CACHE/HF_HOME once at import; we re-read them so that settings and tests
    that change the environment later are honoured, and pass the result explicitly everywhere.
    """
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(os.path.expandvars(xdg)).expanduser() / "huggingface" / "hub"


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: no network call must be made."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def _repo_storage(repo_id: str, cache_dir: Path) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


# --- snapshot inspection -------------------------------------------------------------------------------


def _matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def _snapshot_problem(path: Path) -> str | None:
    """None when ``path`` holds a loadable safetensors checkpoint, else a short reason.

    Reasons: "no-config", "pickle-only", "no-weights", "incomplete" (a shard listed in the index is missing).
    """
    if not (path / "config.json").is_file():
        return "no-config"
    names = [p.name for p in path.iterdir() if p.is_file() or p.is_symlink()]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
        except (OSError, ValueError, AttributeError):
            return "incomplete"
        # A dangling symlink (blob missing) counts as missing.
        if not shards or any(not (path / s).is_file() for s in shards):
            return "incomplete"
        return None
    if any(n.endswith(".safetensors") and (path / n).is_file() for n in names):
        return None
    if any(_matches(n, PICKLE_PATTERNS) for n in names):
        return "pickle-only"
    return "no-weights"


def check_snapshot(path: Path, model: str, *, cache_dir: Path | None = None) -> Path:
    """Raise the right ModelError unless ``path`` holds config.json and safetensors weights."""
    problem = _snapshot_problem(path)
    if problem is None:
        return path
    if problem == "pickle-only":
        raise UnsafeModelError(model, path)
    if cache_dir is not None:
        # A hub snapshot that lacks files was only partly fetched: pulling again completes it.
        why = (
            "the cached copy is incomplete" if problem == "incomplete" else f"the cached copy lacks {problem}"
        )
        raise ModelNotAvailableError(model, cache_dir, why.replace("no-", ""))
    if problem == "no-config":
        raise ModelError(f"'{path}' is not a model directory: it has no config.json")
    if problem == "incomplete":
        raise ModelError(
            f"model directory '{path}' is incomplete: a weight shard listed in the index is missing"
        )
    raise ModelError(f"model directory '{path}' has no weights (expected model.safetensors)")


def _cached_snapshot(ref: ModelRef, cache_dir: Path) -> Path | None:
    """The snapshot folder for ``ref`` in the cache (via refs/<revision>), or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(
            ref.hub_id, "config.json", cache_dir=str(cache_dir), revision=ref.revision
        )
    except (ValueError, OSError):
        return None
    if isinstance(found, str):
        return Path(found).parent
    return None


def is_cached(ref: str | ModelRef) -> bool:
    """Whether ``ref`` can be loaded without the network (config.json and safetensors weights on disk)."""
    try:
        ref = parse_model_ref(ref)
    except ModelError:
        return False
    if ref.local_dir is not None:
        return ref.local_dir.is_dir() and _snapshot_problem(ref.local_dir) is None
    snapshot = _cached_snapshot(ref, hub_cache_dir())
    return snapshot is not None and _snapshot_problem(snapshot) is None


def list_cached() -> list[dict[str, Any]]:
    """Models present in the hub cache (for `vfmstudio models`), without network access."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(hub_cache_dir())
    except CacheNotFound:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        out.append(
            {
                "ref": repo.repo_id,
                "revisions": sorted(ref for rev in repo.revisions for ref in rev.refs),
                "size_on_disk": int(repo.size_on_disk),
                "path": str(repo.repo_path),
            }
        )
    return out


# --- error translation ---------------------------------------------------------------------------------


def _translate(exc: BaseException, ref: ModelRef, cache_dir: Path, *, offline_reason: str) -> ModelError:
    """Map huggingface_hub / network exceptions to our one-line errors."""
    from huggingface_hub import errors as hf

    model = ref.display
    if isinstance(exc, hf.GatedRepoError):
        return GatedModelError(ref.repo_id or model)
    if isinstance(exc, hf.RevisionNotFoundError):
        return ModelError(f"model '{ref.repo_id}' has no revision '{ref.revision}' on the hub")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return ModelError(
            f"no such model '{ref.repo_id}' on the hub (if it is private, set HF_TOKEN or run `hf auth login`)"
        )
    if isinstance(exc, hf.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return GatedModelError(ref.repo_id or model)
        return ModelNotAvailableError(model, cache_dir, f"hub error {status}")
    if isinstance(exc, hf.IncompleteSnapshotError):
        return ModelNotAvailableError(model, cache_dir, f"the cached copy is incomplete; {offline_reason}")
    if isinstance(exc, (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled)):
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, hf.OfflineModeIsEnabled):
            return _translate(cause, ref, cache_dir, offline_reason=offline_reason)
        return ModelNotAvailableError(model, cache_dir, offline_reason)
    if isinstance(exc, hf.HFValidationError):
        return ModelError(f"invalid model id '{model}': {exc}")
    if isinstance(exc, (hf.HTTPError, ConnectionError, TimeoutError)):
        return ModelNotAvailableError(model, cache_dir, f"network error: {type(exc).__name__}")
    if isinstance(exc, OSError):
        return ModelError(f"cannot read or write model '{model}' in {cache_dir}: {exc}")
    return ModelError(f"cannot fetch model '{model}': {type(exc).__name__}: {exc}")


# --- resolution ----------------------------------------------------------------------------------------


def _resolve_offline(ref: ModelRef, cache_dir: Path, reason: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(
            ref.hub_id,
            revision=ref.revision,
            cache_dir=str(cache_dir),
            allow_patterns=ALLOW_PATTERNS,
            local_files_only=True,
        )
    except ModelError:
        raise
    except Exception as exc:
        raise _translate(exc, ref, cache_dir, offline_reason=reason) from exc
    return check_snapshot(Path(path), ref.display, cache_dir=cache_dir)


def resolve_local_path(
    ref: str | ModelRef, *, allow_download: bool = True, cancel: CancelToken | None = None
) -> Path:
    """A local directory holding config.json and safetensors weights for ``ref``.

    Local directories are returned as they are (after checks). Hub ids are served from the cache when a
    complete copy is there (no network call); otherwise they are downloaded when ``allow_download`` is
    true and HF_HUB_OFFLINE is not set, with every network call bounded by the download deadlines.
    """
    ref = parse_model_ref(ref)
    if ref.local_dir is not None:
        if not ref.local_dir.is_dir():
            raise ModelError(f"model directory '{ref.local_dir}' does not exist")
        return check_snapshot(ref.local_dir, ref.display)
    cache_dir = hub_cache_dir()
    if is_offline():
        return _resolve_offline(ref, cache_dir, "offline: HF_HUB_OFFLINE=1")
    if not allow_download:
        return _resolve_offline(ref, cache_dir, "downloads are disabled")
    snapshot = _cached_snapshot(ref, cache_dir)
    if snapshot is not None:
        problem = _snapshot_problem(snapshot)
        if problem is None:
            return snapshot  # prefer the cache: no start-up network round trip; `pull` refreshes
        if problem == "pickle-only":
            raise UnsafeModelError(ref.display, snapshot)
    return pull(ref, cancel=cancel)


def _write_ref(storage: Path, revision: str, commit: str) -> None:
    """Record refs/<revision> -> commit so that offline resolution of the branch/tag finds the snapshot."""
    if revision == commit:
        return
    ref_file = storage / "refs" / revision
    try:
        if ref_file.is_file() and ref_file.read_text().strip() == commit:
            return
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(ref_file, commit.encode("ascii"))
    except OSError as exc:
        raise ModelError(f"cannot write to the model cache {storage}: {exc}") from exc


def pull(
    ref: str | ModelRef,
    progress: Callable[[DownloadProgress], None] | None = None,
    *,
    cancel: CancelToken | None = None,
    deadlines: Deadlines | None = None,
) -> Path:
    """Download ``ref`` (config, processor/tokenizer files and safetensors weights) into the hub cache.

    Uses the download engine (``vfmstudio.ml.download``): every request has deadlines, ``cancel`` stops it
    promptly, partial files are resumed next time. ``progress`` is called from the downloading thread.
    When the hub cannot be reached (or is too slow) a complete cached copy is returned instead.
    """
    from vfmstudio.ml.download import download_snapshot

    ref = parse_model_ref(ref)
    if ref.local_dir is not None:
        return resolve_local_path(ref, allow_download=False)
    cache_dir = hub_cache_dir()
    if is_offline():
        # Nothing to fetch if a complete copy is already here; otherwise explain.
        return _resolve_offline(ref, cache_dir, "offline: HF_HUB_OFFLINE=1")
    try:
        return download_snapshot(
            ref, progress=progress, cancel=cancel, deadlines=deadlines, cache_dir=cache_dir
        )
    except (ModelNotAvailableError, HubTimeoutError):
        cached = _cached_snapshot(ref, cache_dir)
        if cached is not None and _snapshot_problem(cached) is None:
            return cached
        raise

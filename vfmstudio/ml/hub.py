"""Hugging Face hub access: cache location, offline resolution and bounded downloads.

No torch/transformers here; huggingface_hub is imported inside functions so that importing this module
is free. Every failure is turned into a one-line ModelError subclass (see errors.py).

Why not plain ``snapshot_download`` for downloads: its repo listing calls (repo_info, list_repo_tree) run
with no timeout, so a stalled connection could hang the app. ``pull`` asks ``repo_info`` with a timeout,
then fetches the files one by one with ``hf_hub_download`` (bounded by etag/download timeouts).
Offline resolution does use ``snapshot_download(local_files_only=True)``: it makes no network call.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vfmstudio.core.atomic import atomic_write_bytes
from vfmstudio.ml.errors import (
    GatedModelError,
    ModelError,
    ModelNotAvailableError,
    UnsafeModelError,
)
from vfmstudio.ml.refs import ModelRef, parse_model_ref

# Everything a transformers model/processor/tokenizer needs, never code (*.py) nor pickle weights.
ALLOW_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "*.tiktoken", "*.npz"]
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
DEFAULT_TIMEOUT = 10.0

ProgressCallback = Callable[[int, int | None], None]


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
            ref.repo_id, "config.json", cache_dir=str(cache_dir), revision=ref.revision
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
            ref.repo_id,
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
    ref: str | ModelRef, *, allow_download: bool = True, timeout: float = DEFAULT_TIMEOUT
) -> Path:
    """A local directory holding config.json and safetensors weights for ``ref``.

    Local directories are returned as they are (after checks). Hub ids are served from the cache when a
    complete copy is there (no network call); otherwise they are downloaded when ``allow_download`` is
    true and HF_HUB_OFFLINE is not set, with every network call bounded by ``timeout`` seconds.
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
    return pull(ref, timeout=timeout, progress=None, quiet=True)


class _ProgressSink:
    """Duck-typed tqdm stand-in handed to hf_hub_download: forwards byte counts to one callback.

    It defines ``update_transfer`` so that Xet downloads route their transfer counter here too (we ignore
    it and count reconstructed bytes, i.e. bytes of the file written, like plain HTTP downloads).
    """

    def __init__(self, state: _PullProgress, **kwargs: Any) -> None:
        self._state = state
        self.total = kwargs.get("total")
        self.n = 0
        self.disable = False
        initial = int(kwargs.get("initial") or 0)
        if initial:
            self.update(initial)

    def update(self, n: int | float | None = 1) -> None:
        inc = int(n or 0)
        self.n += inc
        self._state.add(inc)

    def update_transfer(self, n: int | float | None = 1) -> None:
        pass

    def __enter__(self) -> _ProgressSink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        # set_description, set_postfix_str, refresh, close, ...: nothing to draw.
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


class _PullProgress:
    def __init__(self, callback: ProgressCallback, total: int | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.done = 0
        self.total = total
        self.aborted: BaseException | None = None

    def add(self, n: int) -> None:
        with self._lock:
            self.done = max(0, self.done + n)
            done = self.done
        # Outside the lock: a callback may raise (e.g. Cancelled) to abort; pull re-raises it unchanged.
        try:
            self._callback(done, self.total)
        except BaseException as exc:
            self.aborted = exc
            raise

    def sink_class(self) -> type:
        state = self

        class Sink(_ProgressSink):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(state, **kwargs)

        return Sink


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
    progress: ProgressCallback | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    quiet: bool = False,
) -> Path:
    """Download ``ref`` (config, processor/tokenizer files and safetensors weights) into the hub cache.

    ``progress(done_bytes, total_bytes)`` is called from the downloading thread; it may raise to abort.
    Without a callback, huggingface_hub's tqdm bars are shown (unless ``quiet``). Refuses repos that only
    ship pickle weights. Returns the snapshot directory.
    """
    from huggingface_hub import HfApi, hf_hub_download

    ref = parse_model_ref(ref)
    if ref.local_dir is not None:
        return resolve_local_path(ref, allow_download=False)
    cache_dir = hub_cache_dir()
    if is_offline():
        # Nothing to fetch if a complete copy is already here; otherwise explain.
        return _resolve_offline(ref, cache_dir, "offline: HF_HUB_OFFLINE=1")
    reason = "no network"
    state: _PullProgress | None = None
    try:
        info = HfApi().model_info(ref.repo_id, revision=ref.revision, files_metadata=True, timeout=timeout)
        commit = info.sha
        siblings = list(info.siblings or [])
        if not commit:
            raise ModelError(f"the hub returned no commit for '{ref.display}'")
        # transformers loads from the repo root only: sub-folders (onnx/, fp16 copies, ...) are skipped.
        root_files = [s for s in siblings if "/" not in s.rfilename]
        names = [s.rfilename for s in root_files]
        if not any(n.endswith(".safetensors") for n in names):
            if any(_matches(n, PICKLE_PATTERNS) for n in names):
                raise UnsafeModelError(ref.display)
            raise ModelError(f"model '{ref.display}' has no weights on the hub (expected *.safetensors)")
        wanted = [s for s in root_files if _matches(s.rfilename, ALLOW_PATTERNS)]
        total = sum(int(s.size or 0) for s in wanted) or None
        state = _PullProgress(progress, total) if progress is not None else None
        tqdm_class: Any = state.sink_class() if state is not None else None
        if quiet and tqdm_class is None:
            from huggingface_hub.utils import silent_tqdm

            tqdm_class = silent_tqdm
        for sibling in wanted:
            before = state.done if state is not None else 0
            hf_hub_download(
                ref.repo_id,
                sibling.rfilename,
                revision=commit,
                cache_dir=str(cache_dir),
                etag_timeout=timeout,
                tqdm_class=tqdm_class,
            )
            if state is not None and sibling.size and state.done - before < int(sibling.size):
                # Already cached files produce no progress updates: account for them.
                state.add(int(sibling.size) - (state.done - before))
        storage = _repo_storage(ref.repo_id, cache_dir)
        _write_ref(storage, ref.revision or "main", commit)
        snapshot = storage / "snapshots" / commit
    except ModelError:
        raise
    except Exception as exc:
        from huggingface_hub import errors as hf

        if state is not None and state.aborted is not None:
            raise state.aborted from None

        if isinstance(exc, hf.HTTPError | ConnectionError | TimeoutError) and not isinstance(
            exc, hf.HfHubHTTPError
        ):
            # Network down: a complete cached copy is still good enough.
            reason = f"network error: {type(exc).__name__}"
            cached = _cached_snapshot(ref, cache_dir)
            if cached is not None and _snapshot_problem(cached) is None:
                return cached
        raise _translate(exc, ref, cache_dir, offline_reason=reason) from exc
    return check_snapshot(snapshot, ref.display, cache_dir=cache_dir)

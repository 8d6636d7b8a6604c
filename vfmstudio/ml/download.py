"""Model downloads from the Hugging Face hub: progress, prompt cancel, resume, and deadlines on every read.

Qt-free and torch-free; used by `vfmstudio models pull`, by `run` when a model is missing, and by the
window's model manager (on a background thread). See docs/adr/0130-model-download-engine.md for why this
is not ``snapshot_download``: huggingface_hub 2.x deletes a partial file when a download fails (no resume
across attempts), only reports progress every 10 MB, and has idle timeouts but no total deadline, so a
server trickling one byte a second is never cut and a cancel waits for the next chunk.

What we keep from huggingface_hub: the endpoint (HF_ENDPOINT, read at call time), the token (see
hub_auth), the repo API (``/api/models/{id}/revision/{rev}?blobs=true``), the resolve URLs and the cache
layout (``models--org--name/{blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>, refs/<rev>}``)
so that ``from_pretrained``, ``try_to_load_from_cache`` and ``hf cache`` see our downloads as theirs.

Every request runs under a watchdog thread that shuts the socket down (waking a read blocked in the
kernel) when the cancel token fires, when the request's total deadline passes, when no byte came for
``idle_s``, or when the rate over a window falls below ``min_rate``. A partial file stays on disk as
``blobs/<etag>.incomplete`` and the next attempt (after a dropped connection, a cancel or a new session)
asks for the rest with an HTTP Range request. Finished files are checked against the hub's checksums.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vfmstudio.core.cancel import Cancelled, CancelToken
from vfmstudio.ml import hub, hub_auth
from vfmstudio.ml.errors import (
    GatedModelError,
    HubTimeoutError,
    ModelError,
    ModelNotAvailableError,
    UnsafeModelError,
    format_bytes,
)
from vfmstudio.ml.hub_deadlines import Deadlines, RateMeter, Watchdog
from vfmstudio.ml.refs import ModelRef, parse_model_ref

DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_API_BYTES = 32 << 20  # a repo listing is a few KB; refuse to buffer a runaway body
MAX_DROPS = 4  # consecutive dropped connections without progress before giving up
_PROGRESS_EVERY_S = 0.1
_HASH_CHUNK = 8 << 20
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
REPO_TYPES = ("model", "space", "dataset")


def endpoint_url(endpoint: str | None = None) -> str:
    """The hub base URL: ``endpoint``, else HF_ENDPOINT read now (not huggingface_hub's import-time copy)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report: bytes of the whole snapshot, the speed now, the file in flight."""

    repo_id: str
    done: int
    total: int | None
    speed: float  # bytes per second over the last few seconds
    file: str = ""
    files_done: int = 0
    files_total: int = 0

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None

    def describe(self) -> str:
        size = (
            f"{format_bytes(self.done)} / {format_bytes(self.total)}"
            if self.total
            else format_bytes(self.done)
        )
        return f"{size} · {format_bytes(self.speed)}/s"


ProgressCallback = Callable[[DownloadProgress], None]


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int | None
    etag: str | None  # the blob name in the cache: the LFS sha256, or the git blob id
    sha256: str | None = None  # set for LFS files


@dataclass(frozen=True)
class RepoListing:
    repo_id: str
    commit: str
    files: tuple[RemoteFile, ...]  # the files a model needs (see select_files)
    gated: bool = False
    licence: str | None = None

    @property
    def total_bytes(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)


def _httpx() -> Any:
    """huggingface_hub's HTTP client library (httpx2 from huggingface_hub 2, httpx before)."""
    try:
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
        import httpx
    return httpx


# --- the download ----------------------------------------------------------------------------------------


def select_files(names_and_files: list[RemoteFile], display: str) -> tuple[RemoteFile, ...]:
    """The files a transformers model needs from the repo root; refuses repos with pickle weights only."""
    # Sub-folders (onnx/, fp16 copies) are not loaded; a name is a plain file name or it is skipped, so a
    # listing can never place a file outside the snapshot folder.
    root = [f for f in names_and_files if _plain_file_name(f.name)]
    names = [f.name for f in root]
    if not any(n.endswith(".safetensors") for n in names):
        if any(hub._matches(n, hub.PICKLE_PATTERNS) for n in names):
            raise UnsafeModelError(display)
        raise ModelError(f"model '{display}' has no weights on the hub (expected *.safetensors)")
    return tuple(f for f in root if hub._matches(f.name, hub.ALLOW_PATTERNS))


def _plain_file_name(name: str) -> bool:
    return (
        bool(name)
        and name not in (".", "..")
        and not any(c in name for c in "/\\:\0")
        and name.isprintable()
        and Path(name).name == name
    )


def _normalize_etag(etag: str | None) -> str | None:
    if not etag:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"') or None


def _safe_blob_name(etag: str | None) -> str | None:
    # The etag becomes a file name in the cache: hex digests only, never a path.
    return etag if etag and len(etag) <= 128 and all(c in "0123456789abcdef" for c in etag.lower()) else None


class SnapshotDownload:
    """Downloads one model snapshot into the hub cache; :meth:`run` blocks and returns the snapshot folder.

    ``progress`` is called on the calling thread, at most every 0.1 s and once at the end; ``cancel``
    may be fired from any thread: the download stops within a fraction of a second with ``Cancelled``
    and keeps what it fetched for the next attempt.
    """

    def __init__(
        self,
        ref: str | ModelRef,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        deadlines: Deadlines | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        cache_dir: Path | None = None,
        repo_type: str = "model",
        only: tuple[str, ...] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}")
        self.repo_type = repo_type
        self.only = only  # exactly these files (e.g. one file of a Space), instead of a model's files
        self.ref = parse_model_ref(ref)
        if self.ref.repo_id is None:
            raise ModelError(f"'{self.ref.display}' is a local folder: there is nothing to download")
        self.repo_id: str = self.ref.repo_id
        self.revision = self.ref.revision or "main"
        self.endpoint = endpoint_url(endpoint)
        self.token = token if token is not None else hub_auth.read_token()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else hub.hub_cache_dir()
        self.deadlines = deadlines or Deadlines.from_env()
        self.cancel = cancel or CancelToken()
        self._progress = progress
        self._clock = clock
        self._meter = RateMeter(clock)
        self._last_report = float("-inf")
        self._done_before = 0  # bytes of files already complete
        self._file_done = 0  # bytes of the current file on disk
        self._state: dict[str, Any] = {"file": "", "files_done": 0, "files_total": 0, "total": None}
        self.drops = 0  # dropped connections survived (resumed with a Range request)

    # ---- public
    def run(self) -> Path:
        httpx = _httpx()
        limits = self.deadlines
        timeout = httpx.Timeout(limits.idle_s, connect=limits.connect_s)
        with (
            Watchdog(self.cancel, self._clock) as self._watch,
            httpx.Client(follow_redirects=True, timeout=timeout, trust_env=True) as self._client,
        ):
            listing = self.listing()
            storage = _storage(self.repo_id, self.cache_dir, self.repo_type)
            self._state.update(total=listing.total_bytes, files_total=len(listing.files))
            for f in listing.files:
                self._state["file"] = f.name
                self._fetch(f, listing.commit, storage)
                self._state["files_done"] += 1
            hub._write_ref(storage, self.revision, listing.commit)
            self._report(force=True)
        if self.only is not None:
            return storage / "snapshots" / listing.commit
        return hub.check_snapshot(
            storage / "snapshots" / listing.commit, self.ref.display, cache_dir=self.cache_dir
        )

    def listing(self) -> RepoListing:
        """The commit and the files to fetch (the hub's ``/api/models`` answer), under the deadlines."""
        url = f"{self.endpoint}/api/{self.repo_type}s/{self.repo_id}/revision/{quote(self.revision, safe='')}"
        with self._request(url, {"Accept": "application/json"}, what="the repo listing", nbytes=0) as r:
            self._raise_for_status(r, api=True)
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_API_BYTES:
                    raise ModelError(
                        f"the hub's listing of '{self.ref.display}' is larger than 32 MiB; refused"
                    )
        try:
            info = json.loads(bytes(body))
            commit = str(info["sha"])
            siblings = info.get("siblings") or []
            files = [self._remote_file(s) for s in siblings]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"the hub at {self.endpoint} answered an unreadable listing for '{self.ref.display}'"
            ) from exc
        if not _COMMIT_RE.fullmatch(commit):
            raise ModelError(f"the hub returned no valid commit for '{self.ref.display}'")
        card = info.get("cardData") if isinstance(info.get("cardData"), dict) else {}
        return RepoListing(
            self.repo_id,
            commit,
            select_files(files, self.ref.display) if self.only is None else self._only(files),
            gated=bool(info.get("gated")),
            licence=str(card.get("license")) if card.get("license") else None,
        )

    # ---- one file
    @staticmethod
    def _remote_file(sibling: dict) -> RemoteFile:
        name = str(sibling["rfilename"])
        lfs = sibling.get("lfs") if isinstance(sibling.get("lfs"), dict) else None
        sha256 = _safe_blob_name(str(lfs.get("sha256") or "")) if lfs else None
        size = lfs.get("size") if lfs else sibling.get("size")
        etag = sha256 or _safe_blob_name(str(sibling.get("blobId") or ""))
        return RemoteFile(name, int(size) if isinstance(size, int) and size >= 0 else None, etag, sha256)

    def _only(self, files: list[RemoteFile]) -> tuple[RemoteFile, ...]:
        by_name = {f.name: f for f in files}
        missing = [name for name in self.only or () if name not in by_name or not _plain_file_name(name)]
        if missing:
            raise ModelError(f"'{self.ref.display}' on the hub has no file {missing[0]}")
        return tuple(by_name[name] for name in self.only or ())

    def _resolve_url(self, commit: str, name: str) -> str:
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"{self.endpoint}/{prefix}{self.repo_id}/resolve/{commit}/{quote(name)}"

    def _fetch(self, f: RemoteFile, commit: str, storage: Path) -> None:
        pointer = storage / "snapshots" / commit / f.name
        if pointer.is_file() and (f.size is None or pointer.stat().st_size == f.size):
            self._done_before += f.size or pointer.stat().st_size
            self._report()
            return
        etag = f.etag
        if etag is None:
            etag = self._probe_etag(commit, f)  # a mirror without blob ids in its listing
        blob = storage / "blobs" / etag
        if not (blob.is_file() and (f.size is None or blob.stat().st_size == f.size)):
            self._download_blob(replace(f, etag=etag), self._resolve_url(commit, f.name), blob)
        _link(blob, pointer)
        self._done_before += blob.stat().st_size
        self._file_done = 0
        self._report()

    def _probe_etag(self, commit: str, f: RemoteFile) -> str:
        with self._request(
            self._resolve_url(commit, f.name), {"Range": "bytes=0-0"}, what=f.name, nbytes=0
        ) as r:
            self._raise_for_status(r)
            first = r.history[0].headers if r.history else r.headers
            etag = _safe_blob_name(_normalize_etag(first.get("X-Linked-Etag") or first.get("ETag")))
        if etag is None:
            raise ModelError(
                f"the hub at {self.endpoint} gave no usable ETag for {f.name} of '{self.ref.display}'"
            )
        return etag

    def _download_blob(self, f: RemoteFile, url: str, blob: Path) -> None:
        blob.parent.mkdir(parents=True, exist_ok=True)
        part = blob.with_name(blob.name + ".incomplete")
        failures = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            if f.size is not None and have > f.size:
                part.unlink()
                have = 0
            if f.size is not None and have == f.size:
                break
            before = have
            try:
                complete = self._get_range(f, url, part, have)
            except _dropped_errors() as exc:  # evaluated only when something was raised
                verdict = self._watch.verdict()
                if verdict is not None:
                    raise verdict from None
                now = part.stat().st_size if part.exists() else 0
                failures = 0 if now > before else failures + 1
                if failures >= MAX_DROPS:
                    raise ModelNotAvailableError(
                        self.ref.display,
                        self.cache_dir,
                        f"the connection to {self.endpoint} keeps dropping "
                        f"({type(exc).__name__}); {format_bytes(now)} of {f.name} kept for the next attempt",
                    ) from None
                self.drops += 1
                if self.cancel.wait(0.2 * failures):
                    raise Cancelled(self.cancel.reason or "cancelled") from None
                continue
            if complete:
                break
        self._verify(f, part)
        os.replace(part, blob)

    def _get_range(self, f: RemoteFile, url: str, part: Path, have: int) -> bool:
        """One GET from byte ``have``; True when the file is complete (size unknown: body ended)."""
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        remaining = (f.size - have) if f.size is not None else None
        with self._request(url, headers, what=f.name, nbytes=remaining) as r:
            if r.status_code == 416 and have:
                # The server has nothing after our partial copy: it is complete or stale. Verify decides.
                return True
            self._raise_for_status(r)
            if r.status_code == 206:
                start = _content_range_start(r.headers.get("Content-Range"))
                mode = "r+b" if start == have else "wb"
            else:
                mode = "wb"  # the server ignored Range: start over
            self._file_done = have if mode == "r+b" else 0
            with open(part, mode) as out:
                if mode == "r+b":
                    out.seek(have)
                    out.truncate()
                for chunk in r.iter_bytes():
                    if f.size is not None and self._file_done + len(chunk) > f.size:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise ModelError(
                            f"the hub sent more than the {format_bytes(f.size)} it announced for {f.name} of "
                            f"'{self.ref.display}'; the download was stopped"
                        )
                    out.write(chunk)
                    self._file_done += len(chunk)
                    self._meter.add(len(chunk))
                    self._watch.saw_bytes()
                    self._watch.check()
                    self._report()
        return f.size is None or self._file_done >= f.size

    def _verify(self, f: RemoteFile, part: Path) -> None:
        size = part.stat().st_size
        problem = None
        if f.size is not None and size != f.size:
            problem = f"{format_bytes(size)} instead of {format_bytes(f.size)}"
        elif f.sha256 or (f.etag and len(f.etag) == 40):
            digest = hashlib.sha256() if f.sha256 else hashlib.sha1()
            if not f.sha256:
                digest.update(f"blob {size}\0".encode())  # git's blob id
            with open(part, "rb") as src:
                while chunk := src.read(_HASH_CHUNK):
                    self.cancel.raise_if_cancelled()
                    digest.update(chunk)
            if digest.hexdigest() != (f.sha256 or f.etag):
                problem = "its checksum does not match the hub's"
        if problem is not None:
            part.unlink(missing_ok=True)
            raise ModelError(
                f"{f.name} of '{self.ref.display}' arrived damaged ({problem}); it was removed: download again"
            )

    # ---- HTTP
    @contextlib.contextmanager
    def _request(self, url: str, headers: dict[str, str], *, what: str, nbytes: int | None) -> Iterator[Any]:
        httpx = _httpx()
        self.cancel.raise_if_cancelled()
        headers = {"user-agent": "vfmstudio", **headers}
        if self.token and url.startswith(self.endpoint):
            headers["authorization"] = f"Bearer {self.token}"  # httpx drops it on a redirect to another host
        self._watch.arm(what, self.deadlines.budget(nbytes), self.deadlines, self._meter)

        def trace(event: str, info: dict) -> None:
            if event.endswith(("connect_tcp.complete", "start_tls.complete")):
                stream = info.get("return_value")
                if stream is not None:
                    self._watch.add_socket(stream.get_extra_info("socket"))

        try:
            with self._client.stream("GET", url, headers=headers, extensions={"trace": trace}) as response:
                stream = response.extensions.get("network_stream")
                if stream is not None:  # a pooled connection made no connect event
                    self._watch.add_socket(stream.get_extra_info("socket"))
                yield response
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            verdict = self._watch.verdict()
            if verdict is not None:
                raise verdict from None
            if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                raise HubTimeoutError.idle(what, self.deadlines.idle_s) from None
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                raise ModelNotAvailableError(
                    self.ref.display, self.cache_dir, f"cannot connect to {self.endpoint}: {_short(exc)}"
                ) from None
            raise  # a connection dropped mid-body: the caller resumes
        finally:
            self._watch.disarm()

    def _raise_for_status(self, r: Any, *, api: bool = False) -> None:
        status = r.status_code
        if status < 400:
            return
        code = r.headers.get("X-Error-Code", "")
        model = self.ref.display
        if code == "GatedRepo" or (not api and status in (401, 403)):
            raise GatedModelError(self.repo_id, has_token=bool(self.token))
        if code == "RevisionNotFound":
            raise ModelError(f"model '{self.repo_id}' has no revision '{self.revision}' on the hub")
        if api and status in (401, 403, 404):
            hint = "" if self.token else " (if it is private, add an access token)"
            raise ModelError(f"no such model '{self.repo_id}' on the hub at {self.endpoint}{hint}")
        if status == 404:
            raise ModelError(f"a file of '{model}' is missing on the hub at {self.endpoint} (HTTP 404)")
        raise ModelNotAvailableError(model, self.cache_dir, f"hub error {status}")

    # ---- progress
    def _report(self, force: bool = False) -> None:
        now = self._clock()
        if self._progress is None or (not force and now - self._last_report < _PROGRESS_EVERY_S):
            return
        self._last_report = now
        self._progress(
            DownloadProgress(
                repo_id=self.repo_id,
                done=self._done_before + self._file_done,
                total=self._state["total"],
                speed=self._meter.speed(),
                file=self._state["file"],
                files_done=self._state["files_done"],
                files_total=self._state["files_total"],
            )
        )


def _dropped_errors() -> tuple[type[BaseException], ...]:
    httpx = _httpx()
    return (httpx.NetworkError, httpx.RemoteProtocolError, httpx.TimeoutException, ConnectionError)


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(str(value).split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:120] or type(exc).__name__


def _link(blob: Path, pointer: Path) -> None:
    """snapshots/<commit>/<file> -> ../../blobs/<etag>, as huggingface_hub lays it out (a copy without symlinks)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:
        shutil.copy2(blob, pointer)


def _storage(repo_id: str, cache_dir: Path, repo_type: str = "model") -> Path:
    """``models--org--name`` (or ``spaces--``, ``datasets--``): huggingface_hub's folder for a repo."""
    return cache_dir / f"{repo_type}s--{repo_id.replace('/', '--')}"


def partial_bytes(repo_id: str, cache_dir: Path | None = None) -> int:
    """Bytes of unfinished downloads of ``repo_id`` kept for resuming (0 when none)."""
    blobs = hub._repo_storage(repo_id, cache_dir or hub.hub_cache_dir()) / "blobs"
    try:
        return sum(p.stat().st_size for p in blobs.glob("*.incomplete"))
    except OSError:
        return 0


def download_snapshot(ref: str | ModelRef, **kwargs: Any) -> Path:
    """Download ``ref`` into the hub cache (see :class:`SnapshotDownload`); returns the snapshot folder."""
    return SnapshotDownload(ref, **kwargs).run()


def download_file(repo_id: str, filename: str, *, repo_type: str = "model", **kwargs: Any) -> Path:
    """One file of a hub repo (e.g. a Space's weights) into the hub cache, under the same deadlines."""
    return SnapshotDownload(repo_id, repo_type=repo_type, only=(filename,), **kwargs).run() / filename

"""A stand-in Hugging Face hub on 127.0.0.1, for tests and offline demos (no real hub is reachable).

It answers the calls huggingface_hub and ``vfmstudio.ml.download`` make (checked against huggingface_hub
2.4's ``HfApi.model_info`` and ``hf_hub_download``):

- ``GET /api/models/{repo}[/revision/{rev}]`` (and ``/api/spaces/...`` for Spaces): ``sha``, ``siblings`` (``rfilename``, ``size``, ``blobId``,
  ``lfs.sha256`` for LFS files), ``gated``, ``cardData.license``;
- ``HEAD|GET /{repo}/resolve/{rev}/{file}`` (``/spaces/{repo}/resolve/...`` for Spaces): ``X-Repo-Commit``, ``ETag`` (the git blob id, or the LFS
  sha256, which real LFS files also send as ``X-Linked-Etag`` / ``X-Linked-Size``), ``Content-Length``,
  ``Accept-Ranges``, and ``Range`` requests answered with 206 / ``Content-Range`` (416 past the end);
- errors as the hub sends them: 404 with ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``,
  and 401 ``GatedRepo`` for a gated repo's files unless ``Authorization: Bearer <its token>`` is sent.

Faults for tests, set on the instance at any time: ``fault = "drop"`` closes the connection after
``drop_after`` bytes of a body (``drops_left`` times), ``"trickle"`` sends one byte every
``trickle_interval_s`` (one second by default), ``"stall"`` sends the headers and then nothing, ``"stall_headers"`` not even the headers;
``fault_target`` picks ``"files"``, ``"api"`` or ``"all"``; files named in ``corrupt`` are served with
other bytes than the listing's checksum, files in ``oversize`` with more bytes than listed. ``requests`` logs every request.

    with FakeHub() as fake:
        fake.add_repo("org/tiny", folder)
        os.environ["HF_ENDPOINT"] = fake.url

    python -m vfmstudio.testing.fake_hub [--tiny-root DIR]   # serve the tiny models
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
import socket
import struct
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".model", ".npz", ".msgpack", ".h5")


def random_checkpoint(n_floats: int = 60_000, seed: int = 0) -> dict[str, bytes]:
    """A torch-free stand-in repo: config files, random safetensors weights (not zeros, so a misplaced
    resumed chunk shows), and files a download must skip (pickle weights, code, a sub-folder)."""
    header = {"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    weights = struct.pack("<Q", len(raw)) + raw + random.Random(seed).randbytes(4 * n_floats)
    return {
        "config.json": json.dumps({"model_type": "dinov2", "hidden_size": 8}).encode(),
        "preprocessor_config.json": b'{"image_processor_type": "BitImageProcessor"}',
        "model.safetensors": weights,
        "pytorch_model.bin": b"PK\x03\x04 a pickle a download must never fetch",
        "modeling_evil.py": b"import os",
        "onnx/model.json": b"{}",
    }


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content (what the hub sends as a non-LFS file's ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeFile:
    data: bytes
    lfs: bool

    @functools.cached_property
    def etag(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.lfs else self.blob_id

    @functools.cached_property
    def blob_id(self) -> str:
        return git_blob_id(self.data)


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    gated: bool = False
    token: str | None = None  # the access token that opens a gated repo
    licence: str = "apache-2.0"
    repo_type: str = "model"
    commit: str = field(default="")

    def __post_init__(self) -> None:
        if not self.commit:
            digest = hashlib.sha1(self.repo_id.encode())
            for name in sorted(self.files):
                digest.update(name.encode() + self.files[name].etag.encode())
            self.commit = digest.hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(len(f.data) for f in self.files.values())


class FakeHub:
    """The server; ``url`` is its base URL (set HF_ENDPOINT to it). Thread-safe counters for tests."""

    def __init__(self, *, trickle_interval_s: float = 1.0, stall_s: float = 120.0) -> None:
        self.repos: dict[tuple[str, str], FakeRepo] = {}  # (repo type, id) -> repo
        self.fault: str | None = None  # None | "drop" | "trickle" | "stall"
        self.fault_target = "files"  # "files" | "api" | "all"
        self.drop_after = 64 * 1024
        self.drops_left = 1
        self.trickle_interval_s = trickle_interval_s
        self.stall_s = stall_s
        self.corrupt: set[str] = set()  # file names served with flipped bytes (listing unchanged)
        self.oversize: dict[str, int] = {}  # file name -> extra bytes served beyond its listed size
        self.requests: list[dict[str, Any]] = []
        self.bytes_sent = 0
        self.bytes_by_target = {"api": 0, "files": 0, "errors": 0}  # body bytes sent, by kind of request
        self.first_body_byte = threading.Event()  # set when any file body starts flowing
        self.headers_stalled = threading.Event()  # set when a "stall_headers" request is being held
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- repos
    def add_repo(
        self,
        repo_id: str,
        source: Path | dict[str, bytes],
        *,
        gated: bool = False,
        token: str | None = None,
        licence: str = "apache-2.0",
        repo_type: str = "model",
    ) -> FakeRepo:
        """Serve ``source`` (a folder's files, sub-folders included, or name -> bytes) as ``repo_id``."""
        if isinstance(source, dict):
            raw = dict(source)
        else:
            root = Path(source)
            raw = {
                p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            }
        files = {name: FakeFile(data, name.endswith(LFS_SUFFIXES)) for name, data in raw.items()}
        repo = FakeRepo(repo_id, files, gated=gated, token=token, licence=licence, repo_type=repo_type)
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def add_tiny(self, name: str, repo_id: str, tiny_root: Path, **kwargs: Any) -> FakeRepo:
        """Serve the tiny checkpoint ``name`` (built by vfmstudio.testing, imports torch) as ``repo_id``."""
        from vfmstudio.testing.fixtures import tiny_model_dir

        return self.add_repo(repo_id, tiny_model_dir(name, tiny_root), **kwargs)

    # ---- server
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._stop.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes trickling and stalled handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def environment(self, home: Path) -> dict[str, str]:
        """Environment for a process that should use this hub and a fresh cache under ``home``.

        HF_ENDPOINT is read by vfmstudio at call time; huggingface_hub copies it into ``constants`` at
        import, so code calling huggingface_hub directly must pass ``endpoint=`` (or start a new process).
        """
        return {
            "HF_ENDPOINT": self.url,
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(home / "hub"),
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }

    def file_requests(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/" + name) and "/resolve/" in r["path"]]

    def _log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _sent(self, n: int, target: str) -> None:
        with self._lock:
            self.bytes_sent += n
            self.bytes_by_target[target] += n

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drops_left <= 0:
                return False
            self.drops_left -= 1
            return True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # quiet tests

    # ---- dispatch
    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.fake._log(
            {
                "method": self.command,
                "path": path,
                "range": self.headers.get("Range"),
                "auth": self.headers.get("Authorization"),
            }
        )
        parts = path.strip("/").split("/")
        kind = "model"
        if parts and parts[0] in ("spaces", "datasets") and len(parts) >= 6:
            kind, parts = parts[0][:-1], parts[1:]  # /spaces/{id}/resolve/... : a Space's file
        try:
            if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "spaces", "datasets"):
                self._api(parts[1][:-1], parts[2:], head=head)
            elif len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(kind, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head=head)
            else:
                self._error(404, "RepoNotFound", "no such route")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _repo(self, kind: str, repo_id: str, revision: str) -> FakeRepo | None:
        repo = self.fake.repos.get((kind, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        if revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    def _api(self, kind: str, parts: list[str], *, head: bool) -> None:
        repo_id = "/".join(parts[:2])
        revision = parts[3] if len(parts) >= 4 and parts[2] == "revision" else "main"
        repo = self._repo(kind, repo_id, revision)
        if repo is None:
            return
        siblings = []
        for name, f in sorted(repo.files.items()):
            entry: dict[str, Any] = {"rfilename": name, "size": len(f.data), "blobId": f.blob_id}
            if f.lfs:
                entry["lfs"] = {"sha256": f.etag, "size": len(f.data), "pointerSize": 134}
            siblings.append(entry)
        info = {
            "_id": repo.commit[:24],
            "id": repo_id,
            "modelId": repo_id,
            "sha": repo.commit,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": [],
            "siblings": siblings,
            "cardData": {"license": repo.licence},
            "usedStorage": repo.total_bytes,
        }
        body = json.dumps(info).encode()
        self._send(200, {"Content-Type": "application/json"}, body, head=head, target="api")

    def _resolve(self, kind: str, repo_id: str, revision: str, name: str, *, head: bool) -> None:
        repo = self._repo(kind, repo_id, revision)
        if repo is None:
            return
        if repo.gated and self.headers.get("Authorization") != f"Bearer {repo.token}":
            self._error(401, "GatedRepo", "Access to model is restricted. You must have access to it.")
            return
        f = repo.files.get(name)
        if f is None:
            self._error(404, "EntryNotFound", f"{name} does not exist", commit=repo.commit)
            return
        etag = f'"{f.etag}"'
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": repo.commit,
            "ETag": etag,
            "Accept-Ranges": "bytes",
        }
        if f.lfs:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(len(f.data))})
        data, status = f.data, 200
        if name in self.fake.corrupt:
            data = bytes(b ^ 0xFF for b in data)
        data += b"\0" * self.fake.oversize.get(name, 0)
        wanted = _parse_range(self.headers.get("Range"), len(data))
        if wanted == "bad":
            headers["Content-Range"] = f"bytes */{len(data)}"
            self._send(416, headers, b"", head=head, target="files")
            return
        if wanted is not None:
            start, end = wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, headers, data, head=head, target="files")

    # ---- sending
    def _error(self, status: int, code: str, message: str, *, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, body, head=self.command == "HEAD", target="errors")

    def _send(self, status: int, headers: dict[str, str], body: bytes, *, head: bool, target: str) -> None:
        fake = self.fake
        if fake.fault == "stall_headers" and fake.fault_target in (target, "all"):
            fake.headers_stalled.set()
            fake._stop.wait(fake.stall_s)  # the request was read; no answer at all
            self.close_connection = True
            return
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head or not body:
            self.wfile.flush()
            return
        fake = self.fake
        faulty = fake.fault is not None and fake.fault_target in (target, "all")
        if target == "files":
            fake.first_body_byte.set()
        if faulty and fake.fault == "trickle":
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                fake._sent(1, target)
                if fake._stop.wait(fake.trickle_interval_s):
                    break
            self.close_connection = True
            return
        if faulty and fake.fault == "stall":
            self.wfile.flush()
            fake._stop.wait(fake.stall_s)
            self.close_connection = True
            return
        if faulty and fake.fault == "drop" and len(body) > fake.drop_after and fake._take_drop():
            self.wfile.write(body[: fake.drop_after])
            self.wfile.flush()
            fake._sent(fake.drop_after, target)
            self.connection.shutdown(socket.SHUT_RDWR)  # a FIN mid-body: the client sees a short read
            self.close_connection = True
            return
        self.wfile.write(body)
        self.wfile.flush()
        fake._sent(len(body), target)


def _parse_range(value: str | None, size: int) -> tuple[int, int] | str | None:
    """``bytes=a-`` / ``bytes=a-b`` -> (a, b) inclusive; None without a Range; "bad" when unsatisfiable."""
    if not value or not value.startswith("bytes="):
        return None
    spec = value[len("bytes=") :].split(",")[0].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        return "bad"
    return start, end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the tiny models as a stand-in hub on 127.0.0.1")
    parser.add_argument(
        "--tiny-root",
        type=Path,
        default=Path(tempfile.gettempdir()) / "vfmstudio-tiny-models",
        help="where to build them",
    )
    args = parser.parse_args(argv)
    fake = FakeHub()
    for name, repo_id in (("dinov2", "facebook/dinov2-small"), ("clip", "openai/clip-vit-base-patch32")):
        fake.add_tiny(name, repo_id, args.tiny_root)
    fake.start()
    print(f"HF_ENDPOINT={fake.url}  (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

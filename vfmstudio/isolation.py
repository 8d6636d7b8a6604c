"""Third-party plugin tools in a worker process, so that a tool ending, crashing or hanging its
process cannot take the caller's work or exit status with it (issue 21; ADR 0106).

``VFMSTUDIO_PLUGIN_ISOLATION``: ``auto`` (default: tools of third-party plugins in a worker,
built-in ones in-process), ``always`` or ``never``. Built-ins (the plugins shipped with vfmstudio
and those a :class:`~vfmstudio._plugin_host.PluginHost` is told are built-in) are trusted code and
run where their model caches live; so does a tool whose module exists only in memory.

One worker per plugin is started on first use and reused (its model and feature caches persist
between calls); after a crash, a time-out or a cancel it is killed and the next call starts a
fresh one. Requests go to the worker pickled (from the trusted side); everything coming back is
JSON, with arrays as ``.npy`` files (``allow_pickle=False``) in a folder the caller owns, read
back through :meth:`Prediction.from_json`: the worker runs plugin code, so nothing it sends is
unpickled. The worker:

- runs in its own session (process group): a time-out or cancel kills the group, forked children
  of the tool included, and every worker group is killed when the calling process exits;
- writes whatever the tool prints on stdout to stderr, so ``--json`` output stays valid;
- runs the whole of :func:`vfmstudio.execution.run_tool`, validation included, inside the caller's
  time limit; the caller validates the results again (a tool cannot patch the host's checks).

Where the platform cannot pass a socket to a child (Windows), tools run in-process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vfmstudio import settings

ISOLATION_ENV = "VFMSTUDIO_PLUGIN_ISOLATION"
#: Largest JSON message accepted from a worker (arrays travel as files, not in messages).
MAX_MESSAGE_BYTES = 64 << 20
MODES: tuple[str, ...] = settings.SETTINGS[ISOLATION_ENV].choices


def isolation_mode() -> str:
    """The setting's value; an unknown one is refused with a one-line reason (ValueError)."""
    return str(settings.get(ISOLATION_ENV))  # SettingError is a ValueError


_BUILTIN_MODULES: set[str] = set()


def mark_builtin(modules: Any) -> None:
    """Record the top-level modules a plugin host loads as built-ins (trusted, run in-process)."""
    _BUILTIN_MODULES.update(str(m).split(".", 1)[0] for m in modules)


def is_builtin(tool: Any) -> bool:
    """True for tools of the plugins a host loaded as built-ins (by the modules that run them)."""
    from vfmstudio._plugin_host import BUILTIN_PLUGINS

    modules = {tool.run.split(":", 1)[0]}
    if tool.prepare:
        modules.add(tool.prepare.split(":", 1)[0])
    return all(m.split(".", 1)[0] in (*BUILTIN_PLUGINS, *_BUILTIN_MODULES) for m in modules)


def runs_isolated(tool: Any) -> bool:
    """Whether :func:`vfmstudio.execution.run_tool` sends ``tool`` to a worker process."""
    if not hasattr(socket, "socketpair") or os.name != "posix":
        return False
    mode = isolation_mode()
    wanted = mode == "always" or (mode == "auto" and not is_builtin(tool))
    return wanted and _has_source(tool)


def _has_source(tool: Any) -> bool:
    """A worker can load the tool's code: its module is a file, or importable by name. A module
    made in memory (an embedding application's, a test's) can only run where it lives."""
    name = tool.run.split(":", 1)[0]
    module = sys.modules.get(name)
    if module is not None:
        return bool(getattr(module, "__file__", None))
    return True  # not imported yet: the worker imports it by name, as the caller would


# ---------------------------------------------------------------------------------- stdout


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what in-process code prints (Python and C level) to stderr while the block runs, so a
    tool's chatter cannot corrupt ``--json`` output on stdout."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no real stdout (pythonw, closed)
        yield
        return
    old_stdout = sys.stdout
    try:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        sys.stdout = old_stdout
        os.dup2(saved, 1)
        os.close(saved)


# ---------------------------------------------------------------------------------- the parent side


class WorkerDied(Exception):
    """The worker ended during a call; ``str`` says how (exit status or signal)."""


class _PastDeadline(Exception):
    """The call ran past its time limit (not TimeoutError: that is an OSError, which means a
    broken connection here)."""


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class _Worker:
    """One worker process and the socket to it; used by one call at a time."""

    def __init__(self, name: str):
        from multiprocessing.connection import Connection

        self.name = name
        self.folder = Path(tempfile.mkdtemp(prefix="vfmstudio-worker-"))  # result arrays, per reply
        parent_sock, child_sock = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vfmstudio.isolation", str(child_sock.fileno()), str(self.folder)],
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the worker and everything it started (its process group)."""
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(5)
        with contextlib.suppress(OSError):
            self.conn.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def receive(self) -> dict:
        """One JSON message from the worker (never unpickled: the worker runs plugin code)."""
        data = self.conn.recv_bytes(MAX_MESSAGE_BYTES)
        try:
            message = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise EOFError(f"unreadable message ({exc})") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise EOFError("unreadable message")
        return message

    def call(
        self, request: tuple, *, deadline: float | None, cancel: Any, on_message: Callable[[dict], None]
    ) -> dict:
        """Send ``request`` and wait for its ``ok``/``error`` reply, passing other messages on.

        Returns the reply; raises _PastDeadline, the cancel token's Cancelled, or
        :class:`WorkerDied`. On any of these the worker is killed."""
        try:
            self.conn.send(request)
            while True:
                if cancel is not None and cancel.cancelled:
                    self.kill()
                    cancel.raise_if_cancelled()
                wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
                if self.conn.poll(wait):
                    message = self.receive()
                    if message["type"] in ("ok", "error"):
                        return message
                    on_message(message)
                elif deadline is not None and time.monotonic() >= deadline:
                    self.kill()
                    raise _PastDeadline
                elif not self.alive() and not self.conn.poll(0):
                    raise EOFError
        except (EOFError, OSError) as exc:
            with contextlib.suppress(Exception):
                self.proc.wait(5)
            code = self.proc.poll()
            self.kill()
            raise WorkerDied(_describe_exit(code)) from exc


_WORKERS: dict[str, _Worker] = {}
_WORKERS_LOCK = threading.Lock()


def _worker_for(name: str) -> _Worker:
    with _WORKERS_LOCK:
        worker = _WORKERS.get(name)
        if worker is None or not worker.alive():
            worker = _WORKERS[name] = _Worker(name)
        return worker


@atexit.register
def shutdown_workers() -> None:
    """Kill every worker (and the children of their tools): nothing outlives the caller."""
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
        _WORKERS.clear()
    for w in workers:
        w.kill()


def _module_files(tool: Any) -> dict[str, str]:
    """Files of tool modules the worker could not import by name (loaded from a path)."""
    out = {}
    for target in (tool.run, tool.prepare):
        if not target:
            continue
        module = sys.modules.get(target.split(":", 1)[0])
        spec = getattr(module, "__spec__", None)
        if (
            module is not None
            and getattr(module, "__file__", None)
            and spec is not None
            and getattr(spec, "loader", None) is not None
            and type(spec.loader).__name__ == "SourceFileLoader"
        ):
            out[module.__name__] = str(module.__file__)
    return out


def run_isolated(
    tool: Any,
    images: Sequence[Any],
    params: Mapping[str, Any],
    *,
    model: str | None,
    device: str,
    precision: str,
    cancel: Any,
    timeout: float | None,
    on_progress: Callable[[float | None, str], None] | None = None,
    on_partial: Callable[[Any], None] | None = None,
    prepare: bool = False,
) -> Any:
    """Run ``tool`` in its plugin's worker; returns the worker's Prediction (not yet re-validated),
    or with ``prepare`` runs its batched preparation there (filling the worker's caches).

    Raises :class:`vfmstudio.execution.ToolError` (a crash, a time-out or the tool's own error,
    naming plugin and tool) and :class:`~vfmstudio.core.cancel.Cancelled`."""
    from vfmstudio.execution import TOOL_TIMEOUT_ENV, ToolError

    worker = _worker_for(tool.plugin or tool.run.split(":", 1)[0])
    request = (
        "prepare" if prepare else "run",
        tool,
        list(images),
        dict(params),
        model,
        device,
        precision,
        _module_files(tool),
    )

    def on_message(message: dict) -> None:
        from vfmstudio.core.results import ResultError, result_from_json

        if message["type"] == "progress" and on_progress is not None:
            fraction = message.get("fraction")
            on_progress(
                None if not isinstance(fraction, int | float) else float(fraction),
                str(message.get("message", ""))[:500],
            )
        elif message["type"] == "partial" and on_partial is not None:
            with contextlib.suppress(ResultError, TypeError, ValueError, KeyError):
                on_partial(result_from_json(message["result"]))  # a preview: a bad one is skipped

    deadline = None if not timeout else time.monotonic() + timeout
    with worker.lock:
        try:
            reply = worker.call(request, deadline=deadline, cancel=cancel, on_message=on_message)
        except _PastDeadline:
            raise ToolError(
                tool,
                f"did not finish within {timeout:g} s and was stopped (raise the limit with "
                f"--timeout or {TOOL_TIMEOUT_ENV}; 0 means none)",
            ) from None
        except WorkerDied as exc:
            raise ToolError(
                tool, f"the tool ended its worker process ({exc}); nothing was returned"
            ) from None
        if reply["type"] == "ok":
            return _read_reply(tool, worker, reply, prepare)
    kind, message = reply.get("kind"), " ".join(str(reply.get("message", "")).split())[:2000]
    if kind == "cancelled":
        from vfmstudio.core.cancel import Cancelled

        raise Cancelled(message)
    raise ToolError(tool, message or "failed", user_error=reply.get("user_error") is True)


def _read_reply(tool: Any, worker: _Worker, reply: dict, prepare: bool) -> Any:
    """The worker's result, read as untrusted JSON plus ``.npy`` files in the caller's folder."""
    from vfmstudio.core.results import Prediction, ResultError
    from vfmstudio.execution import ToolError

    if prepare:
        return reply.get("value") is True
    name = str(reply.get("folder", ""))
    if not (
        name.isascii() and name.isdigit()
    ):  # the worker names its reply folders 0, 1, 2, ...; nothing else is touched
        raise ToolError(tool, f"the worker sent back an unreadable result (folder {name[:50]!r})")
    folder = worker.folder / name
    try:
        prediction = reply.get("prediction")
        if not isinstance(prediction, Mapping):
            raise TypeError("no prediction in the reply")
        return Prediction.from_json(prediction, sidecar_dir=folder)
    except (ResultError, TypeError, ValueError, OSError) as exc:
        raise ToolError(tool, f"the worker sent back an unreadable result ({exc})") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------- the worker side


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the thread that started it ends, which includes its
    process dying by SIGKILL. A worker started from a thread that ends first (an inference thread
    replaced after a time-out) goes with it; the next call starts a fresh one."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(fd: int, folder: str) -> None:
    import importlib.util
    import itertools
    from multiprocessing.connection import Connection

    from vfmstudio.core.cancel import Cancelled
    from vfmstudio.execution import ToolError, prepare_tool, run_tool

    _die_with_parent()
    conn = Connection(fd)
    os.dup2(2, 1)  # the tool's stdout goes to stderr, never into the protocol or the caller's --json
    sys.stdout = sys.stderr
    me = os.getpid()
    replies = itertools.count()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        kind, tool, images, params, model, device, precision, files = request
        for name, path in files.items():  # a plugin the caller loaded from a file, not by name
            if name not in sys.modules and importlib.util.find_spec(name) is None:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is not None and spec.loader is not None:
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    spec.loader.exec_module(module)

        def send(message: dict) -> None:
            if os.getpid() == me:  # a forked child of the tool must never speak for the worker
                conn.send_bytes(json.dumps(message, allow_nan=False).encode("utf-8"))

        def progress(fraction: float | None, text: str) -> None:
            with contextlib.suppress(TypeError, ValueError):
                send({"type": "progress", "fraction": fraction, "message": str(text)})

        def partial(obj: Any) -> None:
            with contextlib.suppress(TypeError, ValueError, AttributeError):  # previews only
                send({"type": "partial", "result": obj.to_json()})

        try:
            if kind == "prepare":
                reply: dict = {
                    "type": "ok",
                    "value": prepare_tool(
                        tool, images, params, model=model, device=device, precision=precision, isolate=False
                    ),
                }
            else:
                prediction = run_tool(
                    tool,
                    images,
                    params,
                    model=model,
                    device=device,
                    precision=precision,
                    on_progress=progress,
                    on_partial=partial,
                    isolate=False,
                )
                name = str(next(replies))
                # Every array as a file, exactly (NaN included): the caller checks the values again.
                reply = {
                    "type": "ok",
                    "folder": name,
                    "prediction": prediction.to_json(Path(folder) / name, inline_limit=0),
                }
        except ToolError as exc:
            reply = {"type": "error", "kind": "tool", "message": exc.args[0], "user_error": exc.user_error}
        except Cancelled as exc:
            reply = {"type": "error", "kind": "cancelled", "message": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - anything else is the tool's failure, reported
            reply = {"type": "error", "kind": "tool", "message": f"{type(exc).__name__}: {exc}"}
        if os.getpid() != me:
            os._exit(0)  # the forked copy of a tool that returned: leave quietly
        try:
            send(reply)
        except (TypeError, ValueError) as exc:
            send(
                {
                    "type": "error",
                    "kind": "tool",
                    "message": f"returned something that cannot be sent back ({type(exc).__name__}: {exc})",
                }
            )


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2])

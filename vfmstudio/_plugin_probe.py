"""Import-time bounds for third-party plugins: each new or changed one is first loaded in a subprocess.

A plugin that calls ``os._exit``, crashes or sleeps forever while it is imported (or registers)
would take the whole program with it, ``vfmstudio plugins`` included. So before the host imports an
entry-point plugin in-process, a child Python loads it through the same host code with a time limit
(``VFMSTUDIO_PLUGIN_DISCOVERY_TIMEOUT_S``). The verdict is cached per distribution name, version
and module file mtime, so the cost (one interpreter start per plugin, all in parallel) is paid
once per installed version: a failing plugin is then skipped with its one-line error at no cost.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vfmstudio import settings

log = logging.getLogger(__name__)

TIMEOUT_ENV = "VFMSTUDIO_PLUGIN_DISCOVERY_TIMEOUT_S"
CACHE_VERSION = 1
MAX_CACHED = 256  # verdicts kept (several environments may share one cache folder)

# The child: take the parent's sys.path (plugins found on it must be found again), load the one entry
# point through the host's own code path, write the verdict to a file (plugin code may print anything).
_CHILD = """
import json, sys
args = json.loads(sys.argv[1])
sys.path[:] = args["sys_path"]
import importlib.metadata as md
from vfmstudio._plugin_host import PluginHost
host = PluginHost(builtins=(), entry_points=False, safe_mode=False)
ep = next((e for e in md.entry_points(group=args["group"])
           if e.name == args["name"] and e.value == args["value"]), None)
if ep is None:  # not visible to a fresh interpreter: no verdict, the parent loads it as before
    verdict = {"ok": None, "error": None}
else:
    host._load_one(ep.name, "entry point", ep.load, version="", module_name=ep.value)
    status = host.statuses[ep.name]
    verdict = {"ok": status.status == "loaded", "error": status.error}
with open(args["out"], "w", encoding="utf-8") as f:
    json.dump(verdict, f)
"""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    error: str | None = None
    timed_out: bool = False


def _retry_with_longer(hit: dict, timeout: float) -> bool:
    """A plugin that only timed out is probed again once the user allows it more time."""
    after = hit.get("timed_out_after_s")
    return isinstance(after, int | float) and timeout > after


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vfmstudio" / "plugin-probes.json"


def cache_key(ep: md.EntryPoint) -> str | None:
    """``dist==version@mtime_ns`` of the entry point's top-level module, found without importing it;
    None when it cannot be located (then the plugin is probed every time)."""
    dist = getattr(ep, "dist", None)
    try:
        top = str(ep.value).split(":", 1)[0].strip().split(".", 1)[0]
        spec = importlib.util.find_spec(top)  # a top-level name: finds the file, runs nothing
        origin = spec.origin if spec is not None else None
        mtime = os.stat(origin).st_mtime_ns if origin and os.path.exists(origin) else None
    except Exception:  # noqa: BLE001 - odd metadata: no key, the plugin is simply probed again
        return None
    if mtime is None:
        return None
    name = getattr(dist, "name", None) or "?"
    version = getattr(dist, "version", None) or "?"
    return f"{ep.group}:{ep.name}={ep.value} {name}=={version}@{mtime}"


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or not isinstance(data.get("verdicts"), dict)
    ):
        return {}
    return data["verdicts"]


def _write_cache(path: Path, verdicts: dict[str, dict]) -> None:
    verdicts = dict(list(verdicts.items())[-MAX_CACHED:])  # oldest first: stale versions fall off
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".plugin-probes.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": CACHE_VERSION, "verdicts": verdicts}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home only costs a probe next time
        log.info("could not write the plugin probe cache %s: %s", path, exc)


def probe(
    entry_points: Sequence[md.EntryPoint], *, timeout_s: float | None = None, cache: Path | None = None
) -> dict[str, Verdict]:
    """A verdict per entry-point name: cached ones at once, the others from child processes run in
    parallel, each bounded by ``timeout_s`` (default: the setting). An entry point a child cannot
    see (one made up in-process) gets no verdict."""
    if not entry_points:
        return {}
    timeout = timeout_s if timeout_s is not None else float(settings.get(TIMEOUT_ENV, strict=False))
    path = cache if cache is not None else cache_path()
    stored = _read_cache(path)
    verdicts: dict[str, Verdict] = {}
    todo = []
    for ep in entry_points:
        key = cache_key(ep)
        hit = stored.get(key) if key else None
        if isinstance(hit, dict) and isinstance(hit.get("ok"), bool) and not _retry_with_longer(hit, timeout):
            verdicts[ep.name] = Verdict(hit["ok"], hit.get("error"))
        else:
            todo.append((ep, key))
    if not todo:
        return verdicts
    with tempfile.TemporaryDirectory(prefix="vfmstudio-probe-") as tmp:
        running = [(ep, key, *_start(ep, Path(tmp) / f"{i}.json")) for i, (ep, key) in enumerate(todo)]
        deadline = time.monotonic() + timeout
        for ep, key, proc, out in running:
            verdict = _finish(proc, out, max(0.0, deadline - time.monotonic()), timeout)
            if verdict is None:
                continue
            verdicts[ep.name] = verdict
            if key is not None:
                stored.pop(key, None)  # re-inserted last: newest
                stored[key] = {"ok": verdict.ok, "error": verdict.error}
                if verdict.timed_out:
                    stored[key]["timed_out_after_s"] = timeout
    _write_cache(path, stored)
    return verdicts


def _start(ep: md.EntryPoint, out: Path) -> tuple[subprocess.Popen, Path]:
    args = json.dumps(
        {
            "sys_path": [p for p in sys.path if isinstance(p, str)],
            "group": ep.group,
            "name": ep.name,
            "value": ep.value,
            "out": str(out),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # its own process group: a timeout kills its children too
    return proc, out


def _finish(proc: subprocess.Popen, out: Path, wait_s: float, timeout: float) -> Verdict | None:
    try:
        code = proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return Verdict(
            False,
            f"did not finish loading within {timeout:g} s (probed in a subprocess; "
            f"raise {TIMEOUT_ENV} if it is only slow)",
            timed_out=True,
        )
    _kill_group(proc)  # anything the plugin forked and left behind
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
        if data["ok"] is None:
            return None
        return Verdict(bool(data["ok"]), data.get("error"))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if code < 0:
        try:
            how = f"crashed with signal {signal.Signals(-code).name}"
        except ValueError:
            how = f"crashed with signal {-code}"
    else:
        how = f"ended the process with exit status {code}"
    return Verdict(False, f"{how} while loading (probed in a subprocess)")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()

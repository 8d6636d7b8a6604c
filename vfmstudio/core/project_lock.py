"""Who writes a project: a lock file that marks it open for writing, and a short critical section
around each save. See ADR 0105.

- :class:`ProjectLock` is ``.<name>.lock`` next to the project file, holding the owner's pid,
  host, process start time and program. The window holds it while a project is open; ``vfmstudio
  import`` holds it while it runs. A lock whose owner is gone (same host, pid not running, or the
  pid now belongs to a process started later) is stale and taken over; a lock from another host
  is respected (its owner cannot be checked from here).
- :func:`save_section` serialises the check-and-replace of :meth:`Project.save` between processes
  (an ``flock`` on the project folder, released by the kernel when its holder dies, so it can never
  go stale). Where ``flock`` is missing (Windows) the content check of the save still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from vfmstudio.core.atomic import new_file_mode

try:  # at import, not per save: a forked writer must not need the import lock (threads at fork)
    import fcntl
except ImportError:  # pragma: no cover - Windows: the save's content check still holds
    fcntl = None  # type: ignore[assignment]

#: A lock file that cannot be read for this long is a writer that died between create and write.
UNREADABLE_STALE_S = 30.0


class ProjectLockedError(Exception):
    """The project is open for writing in another live process; ``owner`` says which."""

    def __init__(self, path: Path, owner: LockOwner):
        self.path = path
        self.owner = owner
        super().__init__(f"{path.name}: open for writing by {owner.describe()}; close it there first")


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    started: str  # wall clock, for people
    proc_start: str  # the process's start time as the kernel sees it ("" when unknown): detects pid reuse
    program: str
    token: str  # unique per lock: a takeover checks it removed the lock it judged stale

    def describe(self) -> str:
        return f"{self.program} (pid {self.pid} on {self.host}, since {self.started.replace('T', ' ')[:19]})"

    @classmethod
    def current(cls, program: str) -> LockOwner:
        return cls(
            os.getpid(),
            socket.gethostname(),
            time.strftime("%Y-%m-%dT%H:%M:%S"),
            _proc_start(os.getpid()),
            program,
            uuid.uuid4().hex,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LockOwner | None:
        try:
            obj = json.loads(data.decode("utf-8"))
            return cls(
                int(obj["pid"]),
                str(obj["host"]),
                str(obj["started"]),
                str(obj.get("proc_start", "")),
                str(obj.get("program", "vfmstudio")),
                str(obj.get("token", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            return None

    def is_alive(self) -> bool:
        """False only when it is sure: same host, and the pid is gone or is another process now."""
        if self.host != socket.gethostname():
            return True
        if self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            pass
        except OSError:
            return True
        now = _proc_start(self.pid)
        return not (self.proc_start and now and now != self.proc_start)


def _proc_start(pid: int) -> str:
    """Start time of ``pid`` in clock ticks since boot (Linux), "" elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fp:
            data = fp.read()
        return data.rsplit(b")", 1)[1].split()[19].decode()  # field 22; the name may hold ')'
    except (OSError, IndexError, UnicodeDecodeError):
        return ""


def lock_path(project_path: str | os.PathLike[str]) -> Path:
    p = Path(project_path)
    return p.with_name(f".{p.name}.lock")


class ProjectLock:
    """The "open for writing" mark of one project file. Not re-entrant; one per process and file."""

    def __init__(self, project_path: str | os.PathLike[str], program: str = "vfmstudio"):
        self.project_path = Path(project_path).absolute()
        self.path = lock_path(self.project_path)
        self.program = program
        self.owner: LockOwner | None = None  # set while we hold it

    @property
    def held(self) -> bool:
        return self.owner is not None

    def holder(self) -> LockOwner | None:
        """The current owner on disk (None when free or unreadable)."""
        try:
            return LockOwner.from_bytes(self.path.read_bytes())
        except OSError:
            return None

    def acquire(self, *, wait_s: float = 0.0, poll_s: float = 0.05) -> None:
        """Take the lock, waiting up to ``wait_s`` for a live owner to let go; a stale one is
        taken over at once. Raises :class:`ProjectLockedError` naming the owner."""
        if self.owner is not None:
            return
        deadline = time.monotonic() + wait_s
        me = LockOwner.current(self.program)
        while True:
            if self._create(me):
                self.owner = me
                return
            other = self._stale_owner()
            if other is True:
                continue  # vanished meanwhile: try again at once
            if isinstance(other, LockOwner) and self._take_over(other):
                continue
            if time.monotonic() >= deadline:
                owner = self.holder()
                if owner is None:  # still unreadable: being written
                    owner = LockOwner(0, "?", "", "", "another process", "")
                raise ProjectLockedError(self.project_path, owner)
            time.sleep(poll_s)

    def _create(self, me: LockOwner) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, new_file_mode())
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fp:
            fp.write(json.dumps(asdict(me)).encode("utf-8"))
        return True

    def _stale_owner(self) -> LockOwner | bool | None:
        """True: the file is gone; a LockOwner: its owner is dead; None: live (or being written)."""
        try:
            data = self.path.read_bytes()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True
        except OSError:
            return None
        owner = LockOwner.from_bytes(data)
        if owner is None:
            if age < UNREADABLE_STALE_S:
                return None
            return LockOwner(0, "", "", "", "", "")  # unreadable for long: a writer died mid-create
        return None if owner.is_alive() else owner

    def _take_over(self, stale: LockOwner) -> bool:
        """Remove a stale lock, but only the one judged stale: two processes may take over at once."""
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            moved = LockOwner.from_bytes(aside.read_bytes())
        except OSError:
            moved = None
        same = (moved.token == stale.token) if moved is not None else not stale.token
        if not same:
            # Another process took over first and we moved its fresh lock: give it back (link fails
            # if yet another lock appeared meanwhile; that owner then holds it, which is also right).
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        with contextlib.suppress(OSError):
            os.unlink(aside)
        return True

    def release(self) -> None:
        """Remove the lock if it is still ours (a takeover by another process leaves theirs)."""
        if self.owner is None:
            return
        current = self.holder()
        if current is not None and current.token == self.owner.token:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.owner = None

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def save_section(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` while a save checks and replaces the project."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: same as Windows
            pass
        yield
    finally:
        os.close(fd)  # closing drops the flock

"""One writer per database: an exclusive ``flock`` on ``<db>.lock`` next to the database.

The daemon holds the lock for its whole life (so a second daemon, or a manual ``collect`` or
``prune``, is refused while it runs); ``collect``, ``prune`` and ``daemon --once`` hold it only
while they write. The holder writes its pid, host, command and start time into the file so
the refused process can say who is in the way. The kernel drops the lock when the holder
exits, however it exits, so a crashed daemon never leaves a stale lock behind; only the text
may stay, and it is overwritten by the next holder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import EXIT_USAGE, BaselinerError

__all__ = ["Holder", "LockedError", "WriterLock", "holder", "lock_path"]

logger = logging.getLogger(__name__)

_POLL = 0.2
_GRACE = 0.5
"""Even without --wait, retry this long: ``status`` probes the lock with a brief shared
lock, which must not make a starting daemon fail."""


class LockedError(BaselinerError):
    """Another process holds the writer lock (exit 2)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    since: str

    def __str__(self) -> str:
        return f"'{self.command}' (pid {self.pid} on {self.host}, since {self.since})"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "command": self.command, "since": self.since}


def lock_path(db: Path) -> Path:
    """``<db>.lock`` beside the real database file (symlinks resolved)."""
    real = Path(os.path.realpath(db))
    return real.with_name(real.name + ".lock")


class WriterLock:
    """``with WriterLock(db, "collect").acquire(wait=None): ...``

    ``wait``: None fails at once when the lock is held, ``math.inf`` waits as long as it
    takes, a number of seconds waits at most that long. ``stop`` is polled while waiting
    so a signal can end the wait.
    """

    def __init__(self, db: Path, command: str) -> None:
        self.path = lock_path(db)
        self.db = db
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: float | None = None,
                stop: Callable[[], bool] | None = None) -> WriterLock:
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + (wait if wait is not None else _GRACE)
        announced = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                other = _read(fd)
                if time.monotonic() >= deadline or (stop and stop()):
                    raise LockedError(self._refusal(other, wait))
                if not announced and wait is not None:
                    _log_waiting(self.db, other)
                    announced = True
                time.sleep(_POLL if math.isinf(deadline) else
                           max(0.0, min(_POLL, deadline - time.monotonic())))
        except BaseException:
            os.close(fd)
            raise
        me = Holder(os.getpid(), socket.gethostname(), self.command, _now())
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me.to_dict()) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _refusal(self, other: Holder | None, wait: float | None) -> str:
        who = str(other) if other else "another process"
        if wait is None:
            hint = "try again later or pass --wait"
        else:
            hint = f"gave up after waiting {wait:g}s" if not math.isinf(wait) else "stopped"
        return f"{self.db} is being written by {who}; {hint}"

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def holder(db: Path) -> Holder | None:
    """Who holds the lock of ``db`` now, or None when nobody does."""
    path = lock_path(db)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            # A shared lock is granted only when nobody holds the exclusive one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or Holder(0, "?", "unknown", "?")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read(fd: int) -> Holder | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]),
                      str(data["since"]))
    except (ValueError, TypeError, KeyError, OSError):
        return None


def _log_waiting(db: Path, other: Holder | None) -> None:
    logger.warning(
        "%s is being written by %s; waiting", db, other or "another process"
    )


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def add_wait_option(parser: Any) -> None:
    """``--wait [SECONDS]`` for every command that writes the database."""
    parser.add_argument(
        "--wait", nargs="?", type=_wait_seconds, const=math.inf, default=None,
        metavar="SECONDS",
        help="if another baseliner process is writing the database, wait for it to finish "
             "(at most SECONDS, e.g. 90 or 5m; default: as long as it takes) instead of "
             "exiting with status 2")


def _wait_seconds(text: str) -> float:
    import argparse

    from .durations import seconds

    value = seconds(text)
    if value is None:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
    if value < 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"not a number of seconds or a duration: {text!r}")
    return value

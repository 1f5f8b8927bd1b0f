"""One writer per experiment: a lock file with pid, host and a heartbeat refreshed by a thread;
a lock whose process is gone (same host) or whose heartbeat stopped (another host) is stale and
is taken over.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from hgx.errors import HgxError
from hgx.files import atomic_write, now

HEARTBEAT_SECONDS = 20.0
STALE_SECONDS = 300.0


# -- the lock -----------------------------------------------------------------------------------
class Lock:
    """One writer per experiment: pid, host and a heartbeat refreshed by a thread."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.taken_over: dict | None = None

    def info(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": now(),
                "heartbeat": time.time()}

    def acquire(self) -> "Lock":
        data = json.dumps(self.info()).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_lock(self.path)
                if holder and not lock_is_stale(holder):
                    raise HgxError(
                        f"experiment {self.path.parent.name} is in use by pid {holder['pid']} on "
                        f"{holder['host']} (since {holder.get('started', '?')}); wait for it to "
                        f"finish or stop it first")
                self.taken_over = holder or {}
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return self
        raise HgxError(f"could not take the lock {self.path}; remove it if no process uses it")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                atomic_write(self.path, json.dumps(self.info()))
            except OSError:
                pass

    def release(self) -> None:
        self._stop.set()
        holder = read_lock(self.path)
        if holder and holder.get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def read_lock(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_is_stale(holder: dict) -> bool:
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            pass
        return False
    return time.time() - float(holder.get("heartbeat", 0)) > STALE_SECONDS

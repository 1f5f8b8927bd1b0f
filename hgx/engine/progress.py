"""Progress display on stderr (stdout stays for results, e.g. ``--json``): a rich bar on a
terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import time


class _Bar:
    def __init__(self, owner: "Progress", label: str, total: int, done: int):
        self.owner, self.label, self.total, self.done = owner, label, total, done
        self.fields: dict = {}
        self.t0, self.last_print, self.start_done = time.time(), 0.0, done
        self.task = None
        if owner.rich is not None:
            self.task = owner.rich.add_task(label, total=total, completed=done, info="")

    def update(self, done: int, **fields) -> None:
        self.done = done
        self.fields = fields
        info = "  ".join(_fmt(k, v) for k, v in fields.items())
        if self.task is not None:
            self.owner.rich.update(self.task, completed=done, info=info)
            return
        now = time.time()
        if now - self.last_print >= self.owner.every or done == self.total:
            self.last_print = now
            rate = (done - self.start_done) / max(now - self.t0, 1e-9)
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            print(f"{self.label} {done}/{self.total}  {info}  eta {eta:.0f}s", flush=True,
                  file=sys.stderr)

    def finish(self) -> None:
        if self.task is not None:
            self.owner.rich.remove_task(self.task)


def _fmt(key: str, value) -> str:
    if key == "ips":
        return f"{value:.1f} img/s"
    if key == "run_eta":  # the whole run's remaining time, beside the bar's own (this epoch)
        return f"run eta {_clock(value)}"
    return f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"


def _clock(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, interactive: bool | None = None, every: float = 30.0):
        if interactive is None:
            interactive = sys.stderr.isatty()
        self.every = every
        self.rich = None
        if interactive:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeRemainingColumn)

            from rich.console import Console

            self.rich = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                     TimeRemainingColumn(), transient=True,
                                     console=Console(stderr=True))
            self.rich.start()

    def start(self, label: str, total: int, done: int = 0) -> _Bar:
        return _Bar(self, label, total, done)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()

"""CPU threads that never oversubscribe the cores: with ``--threads 0`` (auto) hgx gives torch
the cores that no other process is using, and looks again every ``RECHECK_SECONDS``.

Why: torch's OpenMP threads spin at every parallel region's barrier. When another process
takes one of two cores, a 2-thread step waits each time for the descheduled thread: the
demo's training step fell from ~80 to ~10 img/s beside one busy process, while one thread
kept ~53 (``python benchmarks/bench_threads.py``). A passive OpenMP wait policy does not save
it (47 img/s quiet, 16 busy, measured the same way), so the thread count itself adapts.

How: /proc/stat gives the busy time of every core, /proc/self/stat and the stat files of this
process's children (its loader workers) give hgx's own; the difference, over the last window,
is what other processes use. Linux only; elsewhere torch's default is kept. A fixed
``--threads N`` disables all of this (and keeps a resumed run bit-identical: the thread count
changes the order of floating-point sums).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

RECHECK_SECONDS = 10.0
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _machine_busy() -> float | None:
    """Seconds of busy CPU time of the whole machine since boot (all cores)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, *rest = (int(v) for v in fields[1:])
    steal = rest[0] if rest else 0
    return (user + nice + system + irq + softirq + steal) / _HZ


def _process_busy(pid: str) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _HZ  # utime, stime


def _children() -> list[str]:
    kids = []
    for task in Path("/proc/self/task").glob("*"):
        try:
            kids += (task / "children").read_text().split()
        except OSError:
            continue
    return kids


def _ours() -> tuple[float, float]:
    """(this process, its children) busy seconds so far."""
    return _process_busy("self"), sum(_process_busy(k) for k in _children())


class CpuShare:
    """Measures what other processes use and how busy our workers are, window by window."""

    def __init__(self):
        self.cores = available_cores()
        self.enabled = _machine_busy() is not None
        self._mark()

    def _mark(self) -> None:
        self.t = time.monotonic()
        self.machine = _machine_busy() or 0.0
        self.own, self.kids = _ours()

    def measure(self) -> tuple[float, float]:
        """(cores used by other processes, cores used by our children) since the last call."""
        t, machine, (own, kids) = time.monotonic(), _machine_busy() or 0.0, _ours()
        dt = max(t - self.t, 1e-3)
        others = (machine - self.machine - (own - self.own) - (kids - self.kids)) / dt
        workers = (kids - self.kids) / dt
        self.t, self.machine, self.own, self.kids = t, machine, own, kids
        return max(0.0, others), max(0.0, workers)

    def threads(self, others: float, workers: float) -> int:
        """The torch threads that fit beside the others and our workers (at least 1)."""
        free = self.cores - others - workers
        return max(1, min(self.cores, int(free + 0.5)))


class ThreadPolicy:
    """--threads 0 on the CPU: set torch's threads to the free cores now, and again whenever
    ``maybe_adjust`` is called ``RECHECK_SECONDS`` after the last look."""

    def __init__(self, log=None, probe_seconds: float = 0.3):
        import torch

        self.torch, self.log = torch, log
        self.share = CpuShare()
        self.last = time.monotonic()
        if not self.share.enabled:
            return
        time.sleep(probe_seconds)  # a first look at the machine before training starts
        others, _ = self.share.measure()
        self._set(self.share.threads(others, 0.0), others)

    def _set(self, n: int, others: float) -> None:
        if n != self.torch.get_num_threads():
            if self.log is not None:
                self.log(f"note: {others:.1f} of {self.share.cores} cores busy elsewhere: "
                         f"torch threads {self.torch.get_num_threads()} -> {n}")
            self.torch.set_num_threads(n)

    def maybe_adjust(self) -> None:
        now = time.monotonic()
        if not self.share.enabled or now - self.last < RECHECK_SECONDS:
            return
        self.last = now
        others, workers = self.share.measure()
        self._set(self.share.threads(others, workers), others)

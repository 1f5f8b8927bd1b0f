"""What is drawn of each run for one metric: its own epochs from the fork point, the parents'
history leading to it (``ancestry``), and a trailing moving average (``smooth=N`` over the last N
logged epochs, fewer at the start of a line, NaNs skipped; the table always shows raw values).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from hgx.compare.logs import DEFAULT_METRICS, METRICS
from hgx.compare.runs import Lineage, Run
from hgx.errors import UsageError


@dataclass
class Curve:
    """What is drawn of one run for one metric."""

    x: np.ndarray                  # own epochs (starting at the fork point when there is one)
    y: np.ndarray
    ancestry_x: np.ndarray         # the parents' history leading to the fork (may be empty)
    ancestry_y: np.ndarray
    fork: tuple[float, float] | None   # (epoch, value) where it leaves its parent
    raw_y: np.ndarray | None = None    # unsmoothed y when smoothing
    pruned: tuple[float, float] | None = None  # a pruned branch's value before fine-tuning


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (fewer at the start), NaNs skipped."""
    if window <= 1 or len(y) == 0:
        return y
    ok = np.isfinite(y)
    vals = np.where(ok, y, 0.0)
    csum = np.concatenate([[0.0], np.cumsum(vals)])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    total = csum[idx] - csum[lo]
    count = ccount[idx] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[~ok & (count == 0)] = np.nan
    return out


def curves(runs: list[Run], metric: str, ancestry: bool = False, smooth_window: int = 0,
           last: int = 0, lineage: Lineage | None = None) -> dict[str, Curve]:
    """One Curve per run label: own rows from the fork point on, and (``ancestry``) the
    parents' rows up to it; smoothed, then cut to the last ``last`` epochs of all runs."""
    lineage = lineage or Lineage(runs)
    out: dict[str, Curve] = {}
    for run in runs:
        x, y = run.series(metric)
        fork = None
        chain = lineage.chain(run) if run.branch_epoch is not None else []
        pruned = None
        if chain:
            parent, epoch = chain[0]
            value = parent.value_at(metric, epoch)
            # A pruned branch (`hgx prune`) logs its own validation at the branch epoch, right
            # after pruning: the line then drops at the fork before fine-tuning climbs back.
            if len(x) and x[0] == epoch and (run.parent or {}).get("pruning"):
                pruned = (epoch, float(y[0]))
            if value is not None and not (len(x) and x[0] < epoch) and \
                    (pruned is not None or not (len(x) and x[0] == epoch)):
                fork = (epoch, value)
                x, y = np.concatenate([[epoch], x]), np.concatenate([[value], y])
        ax_, ay_ = np.empty(0), np.empty(0)
        if ancestry and chain:
            xs, ys, upto = [], [], None
            for parent, epoch in chain:
                px, py = parent.series(metric)
                keep = px <= (epoch if upto is None else min(epoch, upto))
                if parent.branch_epoch is not None:
                    keep &= px >= parent.branch_epoch
                xs.insert(0, px[keep])
                ys.insert(0, py[keep])
                upto = parent.branch_epoch
            ax_, ay_ = np.concatenate(xs), np.concatenate(ys)
            # one point per epoch: a parent's fork point is also its own parent's last point
            ax_, first = np.unique(ax_, return_index=True)
            ay_ = ay_[first]
        raw = None
        if smooth_window > 1:
            raw = y
            if len(ax_):  # smooth across the fork so the two parts still meet
                joined = smooth(np.concatenate([ay_, y[1:] if fork else y]), smooth_window)
                ay_ = joined[:len(ay_)]
                y = np.concatenate([[joined[len(ay_) - 1]], joined[len(ay_):]]) if fork \
                    else joined[len(ay_):]
            else:
                y = smooth(y, smooth_window)
            if fork:
                fork = (fork[0], float(y[0]))
            if pruned:
                pruned = (pruned[0], float(y[1 if fork else 0]))
        out[run.label] = Curve(x, y, ax_, ay_, fork, raw, pruned)
    if last and last > 0:
        ends = [c.x[-1] for c in out.values() if len(c.x)]
        if ends:
            lo = max(ends) - last + 1
            for c in out.values():
                keep = c.x >= lo
                c.x, c.y = c.x[keep], c.y[keep]
                if c.raw_y is not None:
                    c.raw_y = c.raw_y[keep]
                akeep = c.ancestry_x >= lo
                c.ancestry_x, c.ancestry_y = c.ancestry_x[akeep], c.ancestry_y[akeep]
                if c.fork and c.fork[0] < lo:
                    c.fork = None
                if c.pruned and c.pruned[0] < lo:
                    c.pruned = None
    return out


def parse_metrics(values: Iterable[str] | None) -> list[str]:
    """``--metric`` values (repeatable, or comma-separated; '-' or '_') -> metric names."""
    out: list[str] = []
    for value in values or []:
        for part in str(value).replace(",", " ").split():
            key = part.strip().lower().replace("-", "_")
            if key not in METRICS:
                raise UsageError(f"--metric: unknown metric {part!r}; choose among "
                                 f"{', '.join(METRICS)}")
            if key not in out:
                out.append(key)
    return out or list(DEFAULT_METRICS)

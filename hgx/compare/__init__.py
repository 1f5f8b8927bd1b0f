"""Training curves of many runs side by side: `hgx compare` (and `hgx tree`).

The rooms: ``logs`` (reading hgx and Torch7 logs), ``runs`` (runs and their lineage),
``curves`` (what is drawn of a run), ``table`` (the comparison table), ``figure`` (the figure
and writing it safely), ``tree`` (the lineage tree); this module runs a comparison.

A *run* is one of
  * an hgx experiment directory (``options.yaml``, ``experiment.yaml``, ``state.json``,
    ``train.log``, ``valid.log``), given by path or by name under the experiments root;
  * a pose-hg-train (Torch7) experiment directory holding only ``train.log`` / ``valid.log``,
    written by ``optim.Logger``: a tab-separated header naming the columns in Lua's hash order
    (``epoch``, ``loss``, ``acc``, ``LR``; names padded with spaces, a trailing tab), one row
    per epoch;
  * a directory holding experiments (``exp/``): all of them.

Everything here only reads: no lock, no cache, nothing is written into an experiment. Logs
that change while they are read (a run training, a Torch7 log with a half-written last line)
are read up to their last complete row.

Lineage: an hgx branch records its parent (name, path, epoch) in ``experiment.yaml`` and
continues its parent's epoch numbering. Its curve is drawn from the parent's value at the
branch epoch (the fork point), and ``ancestry`` adds the parents' history leading to it.

Smoothing (``smooth=N``) is a trailing moving average over the last N logged epochs (fewer at
the start of a line, NaNs skipped); the table always shows raw values.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from hgx.compare.curves import Curve, curves, parse_metrics, smooth
from hgx.compare.figure import check_out, save_figure
from hgx.compare.logs import DEFAULT_METRICS, METRICS, read_log
from hgx.compare.runs import (
    Lineage,
    Run,
    is_hgx,
    is_torch7,
    load_run,
    load_runs,
    resolve_paths,
    run_names,
)
from hgx.compare.table import differing_options, render_table, table_data
from hgx.compare.tree import lineage_tree, render_tree
from hgx.errors import UsageError

__all__ = ["Comparison", "Curve", "DEFAULT_METRICS", "Lineage", "METRICS", "Run", "check_out",
           "compare", "curves", "differing_options", "is_hgx", "is_torch7", "lineage_tree",
           "load_run", "load_runs", "parse_metrics", "read_log", "render_table", "render_tree",
           "resolve_paths", "run_names", "save_figure", "smooth", "table_data", "watch"]


# -- compare, once or watching ------------------------------------------------------------------
@dataclass
class Comparison:
    runs: list[Run]
    table: dict
    figure: Any
    out: Path | None


def compare(items: Iterable[str] = (), out: str | os.PathLike | None = "compare.png",
            metrics: Iterable[str] | None = None, last: int = 0, smooth_window: int = 0,
            ancestry: bool = False, exp_dir=None, title: str | None = None) -> Comparison:
    """Load the runs, build the table and the figure, write the figure (``out`` None: don't).

    Never writes into an experiment (``out`` inside one is refused)."""
    from hgx.compare.figure import compare_figure

    metric_names = parse_metrics(metrics)
    if last < 0:
        raise UsageError(f"--last: expected a number of epochs >= 1, got {last}")
    if smooth_window < 0:
        raise UsageError(f"--smooth: expected a window of epochs >= 1, got {smooth_window}")
    runs = load_runs(items, exp_dir)
    lineage = Lineage(runs)
    protected = [r.path for r in runs] + [p for p in lineage.by_path]
    path = check_out(out, protected) if out is not None else None
    data = table_data(runs, metric_names)
    fig = compare_figure(runs, metric_names, ancestry=ancestry, smooth_window=smooth_window,
                         last=last, lineage=lineage, title=title)
    if path is not None:
        protected = [r.path for r in runs] + [p for p, r in lineage.by_path.items() if r]
        check_out(path, protected)  # ancestors found while drawing are protected too
        save_figure(fig, path)
    return Comparison(runs, data, fig, path)


def watch(render: Callable[[int], Any], seconds: float, max_iterations: int = 0,
          sleep: Callable[[float], Any] = time.sleep) -> int:
    """Call ``render(i)`` every ``seconds`` until Ctrl-C (or ``max_iterations`` calls).

    Returns the number of refreshes; Ctrl-C ends it quietly."""
    if seconds <= 0:
        raise UsageError(f"--watch: expected a number of seconds > 0, got {seconds:g}")
    done = 0
    try:
        while True:
            render(done)
            done += 1
            if max_iterations and done >= max_iterations:
                return done
            sleep(seconds)
    except KeyboardInterrupt:
        return done

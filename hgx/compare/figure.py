"""The comparison figure: one panel per metric, one colour per run, branches forking from
their parents. Built on ``matplotlib.figure.Figure`` (no pyplot, no global state) and returned,
so its legend and lines can be inspected; ``save_figure`` writes it, safely: never into an
experiment, atomically.

How a run is drawn, in its colour:
  * its own epochs: a solid line (dots when it has few epochs), starting at the fork point
    (the parent's value at the epoch it branched from, a white dot) for a branch; a pruned
    branch (`hgx prune`) drops from there, at the same epoch, to its validation right after
    pruning (a white triangle), then fine-tuning goes on from it;
  * ``ancestry``: the parents' history up to the fork, dashed and lighter, so two branches
    of one parent read as two forks of one line;
  * ``smooth``: the raw values faint behind the smoothed line.
Loss panels use a log scale (all values positive); epochs are integers on the x axis.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from hgx.errors import HgxError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from hgx.compare.runs import Lineage, Run

__all__ = ["compare_figure", "run_colors", "check_out", "save_figure"]

MARKERS_UP_TO = 30   # epochs: above, lines only


def run_colors(n: int) -> list:
    """n distinguishable colours: tab10; tab20 (dark shades first); up to 60 from tab20,
    tab20b and tab20c; beyond, hues of 'turbo' in golden-ratio steps."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    dark_first = list(range(0, 20, 2)) + list(range(1, 20, 2))
    if n <= 20:
        return [colormaps["tab20"](i) for i in dark_first[:n]]
    palette = [colormaps["tab20"](i) for i in dark_first]
    for name in ("tab20b", "tab20c"):  # groups of 4 shades: take one of each group in turn
        palette += [colormaps[name](g * 4 + k) for k in range(4) for g in range(5)]
    if n <= len(palette):
        return palette[:n]
    cmap = colormaps["turbo"]
    return palette + [cmap(0.05 + 0.9 * ((i * 0.618034) % 1.0)) for i in range(n - len(palette))]


def compare_figure(runs: list["Run"], metrics: list[str], ancestry: bool = False,
                   smooth_window: int = 0, last: int = 0, lineage: "Lineage | None" = None,
                   title: str | None = None):
    """The figure of ``runs`` (see the module docstring). Returns a matplotlib Figure whose
    legend labels are the runs' labels, in order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from hgx.compare.curves import curves
    from hgx.compare.logs import METRICS
    from hgx.compare.runs import Lineage

    lineage = lineage or Lineage(runs)
    n = len(metrics)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    legend_cols = max(1, math.ceil(len(runs) / 24))
    longest = max((len(r.label) for r in runs), default=4)
    legend_w = legend_cols * (0.9 + 0.075 * min(longest, 40))
    per_metric = {m: curves(runs, m, ancestry=ancestry, smooth_window=smooth_window, last=last,
                            lineage=lineage) for m in metrics}
    drawn = [c for m in metrics for c in per_metric[m].values()]
    notes = []
    if any(c.fork is not None for c in drawn):
        notes.append("○ branch point: the parent's value at the epoch it branched from")
    if any(c.pruned is not None for c in drawn):
        notes.append("▽ a pruned branch right after `hgx prune`, before fine-tuning")
    if any(len(c.ancestry_x) for c in drawn):
        notes.append("dashed: the parents' history (--ancestry)")
    if smooth_window > 1:
        notes.append(f"smoothed: trailing mean of {smooth_window} epochs (raw values faint)")
    if last:
        notes.append(f"the last {last} epochs")
    # A fixed layout in inches (constrained layout would cost a third of the time of a
    # 50-run figure): panels of 5 x 3.2 in, the legend in a column on the right, the notes
    # one per line below.
    foot = 0.62 + 0.15 * len(notes)
    width, height = 5.0 * ncols + legend_w + 0.35, 3.2 * nrows + 0.55 + foot
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    left, right = 0.75 / width, 1 - (legend_w + 0.35) / width
    top, bottom = 1 - 0.55 / height, foot / height
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True,
                        gridspec_kw=dict(left=left, right=right, top=top, bottom=bottom,
                                         wspace=0.22, hspace=0.2))
    colors = run_colors(len(runs))
    handles: dict[str, object] = {}
    for i, metric in enumerate(metrics):
        ax = axes[i // ncols][i % ncols]
        many = max((len(c.x) for c in per_metric[metric].values()), default=0) > MARKERS_UP_TO
        positive = True
        for run, color in zip(runs, colors):
            c = per_metric[metric][run.label]
            if len(c.ancestry_x):
                ax.plot(c.ancestry_x, c.ancestry_y, color=color, linewidth=1.1, alpha=0.6,
                        linestyle=(0, (4, 2)), label="_ancestry", zorder=1)
            if c.raw_y is not None and len(c.x):
                ax.plot(c.x, c.raw_y, color=color, linewidth=0.8, alpha=0.25, label="_raw",
                        zorder=1)
            if len(c.x):
                (line,) = ax.plot(c.x, c.y, color=color, linewidth=1.7, label=run.label,
                                  marker=None if many else "o", markersize=3, zorder=2)
                handles.setdefault(run.label, line)
            if c.fork is not None:
                ax.plot([c.fork[0]], [c.fork[1]], marker="o", markersize=5.5,
                        markerfacecolor="white", markeredgecolor=color, markeredgewidth=1.4,
                        linestyle="none", label="_fork", zorder=3)
            if c.pruned is not None:
                ax.plot([c.pruned[0]], [c.pruned[1]], marker="v", markersize=6.5,
                        markerfacecolor="white", markeredgecolor=color, markeredgewidth=1.4,
                        linestyle="none", label="_pruned", zorder=3)
            for arr in (c.y, c.ancestry_y):
                finite = arr[np.isfinite(arr)]
                if len(finite) and finite.min() <= 0:
                    positive = False
        ax.set_title(METRICS[metric][2], fontsize=10)
        ax.grid(True, alpha=0.3, linewidth=0.6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if metric.endswith("loss") and positive and ax.has_data():
            _log_axis(ax)
        ax.tick_params(which="both", labelsize=8)
        if i // ncols == nrows - 1 or i + ncols >= n:
            ax.set_xlabel("epoch", fontsize=9)
            ax.xaxis.set_tick_params(labelbottom=True)
        if not ax.has_data():
            ax.text(0.5, 0.5, "no logged epochs", transform=ax.transAxes, ha="center",
                    va="center", color="0.5", fontsize=9)
    for i in range(n, nrows * ncols):
        axes[i // ncols][i % ncols].set_visible(False)
    if last:
        ends = [c.x[-1] for m in metrics for c in per_metric[m].values() if len(c.x)]
        if ends:
            hi = max(ends)
            axes[0][0].set_xlim(max(hi - last + 1, 0) - 0.3, hi + 0.3)
    legend_handles = []
    for run, color in zip(runs, colors):  # runs with no epochs yet are named too
        h = handles.get(run.label) or Line2D([], [], color=color, linewidth=1.7,
                                             label=run.label)
        legend_handles.append(h)
    fig.legend(legend_handles, [r.label for r in runs], loc="upper left",
               bbox_to_anchor=(right + 0.2 / width, top + 0.05 / height), ncols=legend_cols,
               fontsize=8 if len(runs) > 12 else 9, frameon=False, title="runs",
               title_fontsize=9, handlelength=1.6, alignment="left", borderaxespad=0)
    heading = title or f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    fig.text(left, 1 - 0.1 / height, f"{heading}   ·   {time.strftime('%Y-%m-%d %H:%M:%S')}",
             fontsize=10, ha="left", va="top")
    if notes:
        fig.text(left, 0.08 / height, "\n".join(notes), fontsize=8, color="0.35",
                 ha="left", va="bottom", linespacing=1.35)
    return fig


def _log_axis(ax) -> None:
    """A log y axis labelled with plain numbers (0.004, not 4 x 10^-3). Minor ticks are
    labelled too when the data spans under a decade, the 2s and 5s under 2.5 decades."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:.3g}")
    ax.yaxis.set_major_formatter(plain)
    lo, hi = ax.dataLim.y0, ax.dataLim.y1
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 99
    if decades < 1:
        ax.yaxis.set_minor_formatter(plain)
    elif decades < 2.5:
        def some(v, _):
            mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
            return f"{v:.3g}" if mantissa in (2.0, 5.0) else ""
        ax.yaxis.set_minor_formatter(FuncFormatter(some))
    else:
        ax.yaxis.set_minor_formatter(NullFormatter())


# -- writing the figure, safely -----------------------------------------------------------------
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def check_out(out: str | os.PathLike, protected: Iterable[Path],
              default: str = "./compare.png") -> Path:
    """The figure's path: .png/.svg/.pdf (no suffix: .png), never inside an experiment."""
    out = Path(out).expanduser()
    if out.suffix == "":
        out = out.with_suffix(".png")
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out {out}: the suffix picks the format; use .png, .svg or .pdf")
    target = out.resolve()
    for p in protected:
        p = Path(p).resolve()
        if target == p or p in target.parents:
            raise UsageError(f"--out {out} is inside the experiment {p}; hgx never writes into "
                             f"experiments: choose a path outside it (default {default})")
    if not target.parent.is_dir():
        raise UsageError(f"--out {out}: directory {target.parent} does not exist")
    return out


def save_figure(fig, out: Path, dpi: int = 110) -> Path:
    """Write atomically (a viewer reloading the file never sees half a picture)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out)
    FigureCanvasAgg(fig)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    try:
        fig.savefig(tmp, format=FORMATS[out.suffix.lower()], dpi=dpi)
        os.replace(tmp, out)
    except BaseException as err:  # Ctrl-C while drawing too: leave no temporary file
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(err, OSError):
            raise HgxError(f"cannot write {out}: {err.strerror or err}") from None
        raise
    return out

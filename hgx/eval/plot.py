"""Result tables (rich) and PCK(h)-vs-threshold curves (matplotlib, no pyplot)."""
from __future__ import annotations

from pathlib import Path

from hgx.errors import HgxError

__all__ = ["format_table", "plot_curves"]

_SUFFIXES = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
_NON_GROUP_KEYS = ("official", "per_joint", "thresholds", "curves", "count", "produced_by",
                   "centric", "person_centric", "observer_centric")


def _groups(result: dict) -> list[str]:
    """Column names of a result dict, in order (everything that is a scalar rate)."""
    return [k for k in result if k not in _NON_GROUP_KEYS]


def _is_pckh(result: dict) -> bool:
    return "official" in result


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def _metric_name(result: dict) -> str:
    if _is_pckh(result):
        return "PCKh"
    thresholds = result.get("thresholds") or []
    return f"PCK@{thresholds[-1]:g}" if thresholds else "PCK"


def format_table(result: dict, title: str | None = None):
    """A rich Table of one result.

    PCKh (MPII): the papers' row (strict < 0.5; Head = head-top; Mean = mean of 14 joints) and
    the official evalMPII row (<= 0.5; Head = neck + head-top; UBody/Total pooled). A cell that
    a convention doesn't define shows '–'. Torso PCK: one row.
    """
    from rich.table import Table

    if _is_pckh(result):
        cols = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "UBody", "Total"]
        table = Table(title=title or f"PCKh@0.5, MPII ({result.get('count', '?')} people)")
        table.add_column("Convention")
        for c in cols:
            table.add_column(c, justify="right")
        papers = [_fmt(result.get(c)) for c in cols[:8]] + ["–", "–"]
        official = result["official"]
        off = [_fmt(official.get(c)) for c in cols[:7]] + ["–"] + [
            _fmt(official.get(c)) for c in ("UBody", "Total")
        ]
        table.add_row("papers (< 0.5)", *papers)
        table.add_row("official (≤ 0.5)", *off)
        return table
    cols = _groups(result)
    table = Table(title=title or f"{_metric_name(result)} ({result.get('count', '?')} people)")
    table.add_column("Metric")
    for c in cols:
        table.add_column(c, justify="right")
    label = _metric_name(result)
    if result.get("centric"):
        label += f" {result['centric']}-centric"
    table.add_row(label, *[_fmt(result.get(c)) for c in cols])
    for centric in ("person", "observer"):
        other = result.get(f"{centric}_centric")
        if other:
            table.add_row(f"{_metric_name(other)} {centric}-centric",
                          *[_fmt(other.get(c)) for c in cols])
    return table


def plot_curves(results: dict, out_path: str | Path, groups: list[str] | None = None):
    """Plot PCK(h) vs normalised threshold for one or more results and save the figure.

    One subplot per joint group (the results' ``curves`` keys, or ``groups``), one line per
    result, told apart by colour and line style, with a figure legend of the result labels.
    The format follows the suffix of ``out_path`` (.png, .svg, .pdf; no suffix: .png is
    added). Returns the matplotlib Figure (built without pyplot, so no global state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results:
        raise HgxError("no results to plot: pass at least one {label: result}")
    out_path = Path(out_path)
    if out_path.suffix == "":
        out_path = out_path.with_suffix(".png")
    fmt = _SUFFIXES.get(out_path.suffix.lower())
    if fmt is None:
        raise HgxError(
            f"cannot save a plot as {out_path.suffix!r} ({out_path}): use .png, .svg or .pdf"
        )
    if groups is None:
        groups = []
        for res in results.values():
            for g in res.get("curves", {}):
                if g not in groups:
                    groups.append(g)
    if not groups:
        raise HgxError("the results have no curves to plot: pass results of pckh()/pck()")

    ncols = min(4, len(groups))
    nrows = -(-len(groups) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.8 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=False, sharey=True)
    styles = ["-", "--", "-.", ":"]
    colors = [f"C{i}" for i in range(10)]
    xlabel = "normalised distance (head units)" if any(
        _is_pckh(r) for r in results.values()
    ) else "normalised distance (torso units)"
    ylabel = "PCKh (%)" if all(_is_pckh(r) for r in results.values()) else "PCK (%)"

    handles = []
    for k, (label, res) in enumerate(results.items()):
        style = dict(color=colors[k % len(colors)], linestyle=styles[k % len(styles)])
        xs = res.get("thresholds", [])
        for i, group in enumerate(groups):
            ax = axes[i // ncols][i % ncols]
            ys = res.get("curves", {}).get(group)
            if ys is None:
                continue
            ys = [float("nan") if y is None else y for y in ys]
            (line,) = ax.plot(xs, ys, label=str(label), linewidth=1.5, **style)
            if len(handles) == k:
                handles.append(line)
    for i, group in enumerate(groups):
        ax = axes[i // ncols][i % ncols]
        ax.set_title(group)
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
        if i // ncols == nrows - 1:
            ax.set_xlabel(xlabel)
        if i % ncols == 0:
            ax.set_ylabel(ylabel)
    for i in range(len(groups), nrows * ncols):
        axes[i // ncols][i % ncols].set_visible(False)
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center",
               ncols=min(len(handles), 4))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format=fmt, dpi=100)
    return fig

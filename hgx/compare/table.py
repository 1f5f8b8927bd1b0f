"""The comparison table: each run's latest numbers and the options that differ between runs.
"""
from __future__ import annotations

import numpy as np

from hgx import options as hopts
from hgx.compare.logs import DEFAULT_METRICS
from hgx.compare.runs import Run


# -- the table ----------------------------------------------------------------------------------
def differing_options(runs: list[Run]) -> list[str]:
    """Options (schema order) whose values are not all equal across the hgx runs."""
    opts = [r.options for r in runs if r.options is not None]
    if len(opts) < 2:
        return []
    keys = [o.name for o in hopts.SCHEMA]
    keys += sorted(set().union(*opts) - set(keys))
    return [k for k in keys if any(o.get(k) != opts[0].get(k) for o in opts[1:])]


def _fmt_value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return " ".join(_fmt_value(i) for i in v) or "[]"
    return str(v) if v != "" else '""'


def _fmt_option(key: str, v) -> str:
    """A value for the table; a pruned network's widths (two per block) as their total."""
    if key == "block_widths" and isinstance(v, list):
        return f"{sum(v)} inner ch. in {len(v) // 2} blocks" if v else "unpruned"
    return _fmt_value(v)


def table_data(runs: list[Run], metrics: list[str] | None = None) -> dict:
    """The comparison table as plain data (``--json`` prints it; ``render_table`` draws it)."""
    metrics = list(metrics or DEFAULT_METRICS)
    diff = differing_options(runs)
    rows = []
    for r in runs:
        best, best_epoch = r.best()
        last = {}
        for m in metrics:
            _, y = r.series(m)
            finite = y[np.isfinite(y)]
            last[m] = float(finite[-1]) if len(finite) else None
        rows.append({
            "run": r.label, "path": str(r.path), "kind": r.kind, "status": r.status,
            "parent": r.parent.get("name") if r.parent else None,
            "branched_from_epoch": r.parent.get("epoch") if r.parent else None,
            "epochs_done": r.epochs_done, "epochs": r.epochs_total,
            "best_acc": best, "best_epoch": best_epoch, "last_lr": r.last_lr(),
            "last": last,
            "options": {k: (r.options.get(k) if r.options is not None else None) for k in diff},
        })
    return {"metrics": metrics, "differing_options": diff, "runs": rows}


OPTION_COLUMNS = 4   # more options differ: one wrapped column of key=value pairs
SHORT = {"train_loss": "train loss", "valid_loss": "valid loss", "train_acc": "train acc",
         "valid_acc": "valid acc", "valid_pckh": "PCKh"}


def render_table(data: dict, title: str | None = None):
    """A rich Table: run, parent (@ branch epoch), epochs done/total, best valid acc (epoch),
    last lr, the last value of each metric, then only the options that differ across the
    runs (``epochs``, the total, already shows in the epochs column; ``lr`` too, in the last lr
    column, unless a schedule moved it)."""
    from rich.markup import escape
    from rich.table import Table

    same_lr = all(r["kind"] == "hgx" and r["options"].get("lr") == r["last_lr"]
                  for r in data["runs"])  # then the "last lr" column already shows it
    options = [k for k in data["differing_options"]
               if k != "epochs" and not (k == "lr" and same_lr)]
    packed = len(options) > OPTION_COLUMNS  # many: one wrapped column of key=value
    caption = "in cyan: the options that differ across the runs" if options else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                  show_lines=packed)
    table.add_column("run", no_wrap=True)
    table.add_column("parent", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("best acc (ep)", justify="right", no_wrap=True)
    table.add_column("last lr", justify="right", no_wrap=True)
    for m in data["metrics"]:
        table.add_column(SHORT[m], justify="right", no_wrap=True)
    if packed:
        table.add_column("options that differ", style="cyan", header_style="bold cyan",
                         min_width=24, ratio=1, overflow="fold")
    else:
        for k in options:
            table.add_column(k, justify="right", style="cyan", header_style="bold cyan",
                             overflow="fold")
    for row in data["runs"]:
        parent = "-" if not row["parent"] else \
            f"{row['parent']} @{_fmt_value(row['branched_from_epoch'])}"
        epochs = f"{row['epochs_done']}/{row['epochs']}" if row["epochs"] else \
            str(row["epochs_done"])
        if row["status"] in ("running", "stopped", "crashed", "new"):
            epochs = f"[dim]{row['status']}[/] {epochs}"
        best = "-" if row["best_acc"] is None else \
            f"{row['best_acc']:.3f} ({row['best_epoch']})"
        cells = [escape(row["run"]) + (" [dim](torch7)[/]" if row["kind"] == "torch7" else ""),
                 escape(parent), epochs, best, _fmt_value(row["last_lr"])]
        for m in data["metrics"]:
            v = row["last"].get(m)
            cells.append("-" if v is None else (f"{v:.1f}" if m == "valid_pckh" else
                                                f"{v:.3f}" if m.endswith("acc") else f"{v:.4g}"))
        values = ["-" if row["kind"] != "hgx" else escape(_fmt_option(k, row["options"][k]))
                  for k in options]
        if packed:
            cells.append("-" if row["kind"] != "hgx" else
                         "  ".join(f"{k}={v}" for k, v in zip(options, values)))
        else:
            cells += values
        table.add_row(*cells)
    return table

"""`hgx prune OLD --scan`: the pruning literature's sensitivity analysis (Li et al. 2017, Fig. 2;
the reference scripts' "skip" lists of sensitive layers, rethinking-network-pruning
cifar/l1-norm-pruning/res56prune.py:87-90, come from such a scan), without retraining.

Each group of residual blocks -- the stem, every hourglass level, the heads -- is pruned
alone at each amount, the rest of the network left whole, and validated exactly as
``valid.log`` is (the experiment's validation people, flip, batches): its heatmap accuracy and
PCKh. Nothing is written into OLD (or any experiment): the figure goes to --out.
"""
from __future__ import annotations

import math
from pathlib import Path

from hgx.data import note
from hgx.experiment import Experiment, exp_root, list_names


def scan(old: str, amounts: list[float], criterion: str = "l1", which: str = "last",
         levels=None, out: str | None = None, exp_dir=None, log=note, interactive=None) -> dict:
    from hgx.compare.figure import check_out, save_figure
    from hgx.models import cost
    from hgx.models import prune as surgery
    from hgx.workflow.prune import Source, check_criterion

    root = exp_root(exp_dir)
    exp = Experiment.open(root, old)
    check_criterion(criterion)
    groups = surgery.parse_levels(levels, exp.options()["depth"])
    figure = check_out(out or f"./{exp.name}-prune-scan.png",
                       [root / n for n in list_names(root)] + [exp.path],
                       default=f"./{exp.name}-prune-scan.png")
    src = Source(exp, which, log, interactive)
    src.check()
    opts, sd = src.opts, src.data["model"]
    log(f"{exp.name} ({src.path.name}): validating the whole network, then each of "
        f"{', '.join(groups)} pruned alone at {len(amounts)} amounts ({criterion})")
    base = {**src.validate(sd), **cost(opts, src.joints)}
    result = {"experiment": exp.name, "snapshot": str(src.path), "epoch": src.data.get("epoch"),
              "criterion": criterion, "scope": "per layer" if criterion == "l1" else "global",
              "amounts": list(amounts), "baseline": _row(base), "groups": {}}
    for group in groups:
        rows = []
        for amount in amounts:
            plan = surgery.plan(sd, opts.stacks, opts.depth, opts.modules, criterion, amount,
                                [group])
            new_opts = src.opts_with(plan.after)
            valid = src.validate(surgery.apply(sd, plan), new_opts)
            rows.append({"amount": amount, **_row({**valid, **cost(new_opts, src.joints)}),
                         "group_inner_channels": list(plan.pruned_channels())})
            log(f"  {group} at {amount:g}: valid acc {valid['acc']:.3f}, PCKh "
                f"{valid['pckh']:.1f}")
        result["groups"][group] = rows
    result["figure"] = str(save_figure(scan_figure(result), figure))
    return result


def _row(values: dict) -> dict:
    return {k: values[k] for k in ("acc", "pckh", "loss", "parameters", "flops_per_image")}


def table(result: dict):
    """The scan as a rich table: a row per group, a column per amount, acc / PCKh."""
    from rich.table import Table

    base = result["baseline"]
    t = Table("group", *(f"{a:g}" for a in result["amounts"]), title_justify="left",
              title=f"{result['experiment']}: valid acc / PCKh with one group pruned "
                    f"({result['criterion']}, {result['scope']}); unpruned {_cell(base)}")
    for group, rows in result["groups"].items():
        t.add_row(_label(group), *(_cell(r) for r in rows))
    return t


def _label(group: str) -> str:
    return f"level {group}" if group.isdigit() else group


def _cell(row: dict) -> str:
    pckh = row.get("pckh")
    tail = "" if pckh is None or pckh != pckh else f" / {pckh:.1f}"
    return f"{row['acc']:.3f}{tail}"


def scan_figure(result: dict):
    """Accuracy (and PCKh) against the amount pruned, one curve per group, the unpruned
    value dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hgx.compare.figure import run_colors

    base = result["baseline"]
    panels = [("acc", "valid heatmap accuracy")]
    if any(r["pckh"] == r["pckh"] for rows in result["groups"].values() for r in rows):
        panels.append(("pckh", "valid PCKh@0.5"))
    fig = Figure(figsize=(5.2 * len(panels) + 1.6, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = run_colors(len(result["groups"]))
    for ax, (key, title) in zip(axes, panels):
        for (group, rows), color in zip(result["groups"].items(), colors):
            ax.plot([r["amount"] for r in rows], [r[key] for r in rows], marker="o",
                    markersize=3.5, color=color, label=_label(group))
        if base[key] == base[key]:
            ax.axhline(base[key], color="0.4", linestyle="--", linewidth=1,
                       label="unpruned")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("amount pruned (fraction of the group's inner channels)", fontsize=9)
        ax.grid(True, alpha=0.3, linewidth=0.6)
        ax.tick_params(labelsize=8)
        if not math.isnan(base[key]):
            ax.set_ylim(bottom=0)
    axes[-1].legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{result['experiment']} ({Path(result['snapshot']).name}): sensitivity to "
                 f"pruning ({result['criterion']}, {result['scope']})", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.82 if len(panels) == 1 else 0.87, bottom=0.16,
                        top=0.86, wspace=0.25)
    return fig

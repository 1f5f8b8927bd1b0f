"""`hgx list`, `hgx show`, `hgx diff`: read experiments, never write them."""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich.table import Table

from hgx import options as hopts
from hgx.cli.app import ExpDir, _err, app, console


@app.command("list")
def list_cmd(exp_dir: Optional[str] = ExpDir,
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Experiments: name, parent, epochs done/total, best valid accuracy, status."""
    from hgx import workflow

    rows = workflow.list_experiments(exp_dir)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("name", "parent", "epochs", "best acc", "status")
    for r in rows:
        best = f"{r['best_acc']:.3f} (ep {r['best_epoch']})" if r["best_acc"] is not None else "-"
        epochs = f"{r['epochs_done']}/{r['epochs']}" if r["epochs"] is not None else "-"
        table.add_row(r["name"], r["parent"] or "-", epochs, best, r["status"])
    console.print(table)
    for r in rows:
        if r.get("problem"):
            _err(f"{r['name']}: {r['problem']}")


@app.command("show")
def show_cmd(name: str, exp_dir: Optional[str] = ExpDir,
             as_json: bool = typer.Option(False, "--json", help="Print JSON."),
             samples: int = typer.Option(0, "--samples", min=0, help="Draw predicted (and "
                                         "true) skeletons on N validation crops."),
             heatmaps: bool = typer.Option(False, "--heatmaps", help="Draw one validation "
                                           "sample's heatmaps."),
             index: int = typer.Option(0, "--index", min=0, help="Row for --heatmaps."),
             snapshot: str = typer.Option("best", "--snapshot", help="best, last or a .pt."),
             out: Optional[str] = typer.Option(None, "--out", help="PNG to write (default "
                                               "./NAME-samples.png, ./NAME-heatmaps.png).")):
    """One experiment: options, lineage, progress, snapshots and the last log rows."""
    from hgx import workflow

    if samples or heatmaps:
        from hgx import viz
        from hgx.experiment import Experiment, exp_root

        path = Experiment.open(exp_root(exp_dir), name).path
        if samples:
            written = viz.draw_samples(path, samples, out if not heatmaps else None, snapshot)
            console.print(f"wrote {written}")
        if heatmaps:
            written = viz.draw_heatmaps(path, out if not samples else None, index, snapshot)
            console.print(f"wrote {written}")
        return
    info = workflow.show(name, exp_dir)
    if as_json:
        print(json.dumps(info, indent=1, default=str))
        return
    console.print(f"[bold]{info['name']}[/]  {info['path']}")
    parent = info["lineage"]
    if parent and not info["pruning"]:
        console.print(f"branched from {parent['name']} at epoch {parent['epoch']}")
    best = f"{info['best_acc']:.3f} at epoch {info['best_epoch']}" if info["best_acc"] else "-"
    console.print(f"status {info['status']}, {info['epochs_done']}/{info['epochs']} epochs, "
                  f"best valid acc {best}")
    console.print(f"last snapshot {info['last_snapshot'] or '-'}\nbest snapshot "
                  f"{info['best_snapshot'] or '-'}")
    if info["pruning"]:
        from hgx.workflow.prune import summary

        console.print(summary(info["name"], info["lineage"]), markup=False, highlight=False)
    if info["model"]:
        m = info["model"]
        console.print(f"model: {m['parameters']:,} parameters, "
                      f"{m['flops_per_image'] / 1e9:.3f} GFLOPs per image")
    defaults = hopts.defaults()
    changed = {k: v for k, v in info["options"].items() if defaults.get(k) != v}
    if changed.get("block_widths"):
        w = changed["block_widths"]
        changed["block_widths"] = f"<{len(w) // 2} blocks, {min(w)}..{max(w)} channels>"
    console.print("options (not default): " + (", ".join(f"{k}={v}" for k, v in changed.items())
                                               or "all default"))
    if info["valid_log"]:
        table = Table("epoch", "train loss", "train acc", "valid loss", "valid acc", "PCKh")
        train = {r["epoch"]: r for r in info["train_log"]}
        def cell(row: dict, key: str, fmt: str) -> str:  # "-": not logged (a pruned branch's
            v = row.get(key, float("nan"))                  # first row has no training)
            return "-" if v != v else format(v, fmt)

        for r in info["valid_log"][-10:]:
            t = train.get(r["epoch"], {})
            table.add_row(f"{r['epoch']:.0f}", cell(t, "loss", ".6f"), cell(t, "acc", ".3f"),
                          cell(r, "loss", ".6f"), cell(r, "acc", ".3f"), cell(r, "pckh", ".1f"))
        console.print(table)


@app.command("diff")
def diff_cmd(a: str, b: str, exp_dir: Optional[str] = ExpDir,
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """The options that differ between two experiments."""
    from hgx import workflow

    d = workflow.diff(a, b, exp_dir)
    if as_json:
        print(json.dumps({k: {a: va, b: vb} for k, (va, vb) in d.items()}, indent=1))
        return
    if not d:
        console.print(f"{a} and {b} have the same options")
        return
    table = Table("option", a, b)
    for k, (va, vb) in d.items():
        table.add_row(k, str(va), str(vb))
    console.print(table)

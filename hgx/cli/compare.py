"""`hgx compare` and `hgx tree`: training curves side by side, and the lineage of experiments.

Both only read experiments; the figure goes to ``--out`` (default ./compare.png), never into an
experiment directory.
"""
from __future__ import annotations

import json
from typing import List, Optional

import typer

from hgx.cli.app import ExpDir, app


@app.command("compare")
def compare_cmd(
        paths: Optional[List[str]] = typer.Argument(
            None, help="Runs: experiment names, hgx experiment directories, pose-hg-train "
                       "(Torch7) directories with train.log/valid.log, or a directory of "
                       "experiments. Default: every experiment of the root."),
        out: str = typer.Option("compare.png", "--out", "-o",
                                help="Figure file; the suffix picks the format (.png, .svg, "
                                     ".pdf)."),
        metric: Optional[List[str]] = typer.Option(
            None, "--metric", "-m",
            help="Panels and table columns: train_loss, valid_loss, train_acc, valid_acc, "
                 "valid_pckh, train_d_loss, train_k_t (repeat or comma-separate; default the "
                 "first four)."),
        last: int = typer.Option(0, "--last", min=0, metavar="K",
                                 help="Zoom on the last K epochs (0 = all)."),
        smooth: int = typer.Option(0, "--smooth", min=0, metavar="N",
                                   help="Trailing moving average over N epochs (0 = raw)."),
        ancestry: bool = typer.Option(False, "--ancestry",
                                      help="Also draw each branch's parents' history up to "
                                           "the epoch it branched from."),
        watch: Optional[float] = typer.Option(None, "--watch", metavar="SECONDS",
                                              help="Redraw the figure and the table every "
                                                   "SECONDS until Ctrl-C."),
        as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
        exp_dir: Optional[str] = ExpDir,
        max_iterations: int = typer.Option(0, "--max-iterations", hidden=True)):
    """Training curves of runs side by side (figure) and how they differ (table)."""
    from hgx import compare as cmp
    from hgx.errors import HgxError

    console = _console()

    def once(title: str | None = None):
        result = cmp.compare(paths or [], out=out, metrics=metric, last=last,
                             smooth_window=smooth, ancestry=ancestry, exp_dir=exp_dir,
                             title=title)
        result.figure.clear()  # free it: a watch draws a new one each time
        return result

    def show(result, note: str = "") -> None:
        if as_json:
            print(json.dumps({**result.table, "out": str(result.out)}, indent=1, default=str))
            return
        console.print(cmp.render_table(result.table))
        console.print(f"wrote {result.out}{note}")

    if watch is None:
        show(once())
        return

    import time

    def render(i: int) -> None:
        stamp = time.strftime("%H:%M:%S")
        note = f"  (updated {stamp}; every {watch:g}s, Ctrl-C stops)"
        try:
            result = once()
        except HgxError as err:  # a run mid-write or removed: say so, try again next time
            if i == 0:
                raise
            console.print(f"[yellow]{stamp} refresh failed: {err}[/]")
            return
        if console.is_terminal and not as_json:
            console.clear()
        show(result, note)

    done = cmp.watch(render, watch, max_iterations=max_iterations)
    if not as_json:
        console.print(f"stopped watching after {done} refresh{'es' if done != 1 else ''}")


@app.command("tree")
def tree_cmd(exp_dir: Optional[str] = ExpDir,
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """The lineage of all experiments as a tree, with each run's best valid accuracy."""
    from hgx import compare as cmp
    from hgx.experiment import exp_root

    nodes = cmp.lineage_tree(exp_dir)
    if as_json:
        print(json.dumps(nodes, indent=1))
        return
    root = exp_root(exp_dir)
    if not nodes:
        _console().print(f"{root} holds no experiments (create one with `hgx new`)")
        return
    _console().print(cmp.render_tree(nodes, str(root)))


def _console():
    """Rich console; not a terminal (a pipe, a file, a test): wide enough not to fold the
    table's columns, unless $COLUMNS says otherwise."""
    import os

    from rich.console import Console

    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(width=160)
    return console

"""`hgx prune OLD NEW` (a pruned branch) and `hgx prune OLD --scan` (the sensitivity table)."""
from __future__ import annotations

import json
from typing import Optional

import typer

from hgx.cli.app import ExpDir, _report, app, console

LEVELS_HELP = ("Blocks to prune: stem, hourglass levels 1..depth (1 = the outermost; the "
               "bottom blocks belong to the last), hg (every level), heads (each stack's block "
               "before its heatmap head), all (default). Several: --levels stem 1 2.")


@app.command("prune")
def prune_cmd(
    old: str = typer.Argument(..., help="Trained experiment to prune (never changed)."),
    new: Optional[str] = typer.Argument(None, help="Name of the pruned branch."),
    amount: Optional[float] = typer.Option(None, "--amount", help="Fraction of the residual "
                                           "blocks' inner channels to remove, in [0, 1)."),
    criterion: str = typer.Option("l1", "--criterion", help="l1: filter L1 norm, per layer "
                                  "(Li et al. 2017); bn: |gamma| of the next BatchNorm, one "
                                  "global threshold (network slimming, Liu et al. 2017)."),
    from_: str = typer.Option("last", "--from", help="OLD's snapshot: best, last or an "
                              "epoch number."),
    levels: Optional[str] = typer.Option(None, "--levels", help=LEVELS_HELP),
    fresh_optimizer: bool = typer.Option(False, "--fresh-optimizer", help="Fine-tune with a "
                                         "fresh optimizer (default: OLD's optimizer state, "
                                         "cut like the weights)."),
    scan: bool = typer.Option(False, "--scan", help="Sensitivity table instead: validation "
                              "after pruning each group alone at each --amounts (writes "
                              "nothing into OLD)."),
    amounts: Optional[str] = typer.Option(None, "--amounts", help="--scan: the amounts "
                                          "(default 0.1 0.2 ... 0.9)."),
    out: Optional[str] = typer.Option(None, "--out", help="--scan: the figure (PNG, SVG or "
                                      "PDF; default ./OLD-prune-scan.png)."),
    as_json: bool = typer.Option(False, "--json", help="--scan: print only JSON on stdout."),
    exp_dir: Optional[str] = ExpDir,
):
    """Prune a trained experiment's residual blocks into a new branch (fine-tune it with
    `hgx continue NEW --epochs N`), or --scan how sensitive each part of it is."""
    from hgx.errors import UsageError

    if scan:
        if new is not None or amount is not None:
            raise UsageError("--scan takes OLD alone and --amounts (not NEW or --amount)")
        if fresh_optimizer:
            raise UsageError("--fresh-optimizer belongs to a pruned branch, not --scan")
        from hgx.workflow import scan as sensitivity

        result = sensitivity.scan(old, _amounts(amounts), criterion, from_, levels, out,
                                  exp_dir)
        if as_json:
            print(json.dumps(result, indent=1))
            return
        console.print(sensitivity.table(result))
        console.print(f"wrote {result['figure']}")
        return
    if new is None:
        raise UsageError("give the new experiment's name: hgx prune OLD NEW --amount 0.5 "
                         "(or hgx prune OLD --scan)")
    if amounts is not None or out is not None or as_json:
        raise UsageError("--amounts, --out and --json belong to --scan")
    from hgx.workflow.prune import prune

    _report(prune(old, new, amount, criterion, from_, levels, exp_dir,
                  fresh_optimizer=fresh_optimizer))


def _amounts(text: Optional[str]) -> list[float]:
    from hgx.errors import UsageError

    if not text:
        return [round(0.1 * i, 1) for i in range(1, 10)]
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"--amounts: expected numbers such as 0.1 0.5 0.9, got {text!r}") \
            from None
    bad = [v for v in values if not 0 <= v < 1]
    if not values or bad:
        raise UsageError(f"--amounts: expected fractions at least 0 and below 1, got {text!r}")
    return values

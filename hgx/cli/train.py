"""`hgx new`, `hgx continue`, `hgx branch` (and the hidden `_worker` of distributed runs)."""
from __future__ import annotations

from typing import Optional

import typer

from hgx.cli.app import ExpDir, _report, _split, app, with_schema_options


@app.command("new")
@with_schema_options
def new_cmd(name: Optional[str] = typer.Argument(None, help="Experiment name (generated if "
                                                 "omitted)."),
            preset: Optional[str] = typer.Option(None, "--preset", help="Preset name "
                                                 "(experiments/NAME.yaml) or YAML path."),
            exp_dir: Optional[str] = ExpDir, **kwargs):
    """Create an experiment and train it."""
    from hgx import workflow

    _report(workflow.new(name, _split(kwargs), preset=preset, exp_dir=exp_dir))


@app.command("continue")
@with_schema_options
def continue_cmd(name: str = typer.Argument(..., help="Experiment to resume."),
                 exp_dir: Optional[str] = ExpDir, **kwargs):
    """Resume from the latest snapshot, keeping every stored option except the ones typed."""
    from hgx import workflow

    _report(workflow.continue_(name, _split(kwargs), exp_dir=exp_dir))


@app.command("branch")
@with_schema_options
def branch_cmd(old: str = typer.Argument(..., help="Experiment to branch from (unchanged)."),
               new: str = typer.Argument(..., help="Name of the new experiment."),
               from_epoch: Optional[int] = typer.Option(None, "--from-epoch",
                                                        help="Start from this epoch's snapshot."),
               from_: Optional[str] = typer.Option(None, "--from",
                                                   help="'best' or 'last' (default last)."),
               exp_dir: Optional[str] = ExpDir, **kwargs):
    """Start a new experiment from an old one's options and state; the old one is untouched."""
    from hgx import workflow
    from hgx.errors import UsageError

    if from_ not in (None, "best", "last"):
        raise UsageError(f"--from: expected best or last, got {from_!r}")
    if from_epoch is not None and from_ == "best":
        raise UsageError("--from-epoch and --from best exclude each other; give one")
    _report(workflow.branch(old, new, _split(kwargs), from_epoch=from_epoch,
                            from_best=from_ == "best", exp_dir=exp_dir))


@app.command("_worker", hidden=True)
def worker_cmd(exp_path: str):
    """One rank of a distributed run (started by torchrun)."""
    from hgx import workflow

    raise typer.Exit(workflow.worker(exp_path))

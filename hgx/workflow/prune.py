"""`hgx prune OLD NEW`: a trained experiment's snapshot, pruned (``hgx.models.prune``), as a
branch NEW that `hgx continue NEW --epochs N` fine-tunes.

NEW is a branch like `hgx branch` makes (its epochs continue OLD's numbering, OLD keeps every
byte), with three differences: its options carry the pruned network's inner widths
(``block_widths``, an architecture option, fixed from then on); its snapshot holds the pruned
weights and the optimizer state cut the same way; and its ``valid.log`` starts with one row at
the branch epoch, the validation of the pruned network before any fine-tuning, so `hgx
compare` draws the drop at the branch point and the recovery after it. experiment.yaml's
``parent.pruning`` records the criterion, the amount, the widths of every block, parameters,
FLOPs and the validation before and right after pruning.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.experiment import Experiment, check_name, exp_root
from hgx.lock import Lock
from hgx.workflow.guard import (
    EXIT_SIGNAL,
    Interrupted,
    RunResult,
    Undo,
    _check_data,
    _check_run,
    check_root,
    signals_abort_setup,
)


def check_amount(amount) -> float:
    if amount is None:
        raise UsageError("--amount: give the fraction of inner channels to remove, e.g. "
                         "--amount 0.5 (or --scan for the sensitivity table)")
    if not 0 <= float(amount) < 1:
        raise UsageError(f"--amount {amount:g}: expected the fraction of inner channels to "
                         "remove, at least 0 and below 1 (e.g. 0.5)")
    return float(amount)


def check_criterion(criterion: str) -> str:
    from hgx.models.prune import CRITERIA

    if criterion not in CRITERIA:
        raise UsageError(f"--criterion {criterion}: choose l1 (filter L1 norm, Li et al. "
                         "2017) or bn (|gamma| of the next BatchNorm, network slimming)")
    return criterion


class Source:
    """An experiment's snapshot, its options and what validates it as its valid.log does."""

    def __init__(self, exp: Experiment, which: str, log: Callable, interactive=None):
        from hgx import checkpoint
        from hgx.data import skeleton_for

        self.exp = exp
        stored = exp.options()
        self.opts = hopts.resolve(None, stored, None)
        if str(which) == "last":  # the newest that loads; when none does, say why, once
            notes: list[str] = []
            self.path, self.data = checkpoint.latest_good(exp, warn=notes.append)
            if self.data is None:
                why = "; ".join(n.removeprefix("warning: ").removesuffix(
                    "; trying the previous snapshot") for n in notes) or "none found"
                raise HgxError(f"{exp.name}: no snapshot can be loaded ({why}); train it "
                               f"first (`hgx continue {exp.name}`) or restore one")
            for note in notes:
                log(note)
        else:
            self.path, self.data = checkpoint.select(exp, which, warn=log)
        self.joints = skeleton_for(self.opts).num_joints
        self.log, self.interactive = log, interactive
        self._valid = None

    def check(self) -> None:
        """What the validation needs, before anything is written (device, data)."""
        _check_run(self.opts)
        _check_data(self.opts, self.log)

    def opts_with(self, widths: list[int]):
        """The options of a network of these inner widths (canonical: [] = unpruned)."""
        from hgx.models import unpruned_widths

        full = unpruned_widths(self.opts, self.joints)
        return dataclasses.replace(self.opts, block_widths=[] if widths == full else widths)

    def model(self, state_dict: dict, opts=None):
        from hgx.models import build_model
        from hgx.models.loading import check_compatible

        model = build_model(opts or self.opts, self.joints)
        check_compatible(model, state_dict, str(self.path))
        model.load_state_dict(state_dict)
        return model

    def validate(self, state_dict: dict, opts=None) -> dict:
        """The numbers valid.log would show for these weights (same split, people, flip)."""
        from hgx.engine.device import loader_workers, setup_runtime
        from hgx.engine.progress import Progress
        from hgx.engine.validate import validate, validation_data

        if self._valid is None:
            runtime = setup_runtime(self.opts)
            workers = loader_workers(self.opts.workers, runtime.device)
            self._valid = (runtime, *validation_data(self.opts, workers,
                                                     runtime.device.type == "cuda", self.log))
        runtime, valid_set, sampler, loader = self._valid
        model = runtime.prepare(self.model(state_dict, opts))
        progress = Progress(self.interactive)
        try:
            row = validate(model, self.opts, runtime, valid_set, loader, sampler,
                           int(self.data.get("epoch", 0)), progress)
        finally:
            progress.close()
        return {k: row[k] for k in ("loss", "acc", "pckh", "seconds")}


def prune(old: str, new_name: str, amount, criterion: str = "l1", which: str = "last",
          levels=None, exp_dir=None, log: Callable = print, interactive=None,
          argv=None, fresh_optimizer: bool = False) -> RunResult:
    with signals_abort_setup():
        try:
            return _prune(old, new_name, amount, criterion, which, levels, exp_dir, log,
                          interactive, argv, fresh_optimizer)
        except Interrupted as stop:
            return RunResult(new_name, EXIT_SIGNAL.get(stop.signum, 130),
                             f"{new_name}: interrupted while pruning; nothing kept")


def _prune(old, new_name, amount, criterion, which, levels, exp_dir, log, interactive, argv,
           fresh_optimizer):
    from hgx import checkpoint
    from hgx.engine.state import start_from_snapshot
    from hgx.models import cost
    from hgx.models import prune as surgery
    from hgx.models.hourglass import block_names

    root = exp_root(exp_dir)
    check_name(new_name)
    amount, criterion = check_amount(amount), check_criterion(criterion)
    parent = Experiment.open(root, old)
    check_root(root)
    if (root / new_name).exists():
        raise HgxError(f"experiment '{new_name}' already exists in {root}; pick another name")
    parent.meta(strict=True)  # a damaged experiment.yaml is named, not pruned
    groups = surgery.parse_levels(levels, parent.options()["depth"])
    src = Source(parent, which, log, interactive)
    src.check()
    opts, sd = src.opts, src.data["model"]
    names = [n for n, _ in src.model(sd).named_parameters()]  # the snapshot fits its options
    plan = surgery.plan(sd, opts.stacks, opts.depth, opts.modules, criterion, amount, groups)
    pruned = surgery.apply(sd, plan)
    new_opts = src.opts_with(plan.after)
    # kept, cut like the weights (a fresh RMSprop's first steps are ~10x the lr, its square
    # averages starting at 0); --fresh-optimizer as the reference fine-tunes
    # (rethinking-network-pruning cifar/l1-norm-pruning/main_finetune.py:100-108)
    optimizer = None if fresh_optimizer else \
        surgery.apply_optimizer(src.data.get("optimizer"), names, plan)
    before, after = cost(opts, src.joints), cost(new_opts, src.joints)
    log(f"validating {parent.name} ({src.path.name}) before and after pruning...")
    valid_before, valid_after = src.validate(sd), src.validate(pruned, new_opts)
    start = start_from_snapshot(src.data)
    record = {
        "criterion": criterion, "amount": amount, "scope": plan.scope, "levels": groups,
        "optimizer": "fresh" if fresh_optimizer else "cut from the parent's",
        "inner_channels": [sum(plan.before), sum(plan.after)],
        "parameters": [before["parameters"], after["parameters"]],
        "flops_per_image": [before["flops_per_image"], after["flops_per_image"]],
        "valid_before": valid_before, "valid_after": valid_after,
        "block_widths": {name: [w1, w2] for (name, _), w1, w2 in zip(
            block_names(opts.stacks, opts.depth, opts.modules), plan.after[::2],
            plan.after[1::2])},
    }
    lineage = {"name": parent.name, "path": str(parent.path.resolve()), "epoch": start.epoch,
               "iteration": start.iteration, "snapshot": src.path.name, "pruning": record}
    acc = valid_after["acc"]
    best = acc == acc  # the pruned network is NEW's best until fine-tuning beats it
    exp = Experiment.create(root, new_name, hopts.as_dict(new_opts), parent=lineage)
    undo = Undo(exp, created=True)
    try:
        with Lock(exp.lock_file):
            dst = exp.snapshot_path(start.epoch + (1 if start.iteration else 0),
                                    start.iteration)
            checkpoint.save(dst, {
                **{k: v for k, v in src.data.items() if k != "format"},
                "model": pruned, "optimizer": optimizer, "options": hopts.as_dict(new_opts),
                "best_acc": acc if best else None, "best_epoch": start.epoch if best else None})
            state = exp.state()
            state.update(epochs_done=start.epoch, iteration=start.iteration,
                         global_step=start.global_step,
                         last_snapshot=str(dst.relative_to(exp.path)),
                         precision=src.data.get("precision"))
            if best:
                tmp = exp.snapshots / f".best.pt.tmp-{os.getpid()}"
                os.link(dst, tmp)
                os.replace(tmp, exp.snapshots / "best.pt")
                state.update(best_snapshot="snapshots/best.pt", best_acc=acc,
                             best_epoch=start.epoch)
            exp.append_log("valid", {"epoch": start.epoch, **valid_after})
            exp.write_state(state)
            exp.record("prune", {}, argv, parent=parent.name, from_epoch=start.epoch,
                       snapshot=src.path.name, criterion=criterion, amount=amount,
                       levels=groups)
    except BaseException:
        undo.undo()
        raise
    return RunResult(exp.name, 0, summary(exp.name, lineage, advice=True))


def summary(name: str, lineage: dict, advice: bool = False) -> str:
    """What a pruning did, in a few lines (`hgx prune` prints it, `hgx show` too)."""
    r = lineage["pruning"]
    (c0, c1), (p0, p1), (f0, f1) = r["inner_channels"], r["parameters"], r["flops_per_image"]
    how = "filter L1 norm" if r["criterion"] == "l1" else "BatchNorm |gamma|"
    lines = [
        f"{name}: pruned from {lineage['name']} at epoch {lineage['epoch']} "
        f"({lineage['snapshot']}): {how}, amount {r['amount']:g} {r['scope']}, blocks of "
        f"{', '.join(r['levels'])}",
        f"  inner channels {c0:,} -> {c1:,}; parameters {p0:,} -> {p1:,} ({p1 / p0:.2f}x); "
        f"FLOPs per image {f0 / 1e9:.3f} G -> {f1 / 1e9:.3f} G ({f1 / max(f0, 1):.2f}x)"]
    vb, va = r.get("valid_before"), r.get("valid_after")
    if vb and va:
        lines.append(f"  valid acc {vb['acc']:.3f} before -> {va['acc']:.3f} right after "
                     f"pruning (PCKh {vb['pckh']:.1f} -> {va['pckh']:.1f})")
    if advice:
        done = lineage["epoch"]
        lines.append(f"  fine-tune it: `hgx continue {name} --epochs {done + 2}` (--epochs is "
                     f"the total: {done} done; --lr sets the rate)")
    return "\n".join(lines)

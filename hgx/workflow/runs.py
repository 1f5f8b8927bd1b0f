"""pose-hg-train's workflow on experiment directories: new, continue, branch (and the ranks and
nodes of distributed runs).

Option precedence: defaults < preset < parent experiment < flags the user actually typed.
Everything that can fail on user input is checked before anything is written (``guard``).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.experiment import Experiment, exp_root, generate_name
from hgx.lock import Lock
from hgx.workflow.guard import (
    EXIT_SIGNAL,
    Interrupted,
    RunResult,
    Undo,
    _check_data,
    _check_run,
    _guarded,
    _load_model,
    _refuse_arch_change,
    check_root,
    signals_abort_setup,
    typed_options,
)


def _train(exp: Experiment, opts, start, log, interactive) -> RunResult:
    if opts.nproc > 1 or opts.nnodes > 1:
        return _train_distributed(exp, opts, log)
    from hgx.engine.train import Trainer

    trainer = Trainer(exp, opts, start, log=log, interactive=interactive)
    outcome = trainer.run()
    state = exp.state()
    done = f"{state.get('epochs_done', 0)}/{opts.epochs} epochs"
    best = state.get("best_acc")
    best_txt = f", best valid acc {best:.3f} (epoch {state.get('best_epoch')})" if best else ""
    if outcome.stopped == "finished":
        message = f"{exp.name}: finished {done}{best_txt} in {outcome.seconds:.0f}s"
        if opts.end_samples:
            from hgx import viz

            picture = viz.draw_samples(exp.path, opts.end_samples, None, "best")
            message += f"\npredictions on {opts.end_samples} validation people: {picture}"
        return RunResult(exp.name, 0, message)
    if outcome.stopped == "nan":
        return RunResult(exp.name, 1, f"{exp.name}: stopped on a non-finite loss after {done}")
    how = f"`hgx continue {exp.name}` resumes it"
    if outcome.stopped == "max_iters":
        return RunResult(exp.name, 0, f"{exp.name}: stopped at --max-iters after {done} "
                                      f"(snapshot written); {how} (raise --max-iters)")
    code = EXIT_SIGNAL.get(trainer.interrupt or 2, 130)
    return RunResult(exp.name, code, f"{exp.name}: interrupted after {done}; snapshot "
                                     f"written; {how}")


def _train_distributed(exp: Experiment, opts, log) -> RunResult:
    """torchrun runs the ranks (`hgx _worker`); this process keeps the lock meanwhile."""
    from hgx.engine.distributed import launch

    world = opts.nproc * opts.nnodes
    log(f"{exp.name}: training on {world} processes ({opts.nnodes} node(s) x {opts.nproc}) "
        "with torchrun")
    t0 = time.time()
    code, signum = launch(str(exp.path), opts)
    state = exp.state()
    done = f"{state.get('epochs_done', 0)}/{opts.epochs} epochs"
    how = f"`hgx continue {exp.name}` resumes it"
    if signum is not None:
        return RunResult(exp.name, EXIT_SIGNAL.get(signum, 130),
                         f"{exp.name}: interrupted after {done}; snapshot written; {how}")
    if code != 0:
        return RunResult(exp.name, 1, f"{exp.name}: the distributed run failed (torchrun exit "
                                      f"{code}) after {done}; the output above says why; {how}")
    if state.get("finished"):
        return RunResult(exp.name, 0, f"{exp.name}: finished {done} on {world} processes in "
                                      f"{time.time() - t0:.0f}s")
    return RunResult(exp.name, 0, f"{exp.name}: stopped after {done}; {how}")


def _join(root: Path, name: str, opts, log) -> RunResult:
    """A node other than 0 of a multi-node run, started with the same command as node 0 plus
    its --node-rank. Node 0's hgx creates, locks and writes the experiment (on a filesystem all
    nodes share); this one only starts its torchrun agent, whose ranks read the experiment once
    every node has joined the rendezvous, which node 0 enters after writing it."""
    from hgx.engine.distributed import launch

    _check_run(opts)
    log(f"{name}: joining as node {opts.node_rank} of {opts.nnodes} ({opts.nproc} processes "
        f"here); node 0 at {opts.master_addr}:{opts.master_port} writes the experiment")
    code, signum = launch(str(root / name), opts)
    where = f"node {opts.node_rank} of {name}"
    if signum is not None:
        return RunResult(name, EXIT_SIGNAL.get(signum, 130), f"{where}: interrupted")
    if code != 0:
        return RunResult(name, 1, f"{where}: torchrun failed (exit {code}); the output above "
                                  "says why")
    return RunResult(name, 0, f"{where}: done; node 0 has the logs and snapshots")


def worker(exp_path: str) -> int:
    """One rank of a distributed run (started by torchrun through `hgx _worker`)."""
    from hgx import checkpoint
    from hgx.engine.distributed import shutdown
    from hgx.engine.state import StartState, start_from_snapshot
    from hgx.engine.train import Trainer

    exp = Experiment(Path(exp_path))
    opts = hopts.Options(**exp.options())
    _, data = checkpoint.latest_good(exp, warn=lambda *_: None)
    start = start_from_snapshot(data) if data else \
        StartState(model=_load_model(opts, hopts.as_dict(opts))[1])
    try:
        outcome = Trainer(exp, opts, start).run()
    finally:
        shutdown()
    return 1 if outcome.stopped == "nan" else 0


def new(name: str | None, typed_raw: dict, preset: str | None = None, exp_dir=None,
        log: Callable = print, interactive=None, argv=None) -> RunResult:
    with signals_abort_setup():
        try:
            return _new(name, typed_raw, preset, exp_dir, log, interactive, argv)
        except Interrupted as stop:
            return RunResult(name or "", EXIT_SIGNAL.get(stop.signum, 130),
                             "interrupted before anything was created")


def _new(name, typed_raw, preset, exp_dir, log, interactive, argv) -> RunResult:
    from hgx.engine.state import StartState

    root = exp_root(exp_dir)
    typed = typed_options(typed_raw)
    preset_values = hopts.load_preset(preset) if preset else {}
    if name is None:
        if typed.get("node_rank"):
            raise UsageError("--node-rank: give the experiment's NAME, the same on every node")
        name = generate_name(root)
        log(f"experiment name: {name}")
    from hgx.experiment import check_name

    check_name(name)
    if typed.get("node_rank"):
        return _join(root, name, hopts.resolve(preset_values, None, typed), log)
    check_root(root)
    if (root / name).exists():
        raise HgxError(f"experiment '{name}' already exists in {root}; pick another name, or "
                       f"`hgx continue {name}` to resume it")
    opts = hopts.resolve(preset_values, None, typed)
    _check_run(opts)
    opts, weights = _load_model(opts, typed)
    _check_data(opts, log)
    exp = Experiment.create(root, name, hopts.as_dict(opts))
    undo = Undo(exp, created=True)
    try:
        exp.record("new", typed, argv, preset=preset)
        with Lock(exp.lock_file):
            return _guarded(undo, lambda: _train(exp, opts, StartState(model=weights), log,
                                                 interactive))
    except BaseException:
        if not undo.trained():
            undo.undo()
        raise


def continue_(name: str, typed_raw: dict, exp_dir=None, log: Callable = print,
              interactive=None, argv=None) -> RunResult:
    with signals_abort_setup():
        try:
            return _continue(name, typed_raw, exp_dir, log, interactive, argv)
        except Interrupted as stop:
            return RunResult(name, EXIT_SIGNAL.get(stop.signum, 130),
                             f"{name}: interrupted while setting up; left as it was")


# files continue rewrites before training; restored when it fails before its first snapshot
CONTINUE_FILES = ("options.yaml", "history.jsonl", "train.log", "valid.log", "state.json")


def _continue(name, typed_raw, exp_dir, log, interactive, argv) -> RunResult:
    from hgx import checkpoint
    from hgx.engine.state import StartState, start_from_snapshot

    root = exp_root(exp_dir)
    typed = typed_options(typed_raw)
    exp = Experiment.open(root, name)
    stored = exp.options()
    exp.meta(strict=True)  # a damaged experiment.yaml is named, not trained on
    state = exp.state()
    if typed.get("node_rank"):
        opts = hopts.resolve(None, stored, typed)
        if int(state.get("epochs_done", 0)) >= opts.epochs and not state.get("iteration"):
            return RunResult(exp.name, 0, f"nothing to do: {exp.name} has done "
                                          f"{state.get('epochs_done', 0)} of {opts.epochs} "
                                          "epochs (node 0 says the same)")
        return _join(root, name, opts, log)
    has_weights = state.get("last_snapshot") is not None or bool(exp.snapshot_files())
    if has_weights:
        _refuse_arch_change(stored, typed, "continue")
    opts = hopts.resolve(None, stored, typed)
    _check_run(opts)
    done = int(state.get("epochs_done", 0))
    if done >= opts.epochs and not state.get("iteration"):
        return RunResult(exp.name, 0, f"nothing to do: {exp.name} has done {done} of "
                                      f"{opts.epochs} epochs; raise --epochs to train more")
    with Lock(exp.lock_file) as lock:
        if lock.taken_over is not None:
            log(f"note: took over a stale lock of pid {lock.taken_over.get('pid')} on "
                f"{lock.taken_over.get('host')} (that process is gone)")
        exp.remove_stale_temporaries()
        notes: list[str] = []
        _, data = checkpoint.latest_good(exp, warn=notes.append)
        if data is None and has_weights:
            why = "; ".join(n.removeprefix("warning: ").removesuffix("; trying the previous "
                                                                     "snapshot") for n in notes)
            raise HgxError(f"{exp.name}: no snapshot can be loaded ({why or 'none found'}); "
                           "nothing was changed. Restore one, or start again with `hgx new`")
        for note in notes:
            log(note)
        start = start_from_snapshot(data) if data is not None else \
            StartState(model=_load_model(opts, stored)[1])
        _check_data(opts, log)
        undo = Undo(exp, created=False, files=CONTINUE_FILES)
        try:
            exp.truncate_logs(start.epoch)
            exp.write_options(hopts.as_dict(opts))
            exp.record("continue", typed, argv, from_epoch=start.epoch,
                       from_iteration=start.iteration)
            return _guarded(undo, lambda: _train(exp, opts, start, log, interactive))
        except BaseException:
            if not undo.trained():
                undo.undo()
            raise


def branch(old: str, new_name: str, typed_raw: dict, from_epoch: int | None = None,
           from_best: bool = False, exp_dir=None, log: Callable = print, interactive=None,
           argv=None) -> RunResult:
    with signals_abort_setup():
        try:
            return _branch(old, new_name, typed_raw, from_epoch, from_best, exp_dir, log,
                           interactive, argv)
        except Interrupted as stop:
            return RunResult(new_name, EXIT_SIGNAL.get(stop.signum, 130),
                             f"{new_name}: interrupted while setting up; nothing kept")


def _branch(old, new_name, typed_raw, from_epoch, from_best, exp_dir, log, interactive,
            argv) -> RunResult:
    from hgx import checkpoint
    from hgx.engine.state import start_from_snapshot
    from hgx.experiment import check_name

    root = exp_root(exp_dir)
    check_name(new_name)
    typed = typed_options(typed_raw)
    if typed.get("node_rank"):
        return _join(root, new_name, hopts.resolve(None, None, typed), log)
    parent = Experiment.open(root, old)
    check_root(root)
    if (root / new_name).exists():
        raise HgxError(f"experiment '{new_name}' already exists in {root}; pick another name")
    stored = parent.options()
    _refuse_arch_change(stored, typed, "branch")
    which = "best" if from_best else str(from_epoch) if from_epoch is not None else "last"
    src, data = checkpoint.select(parent, which, warn=log)
    opts = hopts.resolve(None, stored, typed)
    _check_run(opts)
    _check_data(opts, log)
    start = start_from_snapshot(data)
    lineage = {"name": parent.name, "path": str(parent.path.resolve()),
               "epoch": start.epoch, "iteration": start.iteration,
               "snapshot": src.name}
    exp = Experiment.create(root, new_name, hopts.as_dict(opts), parent=lineage)
    undo = Undo(exp, created=True)
    try:
        dst = exp.snapshots / src.name if src.name != "best.pt" else \
            exp.snapshot_path(start.epoch + (1 if start.iteration else 0), start.iteration)
        shutil.copyfile(src, dst)
        state = exp.state()
        state.update(epochs_done=start.epoch, iteration=start.iteration,
                     global_step=start.global_step, last_snapshot=str(dst.relative_to(exp.path)))
        exp.write_state(state)
        undo.first = state["last_snapshot"]  # the copy is not this run's own snapshot
        exp.record("branch", typed, argv, parent=parent.name, from_epoch=start.epoch,
                   snapshot=src.name)
        start.best_acc = start.best_epoch = None
        if start.epoch >= opts.epochs and not start.iteration:
            return RunResult(exp.name, 0, f"{exp.name} branched from {parent.name} at epoch "
                                          f"{start.epoch}; nothing to train: it has done "
                                          f"{start.epoch} of {opts.epochs} epochs (`hgx "
                                          f"continue {exp.name} --epochs N` trains more)")
        log(f"{exp.name}: branched from {parent.name} at epoch {start.epoch}")
        with Lock(exp.lock_file):
            return _guarded(undo, lambda: _train(exp, opts, start, log, interactive))
    except BaseException:
        if not undo.trained():
            undo.undo()
        raise

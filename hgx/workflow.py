"""pose-hg-train's workflow on experiment directories: new, continue, branch, list, show, diff.

Option precedence: defaults < preset < parent experiment < flags the user actually typed.
Everything that can fail on user input is checked before anything is written.
"""
from __future__ import annotations

import contextlib
import shutil
import signal
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.experiment import Experiment, Lock, exp_root, generate_name, list_names, read_tsv

EXIT_SIGNAL = {2: 130, 15: 143}  # SIGINT, SIGTERM


class Interrupted(KeyboardInterrupt):
    """A signal arrived while the command was still setting up (before the first step). A
    KeyboardInterrupt, so that no ``except Exception`` swallows it and loader workers stop
    quietly."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_abort_setup():
    """From the command's first line, SIGINT/SIGTERM abort the setup cleanly (an exception
    that unwinds: the lock is released, what the command created is removed); the training
    loop installs its own handlers (finish the step, snapshot) once it runs."""
    def abort(signum, _frame):
        raise Interrupted(signum)

    old = {sig: signal.signal(sig, abort) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class Undo:
    """What a command created or changed, undone when it fails before training wrote its
    first snapshot: a directory it created is removed; files it changed get their old bytes
    back. Nothing else is ever touched."""

    def __init__(self, exp: Experiment, created: bool, files: tuple[str, ...] = ()):
        self.exp, self.created = exp, created
        self.first = exp.state().get("last_snapshot")
        self.saved = {name: (exp.path / name).read_bytes() if (exp.path / name).is_file()
                      else None for name in files}

    def trained(self) -> bool:
        return self.exp.state().get("last_snapshot") != self.first

    def undo(self) -> str:
        if self.created:
            shutil.rmtree(self.exp.path, ignore_errors=True)
            return f"{self.exp.name} removed (it had no snapshot of its own)"
        from hgx.experiment import atomic_write

        for name, data in self.saved.items():
            path = self.exp.path / name
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, data)
        return f"{self.exp.name} left as it was"


def _guarded(undo: Undo, run: Callable[[], "RunResult"]) -> "RunResult":
    """Run training; on a failure before its first snapshot, undo what the command did."""
    try:
        result = run()
    except Interrupted as stop:
        if undo.trained():
            raise
        what = undo.undo()
        return RunResult(undo.exp.name, EXIT_SIGNAL.get(stop.signum, 130),
                         f"{undo.exp.name}: interrupted while setting up; {what}")
    except BaseException:
        if not undo.trained():
            undo.undo()
        raise
    if result.exit_code == 1 and not undo.trained():  # e.g. a non-finite loss in epoch 1
        result.message += f"; {undo.undo()}"
    return result


@dataclass
class RunResult:
    name: str
    exit_code: int = 0
    message: str = ""


def typed_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate the flags the user typed (None = not typed)."""
    return {k: hopts.coerce(k, v) for k, v in raw.items() if v is not None}


def _refuse_arch_change(stored: dict, typed: dict, what: str) -> None:
    for key, value in typed.items():
        if hopts.BY_NAME[key].arch and stored.get(key) != value:
            flag = hopts.BY_NAME[key].flag
            raise UsageError(f"{flag} cannot change on {what}: the snapshot holds a model with "
                             f"{key}={stored.get(key)}; start a new experiment with `hgx new ... "
                             f"--load-model` instead")


def _check_data(opts, log) -> None:
    """Fail before creating anything when the dataset is not there: its annotation files, its
    image folder, and the first image of each split decode."""
    from hgx.data import open_split

    for split in ("train", "valid"):
        ds = open_split(opts, split, log=log)
        if ds.cache is None:
            if not ds.image_dir.is_dir():
                raise HgxError(f"image folder {ds.image_dir} not found; put the dataset's images "
                               f"there (or pass --data-dir DIR holding annot/ and images/)")
            if len(ds):
                ds.load_image(0)


def _load_model(opts, typed: dict):
    """--load-model: read the checkpoint and take its architecture for every architecture
    option the user did not type. Returns (options, state_dict)."""
    if not opts.load_model:
        return opts, None
    from hgx.data import skeleton_for
    from hgx.models import build_model
    from hgx.models.convert import check_compatible, load_any_checkpoint, with_arch

    path = Path(opts.load_model).expanduser()
    if not path.is_file():
        raise HgxError(f"--load-model {path}: file not found")
    loaded = load_any_checkpoint(path)
    opts = hopts.Options(**with_arch(hopts.as_dict(opts), loaded.arch, keep=typed))
    model = build_model(opts, skeleton_for(opts).num_joints)
    check_compatible(model, loaded.state_dict, str(path))
    return opts, loaded.state_dict


def _check_run(opts) -> None:
    """Run options that cannot work here: refused before anything is written."""
    from hgx.engine.device import select_device
    from hgx.models import check_resolution

    check_resolution(opts)
    if opts.nproc * opts.nnodes == 1:
        select_device(opts.device)
    if opts.sync_bn and opts.nproc * opts.nnodes > 1:
        import torch

        if opts.device == "cpu" or not torch.cuda.is_available():
            raise UsageError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm runs on GPUs only); "
                             "drop it on CPU")
    if opts.node_rank >= opts.nnodes:
        raise UsageError(f"--node-rank {opts.node_rank} must be below --nnodes {opts.nnodes}")


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
    from hgx.engine.train import StartState, Trainer, start_from_snapshot

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


def check_root(root: Path) -> Path:
    """The experiments root must be a directory this user can write (created if missing)."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"experiments root {root} is a file, not a directory; pass --exp-dir "
                         "DIR (or set $HGX_EXP_DIR) to a directory")
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HgxError(f"experiments root {root} is not writable ({probe} does not let this user "
                       "create files); choose another --exp-dir or fix its permissions")
    return root


def new(name: str | None, typed_raw: dict, preset: str | None = None, exp_dir=None,
        log: Callable = print, interactive=None, argv=None) -> RunResult:
    with signals_abort_setup():
        try:
            return _new(name, typed_raw, preset, exp_dir, log, interactive, argv)
        except Interrupted as stop:
            return RunResult(name or "", EXIT_SIGNAL.get(stop.signum, 130),
                             "interrupted before anything was created")


def _new(name, typed_raw, preset, exp_dir, log, interactive, argv) -> RunResult:
    from hgx.engine.train import StartState

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
    from hgx.engine.train import StartState, start_from_snapshot

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
    from hgx.engine.train import start_from_snapshot
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


# -- read-only views ----------------------------------------------------------------------------
def summary(exp: Experiment) -> dict:
    """What list and show report of one experiment (never writes)."""
    state = exp.state()
    try:
        opts = exp.options()
        total = opts["epochs"]
    except HgxError:
        opts, total = None, None
    parent = exp.parent()

    def absolute(rel):
        p = exp.resolve_path(rel)
        return str(p.resolve()) if p is not None and p.is_file() else None

    return {
        "name": exp.name, "path": str(exp.path.resolve()),
        "parent": parent.get("name") if parent else None,
        "branched_from_epoch": parent.get("epoch") if parent else None,
        "epochs_done": state.get("epochs_done", 0), "epochs": total,
        "best_acc": state.get("best_acc"), "best_epoch": state.get("best_epoch"),
        "status": exp.status(), "precision": state.get("precision"),
        "last_snapshot": absolute(state.get("last_snapshot")),
        "best_snapshot": absolute(state.get("best_snapshot")),
    }


def list_experiments(exp_dir=None) -> list[dict]:
    """Every experiment's summary; one whose files are damaged is listed as such (status
    ``damaged``, ``problem`` saying which file) and the others are listed as usual."""
    root = exp_root(exp_dir)
    out = []
    for n in list_names(root):
        exp = Experiment(root / n)
        try:
            out.append(summary(exp))
        except HgxError as err:
            out.append({"name": n, "path": str(exp.path.resolve()), "parent": None,
                        "branched_from_epoch": None, "epochs_done": None, "epochs": None,
                        "best_acc": None, "best_epoch": None, "status": "damaged",
                        "problem": str(err), "precision": None, "last_snapshot": None,
                        "best_snapshot": None})
    return out


def show(name: str, exp_dir=None) -> dict:
    exp = Experiment.open(exp_root(exp_dir), name)
    info = summary(exp)
    info["options"] = exp.options()
    info["lineage"] = exp.parent()
    info["history"] = exp.history()
    info["train_log"] = read_tsv(exp.train_log)
    info["valid_log"] = read_tsv(exp.valid_log)
    return info


def diff(a: str, b: str, exp_dir=None) -> dict[str, tuple]:
    root = exp_root(exp_dir)
    return hopts.differences(Experiment.open(root, a).options(),
                             Experiment.open(root, b).options())

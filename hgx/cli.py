"""The `hgx` command line: parse, call the library, print. Torch is imported only when needed.

Every experiment option of ``hgx.options.SCHEMA`` becomes a flag of new/continue/branch; a flag
left out is not "typed" and so never overrides the parent experiment's value.
"""
from __future__ import annotations

import inspect
import json
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hgx import __version__
from hgx import options as hopts
from hgx.errors import HgxError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Train, continue, branch and evaluate stacked-hourglass pose networks.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: generate the synthetic set, "
                       "convert public datasets into pose-hg-train's layout.")
prepare_app = typer.Typer(no_args_is_help=True, help="Convert a dataset's release files into "
                          "annot/{train,valid,test}.h5 (default --out data/<dataset>).")
app.add_typer(data_app, name="data")
data_app.add_typer(prepare_app, name="prepare")
console = Console() if sys.stdout.isatty() else Console(width=160)
STATE = {"debug": False}

ExpDir = typer.Option(None, "--exp-dir", help="Experiments root (default $HGX_EXP_DIR or ./exp).")


def with_schema_options(func):
    """Append one `--flag` per schema option (default None = not typed) to a command."""
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD]
    for opt in hopts.SCHEMA:
        kind = "list" if opt.type is list else opt.type.__name__
        extra = f" [{'|'.join(opt.choices)}]" if opt.choices else ""
        default = " ".join(map(str, opt.default)) if opt.type is list else opt.default
        if opt.type is bool:
            params.append(inspect.Parameter(
                opt.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[bool],
                default=typer.Option(None, f"{opt.flag}/--no-{opt.flag[2:]}",
                                     help=f"{opt.help} (default: {default})",
                                     rich_help_panel=opt.group)))
            continue
        params.append(inspect.Parameter(
            opt.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
            default=typer.Option(None, opt.flag, metavar=kind.upper(),
                                 help=f"{opt.help}{extra} (default: {default!s})",
                                 rich_help_panel=opt.group)))
    func.__signature__ = sig.replace(parameters=params)
    return func


def _split(kwargs: dict) -> dict:
    return {o.name: kwargs.pop(o.name) for o in hopts.SCHEMA if o.name in kwargs}


def _report(result) -> None:
    if result.message:
        (console.print if result.exit_code == 0 else _err)(result.message)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _print_version(value: bool) -> None:
    if value:
        print(f"hgx {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
          version: bool = typer.Option(False, "--version", help="Print the version.",
                                       is_eager=True, callback=_print_version)):
    STATE["debug"] = debug


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
    if parent:
        console.print(f"branched from {parent['name']} at epoch {parent['epoch']}")
    best = f"{info['best_acc']:.3f} at epoch {info['best_epoch']}" if info["best_acc"] else "-"
    console.print(f"status {info['status']}, {info['epochs_done']}/{info['epochs']} epochs, "
                  f"best valid acc {best}")
    console.print(f"last snapshot {info['last_snapshot'] or '-'}\nbest snapshot "
                  f"{info['best_snapshot'] or '-'}")
    defaults = hopts.defaults()
    changed = {k: v for k, v in info["options"].items() if defaults.get(k) != v}
    console.print("options (not default): " + (", ".join(f"{k}={v}" for k, v in changed.items())
                                               or "all default"))
    if info["valid_log"]:
        table = Table("epoch", "train loss", "train acc", "valid loss", "valid acc", "PCKh")
        train = {r["epoch"]: r for r in info["train_log"]}
        for r in info["valid_log"][-10:]:
            t = train.get(r["epoch"], {})
            table.add_row(f"{r['epoch']:.0f}", f"{t.get('loss', float('nan')):.6f}",
                          f"{t.get('acc', float('nan')):.3f}", f"{r['loss']:.6f}",
                          f"{r['acc']:.3f}", f"{r.get('pckh', float('nan')):.1f}")
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


@data_app.command("synth")
def data_synth(directory: str = typer.Argument(..., help="Output directory (new or empty)."),
               seed: int = typer.Option(0, "--seed"),
               size: str = typer.Option("1280x720", "--size", help="Image size WxH."),
               train: int = typer.Option(1000, "--train", min=1),
               valid: int = typer.Option(200, "--valid", min=1),
               test: int = typer.Option(200, "--test", min=1)):
    """Generate the synthetic-people dataset in the MPII layout (images/, annot/*.h5)."""
    from hgx.data.synth import generate

    w, h = hopts.parse_size(size, "--size")
    with console.status("generating") as status:
        info = generate(directory, seed=seed, size=(w, h), n_train=train, n_valid=valid,
                        n_test=test, progress=lambda d, t: status.update(f"generating {d}/{t}"))
    console.print(f"wrote {info['images']} images and annot/{{train,valid,test}}.h5 "
                  f"({info['train']}/{info['valid']}/{info['test']} people) to {info['dir']}")


@data_app.command("cache")
def data_cache(data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Dataset "
                                                      "directory (default: --dataset's)."),
               dataset: str = typer.Option("synthetic", "--dataset"),
               input_res: int = typer.Option(256, "--input-res", min=16),
               scale_aug: float = typer.Option(0.25, "--scale-aug", min=0),
               splits: str = typer.Option("train,valid", "--splits")):
    """Store each person's region once, so epochs never decode whole photographs
    (train with --crop-cache)."""
    from hgx.data import data_dir as find_data
    from hgx.data.cache import build

    opts = hopts.resolve(None, None, {k: hopts.coerce(k, v) for k, v in
                                      {"data_dir": data_dir, "dataset": dataset,
                                       "input_res": input_res, "scale_aug": scale_aug}.items()
                                      if v is not None})
    root = find_data(opts)
    with console.status("caching") as status:
        out = build(root, opts, tuple(s for s in splits.split(",") if s),
                    progress=lambda sp, d, t: status.update(f"caching {sp} {d}/{t}"))
    console.print(f"wrote the crop cache {out}; train with --crop-cache --data-dir {root}")


def _prepared(summary: dict) -> None:
    splits = ", ".join(f"{k} {v}" for k, v in summary.get("splits", {}).items())
    skipped = {k: v for k, v in summary.get("skipped", {}).items() if v}
    console.print(f"wrote {summary.get('out')}/annot: {splits}"
                  + (f"; skipped {skipped}" if skipped else ""))
    console.print(f"train on it: hgx new NAME --dataset {summary.get('dataset')} --data-dir "
                  f"{summary.get('out')}")


@prepare_app.command("mpii")
def prepare_mpii_cmd(mat: str = typer.Option(..., "--mat", help="mpii_human_pose_v1_u12_1.mat"),
                     images: Optional[str] = typer.Option(None, "--images", help="Image folder."),
                     out: str = typer.Option("data/mpii", "--out"),
                     valid_h5: Optional[str] = typer.Option(None, "--valid-h5", help="Take "
                                                            "the validation split from this "
                                                            "valid.h5 (default: Tompson's, "
                                                            "packaged)")):
    """MPII: the official release -> train/valid (Tompson's split)/test, float joints kept."""
    from hgx.data.prepare import prepare_mpii

    _prepared(prepare_mpii(mat, out, images_dir=images, valid_h5=valid_h5))


@prepare_app.command("lsp")
def prepare_lsp_cmd(joints: str = typer.Option(..., "--joints", help="joints.mat of LSP or "
                                               "LSP-extended."),
                    images: str = typer.Option(..., "--images"),
                    out: str = typer.Option("data/lsp", "--out"),
                    extended: bool = typer.Option(False, "--extended", help="--joints is "
                                                  "LSP-extended's."),
                    extended_joints: Optional[str] = typer.Option(None, "--extended-joints",
                                                                  help="Add LSP-extended's "
                                                                  "10000 to training."),
                    extended_images: Optional[str] = typer.Option(None, "--extended-images"),
                    observer_joints: Optional[str] = typer.Option(
                        None, "--observer-joints", help="The observer-centric labels of LSP's "
                        "2000 images (eval_pose's gt/lsp-joints-OC.mat): `hgx eval` then "
                        "reports person- and observer-centric PCK.")):
    """LSP / LSP-extended: joints.mat -> train (1-1000, + LSPET) and valid (1001-2000)."""
    from hgx.data.prepare import prepare_lsp

    _prepared(prepare_lsp(joints, out, images, extended=extended, extended_mat=extended_joints,
                          extended_images=extended_images, observer_mat=observer_joints))


@prepare_app.command("coco")
def prepare_coco_cmd(json_path: str = typer.Option(..., "--json", help="person_keypoints_"
                                                   "train2017.json"),
                     images: str = typer.Option(..., "--images"),
                     out: str = typer.Option("data/coco", "--out"),
                     valid_json: Optional[str] = typer.Option(None, "--valid-json"),
                     valid_images: Optional[str] = typer.Option(None, "--valid-images"),
                     min_keypoints: int = typer.Option(1, "--min-keypoints", min=1)):
    """COCO single person: one crop per annotated (non-crowd) person, 17 joints."""
    from hgx.data.prepare import prepare_coco

    _prepared(prepare_coco(json_path, out, images, min_keypoints, valid_json=valid_json,
                           valid_images=valid_images))


@prepare_app.command("mpii-lsp")
def prepare_mix_cmd(mpii: str = typer.Option("data/mpii", "--mpii"),
                    lsp: str = typer.Option("data/lsp", "--lsp"),
                    out: str = typer.Option("data/mpii-lsp", "--out")):
    """PyraNet's mpii-lsp mixture from the two prepared folders (LSP in MPII's 16 joints)."""
    from hgx.data.prepare import mix_mpii_lsp

    _prepared(mix_mpii_lsp(mpii, lsp, out))


# -- commands that live beside their library ---------------------------------------------------
def _register_extensions() -> None:
    """Modules that add commands: each has ``register(app)``; missing ones are skipped."""
    import importlib

    for module in ("hgx.cli_eval", "hgx.cli_compare"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.register(app)


_register_extensions()


# -- entry point --------------------------------------------------------------------------------
LIST_FLAGS = {o.flag for o in hopts.SCHEMA if o.type is list} | {"--scales"}


# The hourglass-pruning fork's names for the residual block's widths: inner (N), outer (M).
ALIASES = {"--N": "--mid", "--M": "--features"}


def _join_list_flags(argv: list[str]) -> list[str]:
    """`--schedule 60 90` -> `--schedule "60 90"` (click options take one value); aliases."""
    out, i = [], 0
    while i < len(argv):
        out.append(ALIASES.get(argv[i], argv[i]))
        if argv[i] in LIST_FLAGS:
            values = []
            while i + 1 < len(argv) and _is_number(argv[i + 1]):
                values.append(argv[i + 1])
                i += 1
            if values:
                out.append(" ".join(values))
        i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = _join_list_flags(list(sys.argv[1:] if argv is None else argv))
    if not argv:  # bare `hgx`: the help, not an error
        argv = ["--help"]
    debug = "--debug" in argv
    command = typer.main.get_command(app)
    try:
        code = command.main(argv, prog_name="hgx", standalone_mode=False)
    except HgxError as err:
        if debug:
            raise
        # raised in a DataLoader worker, it comes back re-raised with the worker's traceback
        _err(f"hgx: error: {_wrapped_hgx_error(err) or _one_line(err)}")
        code = err.exit_code
    except KeyboardInterrupt as stop:
        from hgx.workflow import EXIT_SIGNAL

        _err("hgx: interrupted")
        code = EXIT_SIGNAL.get(getattr(stop, "signum", 2), 130)
    except OSError as err:  # the filesystem said no: name the path and what to do
        if debug:
            raise
        _err(f"hgx: error: {_os_error(err)}")
        code = 1
    except Exception as err:  # a bug, not a user error: one line unless --debug
        if _is_click(err, "NoArgsIsHelpError"):  # `hgx data`: that group's help
            print(err.ctx.get_help())
            return 0
        if _is_click(err, "UsageError"):  # typer may vendor its own click: match by name
            ctx = getattr(err, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx else ""
            _err(f"hgx: error: {_one_line(err.format_message())}{hint}")
            return 2
        if _is_click(err, "Abort"):  # click turns KeyboardInterrupt into Abort
            from hgx.workflow import EXIT_SIGNAL

            _err("hgx: interrupted")
            return EXIT_SIGNAL.get(getattr(err.__cause__, "signum", 2), 130)
        if debug:
            raise
        wrapped = _wrapped_hgx_error(err)
        if wrapped:
            _err(f"hgx: error: {wrapped}")
        else:
            _err(f"hgx: internal error: {type(err).__name__}: {err} (rerun with --debug for "
                 "the traceback)")
        code = 1
    return code if isinstance(code, int) else 0


def _os_error(err: OSError) -> str:
    where = err.filename if err.filename is not None else "a file"
    why = err.strerror or type(err).__name__
    if isinstance(err, PermissionError):
        fix = "check its permissions, or choose another --exp-dir / --out"
    elif err.errno == 28:  # ENOSPC
        fix = "free some disk space"
    elif isinstance(err, (FileExistsError, NotADirectoryError, IsADirectoryError)):
        fix = "a file and a directory are mixed up there; pass a directory (e.g. --exp-dir DIR)"
    else:
        fix = "check the path"
    return f"{where}: {why}; {fix}"


def _is_click(err: Exception, name: str) -> bool:
    return any(c.__name__ == name and "click" in c.__module__ for c in type(err).__mro__)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split("\n")).strip()


def _wrapped_hgx_error(err: Exception) -> str | None:
    """An HgxError raised in a DataLoader worker comes back wrapped with its traceback."""
    text = str(err)
    marker = "HgxError: "
    if marker in text:
        return text.rsplit(marker, 1)[1].strip().splitlines()[0]
    return None


def entry() -> None:
    sys.exit(main())

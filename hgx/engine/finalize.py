"""Evaluation and final predictions of a trained model (pose-hg-train's -finalPredictions).

``load_model_for`` picks the weights (an experiment's best/last/epoch snapshot, or any
checkpoint hgx can import), ``score`` turns predictions into a PCKh/PCK table, and
``write_final`` writes them in pose-hg-train's h5 layout plus the MPII ``.mat``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hgx import checkpoint
from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.experiment import Experiment


@dataclass
class Loaded:
    model: object
    opts: object
    source: str         # the file the weights came from


def load_model_for(exp: Experiment | None, which: str = "best", load_model: str = "",
                   overrides: dict | None = None) -> Loaded:
    """The model and options to predict with. ``overrides``: data options typed by the user."""
    from hgx.data import skeleton_for
    from hgx.engine.device import setup_runtime
    from hgx.models import build_model
    from hgx.models.loading import check_compatible, load_any_checkpoint, with_arch

    overrides = overrides or {}
    if load_model:
        path = Path(load_model).expanduser()
        if not path.is_file():
            raise HgxError(f"--load-model {path}: file not found")
        loaded = load_any_checkpoint(path)
        opts = hopts.resolve(None, with_arch(exp.options() if exp is not None else {},
                                             loaded.arch), overrides)
        state_dict = loaded.state_dict
    else:
        if exp is None:
            raise UsageError("give an experiment NAME or --load-model PATH")
        path, data = checkpoint.select(exp, which, best_falls_back=True)
        state_dict = data["model"]
        opts = hopts.resolve(None, exp.options(), overrides)
    runtime = setup_runtime(opts)
    model = build_model(opts, skeleton_for(opts).num_joints)
    check_compatible(model, state_dict, str(path))
    model.load_state_dict(state_dict)
    return Loaded(runtime.prepare(model), opts, str(path))


def run(loaded: Loaded, split: str, flip: bool, scales, batch: int = 0, interactive=None,
        limit: int = 0):
    """Predictions of ``loaded`` on a split, rows in the annotation file's order."""
    from hgx.data import open_split
    from hgx.engine.device import loader_workers, setup_runtime
    from hgx.engine.predict import predict

    dataset = open_split(loaded.opts, split)
    runtime = setup_runtime(loaded.opts)
    pred = predict(loaded.model, dataset, runtime, batch=batch or loaded.opts.valid_batch_size,
                   flip=flip, scales=tuple(scales),
                   workers=loader_workers(loaded.opts.workers, runtime.device),
                   label=f"predict {split}", interactive=interactive, limit=limit)
    return pred, dataset


def provenance(loaded: Loaded, split: str, flip: bool, scales) -> dict:
    """What produced a set of numbers: printed by eval/finalize, stored in final_preds.h5."""
    from hgx import __version__

    return {"snapshot": loaded.source, "split": split, "flip": bool(flip),
            "scales": [float(s) for s in scales], "hgx_version": __version__}


def describe(info: dict) -> str:
    scales = " ".join(f"{s:g}" for s in info["scales"])
    return (f"{info['snapshot']}, {info['split']} split, flip {'on' if info['flip'] else 'off'}, "
            f"scales {scales}")


def write_final(path: Path, pred, dataset, info: dict, mpii_release: Path | None = None
                ) -> list[Path]:
    """``path`` (.h5, pose-hg-train's layout, with ``info`` as attributes) and, given MPII's
    release file, the test server's ``pred_keypoints_mpii.mat`` beside it."""
    from hgx.engine.predict import write_h5

    path = Path(path)
    written = [path]
    mat = None
    if mpii_release is not None:
        from hgx.eval import submission

        annot = dataset.annot
        if annot.index is None or annot.person is None:
            raise HgxError(f"{annot.path} has no index/person columns, which place each "
                           "prediction in MPII's release; use pose-hg-train's annot/test.h5 or "
                           "`hgx data prepare mpii`")
        mat = path.parent / submission.FILE_NAME
        # check and build the .mat before anything is written
        submission.write(mat, Path(mpii_release), annot.index[pred.rows],
                         annot.person[pred.rows], pred.preds)
        written.append(mat)
    write_h5(path, pred, dataset.annot, info)
    return written

"""Read-only views of experiments: list, show, diff (never write).
"""
from __future__ import annotations

from hgx import options as hopts
from hgx.errors import HgxError
from hgx.experiment import Experiment, exp_root, list_names
from hgx.files import read_tsv


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
    info["pruning"] = (info["lineage"] or {}).get("pruning")
    info["model"] = model_cost(info["options"])
    return info


def model_cost(values: dict) -> dict | None:
    """Parameters and FLOPs per image of an experiment's network (None when its dataset,
    which sets the number of joints, cannot be read here)."""
    from hgx.data import skeleton_for
    from hgx.models import cost

    try:
        opts = hopts.Options(**values)
        return cost(opts, skeleton_for(opts, log=lambda *_: None).num_joints)
    except (HgxError, OSError, TypeError, ValueError):  # unreadable data, damaged options
        return None


def diff(a: str, b: str, exp_dir=None) -> dict[str, tuple]:
    root = exp_root(exp_dir)
    return hopts.differences(Experiment.open(root, a).options(),
                             Experiment.open(root, b).options())

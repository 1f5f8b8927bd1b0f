"""The lineage of all experiments of a root as a tree (`hgx tree`), with each run's best accuracy.
"""
from __future__ import annotations

from pathlib import Path

from hgx.compare.runs import Run, load_run, run_names
from hgx.errors import HgxError
from hgx.experiment import exp_root


# -- the tree -----------------------------------------------------------------------------------
def lineage_tree(exp_dir=None) -> list[dict]:
    """Every experiment of the root (hgx, and pose-hg-train directories as roots) as nested
    dicts, children sorted by branch epoch. A damaged experiment shows as 'broken'."""
    root = exp_root(exp_dir)
    runs = []
    for name in run_names(root):
        try:
            runs.append(load_run(root / name))
        except HgxError as err:
            runs.append(Run(name, (root / name).resolve(), "hgx", [], [], status=f"broken: {err}"))
    by_path = {r.path: r for r in runs}
    by_name = {r.name: r for r in runs}
    children: dict[Path | None, list[Run]] = {}
    orphans: dict[Path, str] = {}
    for r in runs:
        parent = None
        if r.parent:
            p = Path(r.parent.get("path") or "")
            parent = by_path.get(p.resolve()) if r.parent.get("path") else None
            parent = parent or by_name.get(str(r.parent.get("name")))
            if parent is None or parent is r:
                parent = None
                orphans[r.path] = str(r.parent.get("name"))
        children.setdefault(parent.path if parent else None, []).append(r)

    def node(r: Run, seen: set) -> dict:
        best, best_epoch = r.best()
        kids = sorted(children.get(r.path, []),
                      key=lambda c: (c.branch_epoch or 0, c.name)) if r.path not in seen else []
        return {"name": r.name, "path": str(r.path), "kind": r.kind, "status": r.status,
                "epochs_done": r.epochs_done, "epochs": r.epochs_total,
                "best_acc": best, "best_epoch": best_epoch,
                "branched_from_epoch": r.branch_epoch and int(r.branch_epoch),
                "missing_parent": orphans.get(r.path),
                "children": [node(c, seen | {r.path}) for c in kids]}

    return [node(r, set()) for r in sorted(children.get(None, []), key=lambda r: r.name)]


def render_tree(nodes: list[dict], root_label: str):
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(f"[bold]{escape(root_label)}[/]")

    def label(n: dict) -> str:
        best = "-" if n["best_acc"] is None else f"{n['best_acc']:.3f} (ep {n['best_epoch']})"
        total = f"/{n['epochs']}" if n["epochs"] else ""
        fork = f"  from epoch {n['branched_from_epoch']}" \
            if n["branched_from_epoch"] is not None else ""
        missing = f"  [yellow](parent {escape(n['missing_parent'])} not found)[/]" \
            if n["missing_parent"] else ""
        return (f"[bold]{escape(n['name'])}[/]  best {best}  epochs {n['epochs_done']}{total}  "
                f"[dim]{escape(n['status'])}[/]{fork}{missing}")

    def add(parent, n: dict):
        branch = parent.add(label(n))
        for c in n["children"]:
            add(branch, c)

    for n in nodes:
        add(tree, n)
    return tree

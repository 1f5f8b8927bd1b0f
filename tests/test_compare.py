"""`hgx compare` / `hgx tree`: curves of real and handmade runs, lineage, pose-hg-train logs,
the table's differing options, and that nothing is ever written into an experiment."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, tree_hashes
from hgx import compare as cmp
from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.experiment import TRAIN_COLUMNS, VALID_COLUMNS
from hgx.files import format_tsv


# -- handmade runs ------------------------------------------------------------------------------
def fake_run(root: Path, name: str, epochs: range, parent: tuple[str, int] | None = None,
             acc=lambda e: e / 100, **options) -> Path:
    """An hgx experiment directory as the trainer leaves it, without training."""
    d = root / name
    (d / "snapshots").mkdir(parents=True)
    opts = hopts.defaults() | {"epochs": max(epochs, default=0)} | options
    (d / "options.yaml").write_text(hopts.dump_yaml(opts))
    lineage = None if parent is None else {"name": parent[0],
                                           "path": str((root / parent[0]).resolve()),
                                           "epoch": parent[1], "iteration": 0}
    (d / "experiment.yaml").write_text(hopts.yaml.safe_dump(
        {"name": name, "created": "2026-01-01T00:00:00+00:00", "parent": lineage}))
    train = [{"epoch": e, "iters": 10, "loss": 1.0 / e, "acc": acc(e) + 0.01, "lr": opts["lr"],
              "seconds": 1.0, "img_per_s": 10.0} for e in epochs]
    valid = [{"epoch": e, "loss": 2.0 / e, "acc": acc(e), "pckh": 100 * acc(e), "seconds": 1.0}
             for e in epochs]
    (d / "train.log").write_text(format_tsv(TRAIN_COLUMNS, train))
    (d / "valid.log").write_text(format_tsv(VALID_COLUMNS, valid))
    best = max(epochs, key=acc, default=None)
    (d / "state.json").write_text(json.dumps({
        "epochs_done": max(epochs, default=0), "iteration": 0,
        "last_snapshot": "snapshots/epoch-0001.pt" if best else None,
        "best_acc": acc(best) if best else None, "best_epoch": best}))
    return d


def lines_by_label(fig) -> dict[str, list]:
    out: dict[str, list] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            out.setdefault(line.get_label(), []).append(line)
    return out


def legend_labels(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def panel(fig, title: str):
    return next(ax for ax in fig.axes if ax.get_title() == title)


# -- real runs through the CLI ------------------------------------------------------------------
def test_compare_and_tree_of_real_branches(hgx, tmp_path):
    """new a -> branch b (--lr 1e-5) and c (--lr 5e-5, from epoch 1): two forks of one line."""
    assert hgx("new", "a", *TINY, "--epochs", "2", "--snapshot", "1")[0] == 0
    assert hgx("branch", "a", "b", "--lr", "1e-5", "--epochs", "3")[0] == 0
    assert hgx("branch", "a", "c", "--from-epoch", "1", "--lr", "5e-5", "--epochs", "3")[0] == 0
    before = tree_hashes(hgx.root)

    code, out = hgx("compare", "a", "b", "c", "--out", "curves.png")
    assert code == 0, out
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    header = next(line for line in out.splitlines() if "run" in line and "parent" in line)
    # lr differs, but no schedule moved it: the "last lr" column shows it, once
    assert header.count("lr") == 1 and "last lr" in header
    for column in ("train_iters", "batch_size", "stacks", "optimizer"):
        assert column not in out  # equal in all three runs
    rows = {line.split()[1]: line for line in out.splitlines() if re.match(r"^│ [abc] ", line)}
    assert "1e-05" in rows["b"] and "5e-05" in rows["c"] and "0.00025" in rows["a"]
    assert "a @2" in rows["b"] and "a @1" in rows["c"] and "2/2" in rows["a"]

    code, out = hgx("compare", str(hgx.root), "--ancestry", "--out", "curves.svg", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert [r["run"] for r in data["runs"]] == ["a", "b", "c"]
    assert data["differing_options"] == ["epochs", "lr"]
    assert (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")

    code, out = hgx("tree")
    assert code == 0, out
    indent = {n: next(i for i, line in enumerate(out.splitlines())
                      if re.search(rf"\b{n}  best", line)) for n in "abc"}
    lines = out.splitlines()
    col = {n: lines[indent[n]].index(f"{n}  best") for n in "abc"}
    assert col["b"] > col["a"] and col["c"] == col["b"]  # b and c nested under a
    assert indent["c"] < indent["b"]  # children in branch-epoch order: c (1) before b (2)
    assert "from epoch 1" in lines[indent["c"]] and "best" in lines[indent["a"]]

    result = cmp.compare(["a", "b", "c"], out=None, ancestry=True)
    assert legend_labels(result.figure) == ["a", "b", "c"]
    lines = lines_by_label(result.figure)
    assert len(lines["a"]) == len(lines["b"]) == len(lines["c"]) == 4  # one per panel
    valid_acc = panel(result.figure, "valid accuracy")
    own = {ln.get_label(): ln for ln in valid_acc.get_lines()}
    assert list(own["b"].get_xdata()) == [2, 3]  # from the fork at epoch 2 on
    assert list(own["c"].get_xdata()) == [1, 2, 3]
    assert own["b"].get_ydata()[0] == pytest.approx(own["a"].get_ydata()[1])  # a's epoch 2
    assert tree_hashes(hgx.root) == before
    assert sorted(p.name for p in hgx.root.iterdir()) == ["a", "b", "c"]


# -- pose-hg-train (Torch7) logs ----------------------------------------------------------------
def torch7_dir(root: Path, name: str = "hg-torch7") -> Path:
    """What optim.Logger wrote: names padded to 10, Lua's hash order, a trailing tab, '%g'."""
    d = root / name
    d.mkdir(parents=True)
    train = "LR        \tacc       \tepoch     \tloss      \t\n"
    for e in range(1, 6):
        train += f"{2.5e-4 if e < 4 else 2.5e-5:g}\t{0.1 * e:.4f}\t{e}\t{0.01 / e:.6f}\t\n"
    train += "LR        \tacc       \tepoch     \tloss      \t\n"  # -continue: header again
    train += "2.5e-05\t0.6000\t6\t0.001667\t\n"
    train += "2.5e-05\t0.7"  # being written
    valid = "Loss\tEpoch\tACC\n"  # another order, other capitals
    for e in range(1, 7):
        valid += f"{0.02 / e:11.4e}\t{e}\t{0.09 * e:11.4e}\n"
    (d / "train.log").write_text(train)
    (d / "valid.log").write_text(valid)
    return d


def test_torch7_logs_with_shuffled_headers(tmp_path):
    d = torch7_dir(tmp_path)
    train = cmp.read_log(d / "train.log")
    assert [r["epoch"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert train[2] == {"lr": 2.5e-4, "acc": 0.3, "epoch": 3, "loss": pytest.approx(0.01 / 3,
                                                                                   abs=1e-6)}
    assert train[-1]["lr"] == 2.5e-5
    valid = cmp.read_log(d / "valid.log")
    assert [r["epoch"] for r in valid] == [1, 2, 3, 4, 5, 6]
    assert valid[3]["acc"] == pytest.approx(0.36) and valid[3]["loss"] == pytest.approx(0.005)

    before = tree_hashes(d)
    hgx_run = fake_run(tmp_path / "exp", "mine", range(1, 4))
    result = cmp.compare([str(d), str(hgx_run)], out=tmp_path / "both.png")
    assert legend_labels(result.figure) == ["hg-torch7", "mine"]
    row = result.table["runs"][0]
    assert row["kind"] == "torch7" and row["epochs_done"] == 6
    assert row["best_acc"] == pytest.approx(0.54) and row["best_epoch"] == 6
    assert row["last_lr"] == 2.5e-5 and row["parent"] is None
    x = panel(result.figure, "train accuracy").get_lines()[0].get_xdata()
    assert list(x) == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "both.png").is_file() and tree_hashes(d) == before


def test_log_without_epoch_column_is_numbered_by_row(tmp_path):
    (tmp_path / "train.log").write_text("loss\tacc\n0.5\t0.1\n0.4\t0.2\n0.3\tnan\n")
    rows = cmp.read_log(tmp_path / "train.log")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[1]["loss"] == 0.4 and math.isnan(rows[2]["acc"])
    (tmp_path / "valid.log").write_text("epoch\tacc\n1\t0.1\n2\t0.2\n2\t0.25\n")
    assert [r["acc"] for r in cmp.read_log(tmp_path / "valid.log")] == [0.1, 0.25]
    assert cmp.read_log(tmp_path / "missing.log") == []


# -- the table ----------------------------------------------------------------------------------
def test_table_lists_only_options_that_differ(tmp_path):
    root = tmp_path / "exp"
    fake_run(root, "r1", range(1, 5), lr=1e-3, batch_size=8)
    fake_run(root, "r2", range(1, 5), lr=1e-4, batch_size=8)
    fake_run(root, "r3", range(1, 5), lr=1e-4, batch_size=6, acc=lambda e: 0.5 - e / 100)
    torch7_dir(root, "old")
    runs = cmp.load_runs([str(root / n) for n in ("r1", "r2", "r3", "old")])
    data = cmp.table_data(runs, ["valid_acc"])
    assert data["differing_options"] == ["batch_size", "lr"]
    by_run = {r["run"]: r for r in data["runs"]}
    assert by_run["r1"]["options"] == {"batch_size": 8, "lr": 1e-3}
    assert by_run["r3"]["best_acc"] == pytest.approx(0.49) and by_run["r3"]["best_epoch"] == 1
    assert by_run["r2"]["last"] == {"valid_acc": pytest.approx(0.04)}
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(cmp.render_table(data))
    text = console.export_text()
    assert "batch_size" in text and " lr " in text and "0.001" in text and "(torch7)" in text
    assert "momentum" not in text and "stacks" not in text


def test_metric_choice_and_errors(hgx, tmp_path):
    fake_run(hgx.root, "r1", range(1, 4))
    fake_run(hgx.root, "r2", range(1, 4), lr=1e-5)
    result = cmp.compare(["r1", "r2"], out=None, metrics=["valid_acc,valid-pckh"])
    titles = [ax.get_title() for ax in result.figure.axes if ax.get_visible()]
    assert titles == ["valid accuracy", "valid PCKh@0.5"]
    assert result.table["metrics"] == ["valid_acc", "valid_pckh"]
    code, out = hgx("compare", "r1", "--metric", "valid_f1")
    assert code == 2 and "valid_f1" in out and len(out.strip().splitlines()) == 1
    code, out = hgx("compare", "r1", "nope")
    assert code == 1 and "nope" in out and "r1" in out and len(out.strip().splitlines()) == 1
    code, out = hgx("compare", "r1", "--out", "curves.gif")
    assert code == 2 and ".png" in out


def test_no_experiments_is_a_one_line_error(hgx):
    code, out = hgx("compare")
    assert code == 1 and "holds no experiments" in out and len(out.strip().splitlines()) == 1
    code, out = hgx("tree")
    assert code == 0 and "holds no experiments" in out


# -- lineage and the views ----------------------------------------------------------------------
def lineage_root(tmp_path) -> Path:
    root = tmp_path / "exp"
    fake_run(root, "base", range(1, 11))
    fake_run(root, "lr-down", range(6, 9), parent=("base", 5), lr=1e-5, acc=lambda e: e / 50)
    fake_run(root, "lr-down-more", range(8, 10), parent=("lr-down", 7), lr=1e-6,
             acc=lambda e: e / 40)
    fake_run(root, "other", range(4, 7), parent=("base", 3), lr=5e-5)
    fake_run(root, "orphan", range(3, 5), parent=("deleted", 2))
    return root


def test_branch_curve_starts_at_the_fork_and_ancestry_leads_to_it(tmp_path):
    root = lineage_root(tmp_path)
    grandchild = str(root / "lr-down-more")
    fig = cmp.compare([grandchild], out=None).figure
    lines = {ln.get_label(): ln for ln in panel(fig, "valid accuracy").get_lines()}
    own = lines["lr-down-more"]
    assert list(own.get_xdata()) == [7, 8, 9]
    assert own.get_ydata()[0] == pytest.approx(7 / 50)  # the parent's value at epoch 7
    assert "_ancestry" not in lines and "_fork" in lines

    fig = cmp.compare([grandchild], out=None, ancestry=True).figure
    lines = {ln.get_label(): ln for ln in panel(fig, "valid accuracy").get_lines()}
    anc = lines["_ancestry"]
    assert list(anc.get_xdata()) == [1, 2, 3, 4, 5, 6, 7]  # base 1-5, then lr-down 6-7
    assert list(anc.get_ydata()) == pytest.approx([e / 100 for e in range(1, 6)] +
                                                  [6 / 50, 7 / 50])
    assert legend_labels(fig) == ["lr-down-more"]  # ancestors are not runs of the legend
    # the parent found on disk is read, not written, and protected from --out
    with pytest.raises(UsageError, match="inside the experiment"):
        cmp.compare([grandchild], out=root / "base" / "x.png", ancestry=True)


def test_orphan_branch_draws_its_own_epochs(tmp_path):
    root = lineage_root(tmp_path)
    result = cmp.compare([str(root / "orphan")], out=None, ancestry=True)
    lines = {ln.get_label(): ln for ln in panel(result.figure, "train loss").get_lines()}
    assert list(lines["orphan"].get_xdata()) == [3, 4] and "_fork" not in lines
    assert result.table["runs"][0]["parent"] == "deleted"


def test_last_k_and_smoothing(tmp_path):
    root = lineage_root(tmp_path)
    runs = cmp.load_runs([str(root / n) for n in ("base", "lr-down", "other")])
    curves = cmp.curves(runs, "valid_acc", last=3)
    assert list(curves["base"].x) == [8, 9, 10]
    assert len(curves["other"].x) == 0 and len(curves["lr-down"].x) == 1  # only epoch 8
    fig = cmp.compare([str(root / "base")], out=None, last=4).figure
    assert fig.axes[0].get_xlim()[0] > 6 and fig.axes[0].get_xlim()[1] < 11

    assert list(cmp.smooth(np.array([1.0, 2, 3, 4, 5]), 3)) == [1, 1.5, 2, 3, 4]
    assert list(cmp.smooth(np.array([1.0, np.nan, 3]), 2)) == [1, 1, 3]
    c = cmp.curves(runs, "valid_acc", smooth_window=3)["base"]
    assert c.raw_y is not None and c.y[-1] == pytest.approx(np.mean([0.08, 0.09, 0.10]))
    fig = cmp.compare([str(root / "base")], out=None, smooth_window=3).figure
    assert "_raw" in lines_by_label(fig)  # the raw values stay visible, faint


def test_tree_nesting_and_orphans(hgx, tmp_path):
    root = lineage_root(tmp_path)
    torch7_dir(root, "old-t7")
    nodes = cmp.lineage_tree(root)
    assert [n["name"] for n in nodes] == ["base", "old-t7", "orphan"]
    assert nodes[1]["kind"] == "torch7" and nodes[1]["best_acc"] == pytest.approx(0.54)
    base = nodes[0]
    assert [c["name"] for c in base["children"]] == ["other", "lr-down"]  # by branch epoch
    assert base["children"][1]["children"][0]["name"] == "lr-down-more"
    assert nodes[2]["missing_parent"] == "deleted"
    assert base["best_acc"] == pytest.approx(0.1) and base["best_epoch"] == 10
    code, out = hgx("tree", "--exp-dir", str(root))
    assert code == 0
    assert "parent deleted not found" in out
    depth = {n: len(line) - len(line.lstrip("│├└─ ")) for line in out.splitlines()
             for n in ("base", "lr-down", "lr-down-more") if re.search(rf"\b{n}  best", line)}
    assert depth["base"] < depth["lr-down"] < depth["lr-down-more"]


def test_same_names_in_two_roots_are_told_apart(tmp_path):
    fake_run(tmp_path / "one", "run", range(1, 3))
    fake_run(tmp_path / "two", "run", range(1, 3))
    result = cmp.compare([str(tmp_path / "one"), str(tmp_path / "two")], out=None)
    assert legend_labels(result.figure) == ["one/run", "two/run"]


def test_many_runs_get_distinct_colours():
    from hgx.compare.figure import run_colors

    for n in (3, 15, 50, 70):
        colors = run_colors(n)
        assert len(colors) == n
        assert len({tuple(round(v, 3) for v in c) for c in colors}) == n


# -- watching, and never writing ----------------------------------------------------------------
def test_watch_redraws_new_epochs_and_stops_on_ctrl_c(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = fake_run(tmp_path / "exp", "live", range(1, 3))
    seen = []

    def render(i):
        result = cmp.compare([str(d)], out="live.png")
        seen.append(int(result.runs[0].valid[-1]["epoch"]))

    def sleep(seconds):  # the trainer writes an epoch meanwhile (atomically, as hgx does)
        rows = cmp.read_log(d / "valid.log")
        rows.append({"epoch": rows[-1]["epoch"] + 1, "loss": 0.1, "acc": 0.5, "pckh": 50,
                     "seconds": 1})
        (d / "valid.log").write_text(format_tsv(VALID_COLUMNS, rows))

    assert cmp.watch(render, 5, max_iterations=3, sleep=sleep) == 3
    assert seen == [2, 3, 4]

    def interrupt(seconds):
        raise KeyboardInterrupt

    assert cmp.watch(render, 5, sleep=interrupt) == 1
    with pytest.raises(UsageError):
        cmp.watch(render, 0)


def test_watch_command_never_writes_into_experiments(hgx, tmp_path, monkeypatch):
    fake_run(hgx.root, "r1", range(1, 4))
    fake_run(hgx.root, "r2", range(2, 4), parent=("r1", 1), lr=1e-5)
    torch7_dir(tmp_path, "t7")
    before = tree_hashes(tmp_path)
    monkeypatch.setattr("time.sleep", lambda s: None)
    code, out = hgx("compare", "r1", "r2", "t7", "--watch", "1", "--max-iterations", "2",
                    "--ancestry", "--smooth", "2", "--last", "2")
    assert code == 0, out
    assert out.count("wrote ") == 2 and "stopped watching after 2 refreshes" in out
    after = tree_hashes(tmp_path)
    assert set(after) - set(before) == {"compare.png"}
    assert {k: after[k] for k in before} == before

    code, out = hgx("compare", "r1", "--out", str(hgx.root / "r1" / "curves.png"))
    assert code == 2 and "never writes into experiments" in out
    code, out = hgx("tree")
    assert code == 0 and "r2" in out
    assert {k: v for k, v in tree_hashes(tmp_path).items() if k != "compare.png"} == \
        {k: v for k, v in before.items()}


def test_unreadable_options_name_the_file(tmp_path):
    d = fake_run(tmp_path / "exp", "bad", range(1, 3))
    (d / "options.yaml").write_text("lr: [oops\n")
    with pytest.raises(HgxError, match="options.yaml"):
        cmp.load_runs([str(d)])
    (d / "options.yaml").write_text("lr: fast\n")
    with pytest.raises(HgxError, match="'lr'"):
        cmp.load_runs([str(d)])


def test_options_of_another_hgx_version_are_shown_not_refused(tmp_path):
    root = tmp_path / "exp"
    fake_run(root, "old", range(1, 3))
    new = fake_run(root, "new", range(1, 3))
    (new / "options.yaml").write_text((new / "options.yaml").read_text() + "ema_decay: 0.999\n")
    data = cmp.table_data(cmp.load_runs([str(root)]))
    assert data["differing_options"] == ["ema_decay"]
    assert [r["options"]["ema_decay"] for r in data["runs"]] == [0.999, None]


def test_interrupted_save_leaves_no_temporary_file(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()

    def interrupted(path, **kwargs):
        Path(path).write_bytes(b"half a picture")
        raise KeyboardInterrupt

    fig.savefig = interrupted
    with pytest.raises(KeyboardInterrupt):
        cmp.save_figure(fig, tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_benchmark_runs_in_its_tiniest_mode(tmp_path, monkeypatch, capsys):
    """benchmarks/bench_compare.py still works against hgx (no timing is asserted)."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("bench_compare", None)
    bench = importlib.import_module("bench_compare")
    result = bench.main(["--quick", "--runs", "4", "--epochs", "6", "--device", "cpu",
                         "--json", str(tmp_path / "r.json")])
    assert result["benchmark"] == "compare" and result["config"]["runs"] == 4
    assert set(result["seconds"]) == {"baseline_read_logs", "load", "load_table", "compare",
                                      "compare_ancestry", "cli"}
    assert json.loads((tmp_path / "r.json").read_text())["seconds"] == result["seconds"]
    assert "JSON: " in capsys.readouterr().out

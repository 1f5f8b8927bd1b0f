"""`hgx prune`: channel surgery on the residual blocks, the pruned branch, fine-tuning it, the
sensitivity scan."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY, tree_hashes
from hgx import options as hopts
from hgx.files import read_tsv
from hgx.models import build_model, cost
from hgx.models import prune as surgery
from hgx.models.hourglass import Residual, StackedHourglass, block_names
from hgx.models.loading import load_any_checkpoint

ARCH = dict(stacks=2, features=16, modules=1, joints=16, depth=2)


def trained_like(seed: int = 0, **arch) -> StackedHourglass:
    """A network whose BatchNorms look trained: non-trivial gamma, beta and running stats,
    so that a channel the surgery mishandles changes the output."""
    torch.manual_seed(seed)
    net = StackedHourglass(**{**ARCH, **arch})
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.normal_(0, 1)
                m.bias.normal_(0, 0.5)
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def snapshot(exp, name=None) -> dict:
    state = json.loads((exp / "state.json").read_text())
    return torch.load(exp / (name or state["last_snapshot"]), weights_only=True)


def test_block_order_is_the_order_of_the_modules():
    for stacks, depth, modules, stem in ((2, 2, 1, "original"), (1, 3, 2, "bearpaw")):
        net = StackedHourglass(stacks, 16, modules, 16, depth, stem=stem)
        names = [n for n, m in net.named_modules() if isinstance(m, Residual)]
        assert names == [n for n, _ in block_names(stacks, depth, modules)]
        widths = [w for i in range(len(names)) for w in (1 + i % 5, 1 + i % 3)]
        pruned = StackedHourglass(stacks, 16, modules, 16, depth, stem=stem,
                                  block_widths=widths)
        assert [w for m in pruned.modules() if isinstance(m, Residual) for w in m.widths] \
            == widths
        assert list(pruned.state_dict()) == list(net.state_dict())  # same keys, same order


@pytest.mark.parametrize("criterion", ["l1", "bn"])
@pytest.mark.parametrize("groups", [None, ["stem", "2"]])
def test_pruned_network_computes_the_parent_with_the_removed_channels_zeroed(criterion,
                                                                             groups):
    """What "zeroed" has to mean in a pre-activation block: a removed conv1 filter reaches
    conv2 through bn2 and a ReLU, and an eval-mode BatchNorm turns a zero input into
    beta - gamma * mean / sqrt(var + eps), not 0. So the parent equals the pruned network
    only when the removed filters (weights and bias) AND their following BatchNorm's gamma and
    beta are zero: then the channel leaves the ReLU as exactly 0, as if it did not exist.
    Zeroing the filters alone is not enough (checked below)."""
    net = trained_like()
    sd = net.state_dict()
    plan = surgery.plan(sd, 2, 2, 1, criterion, 0.5, groups or surgery.groups_of(2))
    assert sum(plan.after) < sum(plan.before)
    pruned = StackedHourglass(**ARCH, block_widths=plan.after).eval()
    pruned.load_state_dict(surgery.apply(sd, plan))
    zeroed = StackedHourglass(**ARCH).eval()
    zeroed.load_state_dict(surgery.zeroed(sd, plan))
    filters_only = StackedHourglass(**ARCH).eval()
    partial = surgery.zeroed(sd, plan)
    for k in partial:
        if ".bn2." in k or ".bn3." in k:
            partial[k] = sd[k]
    filters_only.load_state_dict(partial)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b, c, d = pruned(x), zeroed(x), net(x), filters_only(x)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (a - b).abs().max()
    assert (a - c).abs().max() > 1e-2  # pruning changed the output: the check above bites
    assert (a - d).abs().max() > 1e-2  # the filters alone zeroed are not the pruned network


def test_criteria_keep_what_the_references_keep():
    net = trained_like(1)
    sd = net.state_dict()
    block = "hourglasses.0.up1.0"
    # l1, per layer: each conv keeps int(n * (1 - a)) filters of the largest L1 norm
    plan = surgery.plan(sd, 2, 2, 1, "l1", 0.3, ["1"])
    norms = sd[f"{block}.conv2.weight"].abs().sum(dim=(1, 2, 3))
    kept = plan.keep[block][1]
    assert len(kept) == int(8 * 0.7) and torch.all(kept[1:] > kept[:-1])  # in channel order
    assert norms[kept].min() >= norms[[i for i in range(8) if i not in kept]].max()
    assert "stem.3" not in plan.keep and "features.0.0" not in plan.keep
    # bn, global: the int(total * a) smallest |gamma| of all selected layers go, wherever
    plan = surgery.plan(sd, 2, 2, 1, "bn", 0.5, ["1", "2"])
    gammas = torch.cat([sd[f"{n}.bn{i}.weight"].abs() for n in plan.keep for i in (2, 3)])
    removed = sum(plan.before) - sum(plan.after)
    assert removed == int(len(gammas) * 0.5)
    threshold = torch.sort(gammas).values[removed - 1]
    for n, (k1, k2) in plan.keep.items():
        for i, k in ((2, k1), (3, k2)):
            assert torch.all(sd[f"{n}.bn{i}.weight"].abs()[k] >= threshold)
    assert len({w for w in plan.after}) > 2  # layers lose different shares


def test_amount_0_is_the_parent_exactly(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    code, out = hgx("prune", "a", "b", "--amount", "0")
    assert code == 0, out
    parent, child = snapshot(hgx.root / "a"), snapshot(hgx.root / "b")
    assert all(torch.equal(parent["model"][k], child["model"][k]) for k in parent["model"])
    opts = hopts.Options(**yaml.safe_load((hgx.root / "b" / "options.yaml").read_text()))
    assert opts.block_widths == []
    models = []
    for sd in (parent["model"], child["model"]):
        m = build_model(opts, 16).eval()
        m.load_state_dict(sd)
        models.append(m)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(models[0](x), models[1](x))
    lineage = yaml.safe_load((hgx.root / "b" / "experiment.yaml").read_text())["parent"]
    assert lineage["pruning"]["valid_before"]["loss"] == lineage["pruning"]["valid_after"]["loss"]
    assert lineage["pruning"]["optimizer"] == "cut from the parent's"
    assert child["optimizer"]["state"]  # the parent's optimizer state goes on
    # --fresh-optimizer: the weights alone, as the reference's main_finetune.py
    assert hgx("prune", "a", "f", "--amount", "0.5", "--fresh-optimizer")[0] == 0
    assert snapshot(hgx.root / "f")["optimizer"] is None
    code, out = hgx("continue", "f", "--epochs", "2")
    assert code == 0, out


def test_prune_makes_a_branch_that_reloads_evaluates_and_fine_tunes(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "2")[0] == 0
    old = hgx.root / "a"
    before = tree_hashes(old)
    code, out = hgx("prune", "a", "b", "--amount", "0.5", "--criterion", "bn", "--from",
                    "best")
    assert code == 0, out
    assert "hgx continue b --epochs" in out
    assert tree_hashes(old) == before  # OLD keeps every byte
    new = hgx.root / "b"
    # the lineage: parent, snapshot, the pruning
    meta = yaml.safe_load((new / "experiment.yaml").read_text())
    state_a = json.loads((old / "state.json").read_text())
    lin = meta["parent"]
    assert lin["name"] == "a" and lin["snapshot"] == "best.pt"
    assert lin["epoch"] == state_a["best_epoch"]
    rec = lin["pruning"]
    assert rec["criterion"] == "bn" and rec["amount"] == 0.5 and rec["scope"] == "global"
    c0, c1 = rec["inner_channels"]
    assert c1 == c0 - int(c0 * 0.5)
    assert rec["parameters"][1] < rec["parameters"][0]
    assert rec["flops_per_image"][1] < rec["flops_per_image"][0]
    # the widths: ONE architecture option in the options, per block in the lineage
    opts = hopts.Options(**yaml.safe_load((new / "options.yaml").read_text()))
    names = [n for n, _ in block_names(2, 2)]
    assert list(rec["block_widths"]) == names
    assert opts.block_widths == [w for n in names for w in rec["block_widths"][n]]
    # the snapshot is exactly the surgery of the parent's best snapshot
    parent = torch.load(old / "snapshots" / "best.pt", weights_only=True)
    plan = surgery.plan(parent["model"], 2, 2, 1, "bn", 0.5, surgery.groups_of(2))
    child = snapshot(new)
    expected = surgery.apply(parent["model"], plan)
    assert list(child["model"]) == list(expected)
    assert all(torch.equal(child["model"][k], expected[k]) for k in expected)
    # ... it loads into the network NEW's options build, and its shapes give them back
    model = build_model(opts, 16)
    model.load_state_dict(child["model"], strict=True)
    assert cost(opts, 16)["parameters"] == rec["parameters"][1]
    loaded = load_any_checkpoint(new / json.loads((new / "state.json").read_text())
                                 ["last_snapshot"])
    assert loaded.arch["block_widths"] == opts.block_widths and loaded.arch["mid"] is None
    torch.save(child["model"], new.parent / "bare.pt")  # a bare state dict: shapes alone
    assert load_any_checkpoint(new.parent / "bare.pt").arch["block_widths"] == opts.block_widths
    # the right-after-pruning validation is NEW's first valid.log row, at the branch epoch
    rows = read_tsv(new / "valid.log")
    assert [r["epoch"] for r in rows] == [lin["epoch"]]
    assert rows[0]["acc"] == pytest.approx(rec["valid_after"]["acc"], abs=1e-6)
    # the validation before pruning is the parent's own valid.log row of that epoch
    parent_row = next(r for r in read_tsv(old / "valid.log") if r["epoch"] == lin["epoch"])
    assert rec["valid_before"]["loss"] == pytest.approx(parent_row["loss"], abs=1e-6)
    # show, eval, finalize work on it
    code, out = hgx("show", "b", "--json")
    info = json.loads(hgx.stdout)
    assert info["pruning"]["criterion"] == "bn"
    assert info["model"]["parameters"] == rec["parameters"][1]
    code, out = hgx("show", "b")
    assert code == 0 and "pruned from a" in out and "parameters" in out and "FLOPs" in out
    assert hgx("eval", "b", "--json")[0] == 0
    assert json.loads(hgx.stdout)["produced_by"]["snapshot"].endswith("best.pt")
    code, out = hgx("finalize", "b")
    assert code == 0 and (new / "final_preds.h5").is_file(), out
    # the architecture is fixed; the rest can change: fine-tune 2 epochs
    code, out = hgx("continue", "b", "--block-widths", *map(str, [4] * len(opts.block_widths)))
    assert code == 2 and "--block-widths cannot change on continue" in out
    code, out = hgx("continue", "b", "--epochs", str(lin["epoch"] + 2), "--lr", "1e-4")
    assert code == 0, out
    assert "does not fit" not in out  # the optimizer state was cut with the weights
    assert [r["epoch"] for r in read_tsv(new / "valid.log")] == \
        [lin["epoch"], lin["epoch"] + 1, lin["epoch"] + 2]
    assert [r["epoch"] for r in read_tsv(new / "train.log")] == \
        [lin["epoch"] + 1, lin["epoch"] + 2]
    assert tree_hashes(old) == before
    # --load-model of the pruned snapshot: a new experiment of that architecture
    snap = new / json.loads((new / "state.json").read_text())["last_snapshot"]
    code, out = hgx("new", "c", *TINY, "--epochs", "1", "--load-model", str(snap))
    assert code == 0, out
    assert hopts.Options(**yaml.safe_load((hgx.root / "c" / "options.yaml").read_text())) \
        .block_widths == opts.block_widths


def test_optimizer_state_is_cut_like_the_weights():
    net = trained_like(2)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3)
    net.train()
    net(torch.randn(2, 3, 64, 64)).square().mean().backward()
    opt.step()
    sd = net.state_dict()
    plan = surgery.plan(sd, 2, 2, 1, "l1", 0.5, surgery.groups_of(2))
    names = [n for n, _ in net.named_parameters()]
    cut = surgery.apply_optimizer(opt.state_dict(), names, plan)
    pruned = StackedHourglass(**ARCH, block_widths=plan.after)
    pruned.load_state_dict(surgery.apply(sd, plan))
    new_opt = torch.optim.RMSprop(pruned.parameters(), lr=1e-3)
    new_opt.load_state_dict(cut)
    full = opt.state_dict()["state"]
    for i, (name, p) in enumerate(pruned.named_parameters()):
        avg = new_opt.state_dict()["state"][i]["square_avg"]
        assert avg.shape == p.shape
        # the kept channels keep their running average (the square of their gradient)
        sliced = surgery.apply({name: full[i]["square_avg"]}, plan)[name]
        assert torch.equal(avg, sliced)
    pruned(torch.randn(2, 3, 64, 64)).square().mean().backward()
    new_opt.step()  # shapes fit: it steps


def test_kill_9_during_the_fine_tune_then_continue_is_bit_identical(hgx):
    from test_crash import _cli

    root = hgx.root
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    for name in ("clean", "killed"):
        assert hgx("prune", "a", name, "--amount", "0.5")[0] == 0
    fine_tune = ["--epochs", "4", "--train-iters", "40", "--valid-iters", "2",
                 "--checkpoint-minutes", "0.0005", "--snapshot", "1", "--threads", "1"]
    p = _cli(root, "continue", "clean", *fine_tune)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    rng = np.random.default_rng(16)
    kills = 0
    for delay in rng.uniform(1.5, 3.5, size=4):
        proc = _cli(root, "continue", "killed", *fine_tune)
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()  # SIGKILL: no handler, no cleanup
            kills += 1
        proc.communicate(timeout=60)
    proc = _cli(root, "continue", "killed", *fine_tune)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert kills >= 2, "the fine-tune finished before it could be killed: lengthen it"
    a = snapshot(root / "clean", "snapshots/epoch-0004.pt")
    b = snapshot(root / "killed", "snapshots/epoch-0004.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sq_a = [s["square_avg"] for s in a["optimizer"]["state"].values()]
    sq_b = [s["square_avg"] for s in b["optimizer"]["state"].values()]
    assert all(torch.equal(x, y) for x, y in zip(sq_a, sq_b))
    for log in ("train.log", "valid.log"):
        keep = ("epoch", "loss", "acc")
        rows = [[{k: r[k] for k in keep} for r in read_tsv(root / n / log)]
                for n in ("clean", "killed")]
        assert rows[0] == rows[1]
    # the pruned row at the branch epoch survived every resume
    assert [r["epoch"] for r in read_tsv(root / "killed" / "valid.log")] == [1, 2, 3, 4]


def test_scan_prints_only_json_and_writes_nothing_into_the_experiment(hgx, tmp_path):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    before = tree_hashes(hgx.root)
    code, out = hgx("prune", "a", "--scan", "--amounts", "0", "0.5", "--json")
    assert code == 0, out
    result = json.loads(hgx.stdout)
    assert tree_hashes(hgx.root) == before
    assert list(result["groups"]) == ["stem", "1", "2", "heads"]
    base = result["baseline"]
    for group, rows in result["groups"].items():
        assert [r["amount"] for r in rows] == [0, 0.5]
        assert rows[0]["loss"] == base["loss"] and rows[0]["acc"] == base["acc"]  # amount 0
        assert rows[1]["parameters"] < base["parameters"]
        c0, c1 = rows[1]["group_inner_channels"]
        assert 0 < c1 < c0
    assert (tmp_path / "a-prune-scan.png").is_file()
    assert result["figure"] == "a-prune-scan.png"
    code, out = hgx("prune", "a", "--scan", "--amounts", "0.5", "--levels", "stem", "2",
                    "--out", "s.png")
    assert code == 0, out
    assert "level 2" in out and "stem" in out and "level 1" not in out
    assert (tmp_path / "s.png").is_file()


def test_compare_draws_the_drop_at_the_branch_point(hgx):
    from hgx.compare import curves, load_runs

    assert hgx("new", "a", *TINY, "--epochs", "2")[0] == 0
    assert hgx("prune", "a", "b", "--amount", "0.5")[0] == 0
    assert hgx("continue", "b", "--epochs", "3")[0] == 0
    assert hgx("branch", "a", "c", "--epochs", "3")[0] == 0
    runs = load_runs(["a", "b", "c"], hgx.root)
    drawn = curves(runs, "valid_loss")
    a_valid = {r["epoch"]: r["loss"] for r in read_tsv(hgx.root / "a" / "valid.log")}
    b_valid = {r["epoch"]: r["loss"] for r in read_tsv(hgx.root / "b" / "valid.log")}
    b = drawn["b"]
    assert b.fork == (2, pytest.approx(a_valid[2], rel=1e-6))  # before pruning
    assert b.pruned == (2, pytest.approx(b_valid[2], rel=1e-6))  # right after
    assert list(b.x) == [2, 2, 3]  # then the fine-tuning
    assert drawn["c"].pruned is None and list(drawn["c"].x) == [2, 3]  # a plain branch
    assert curves(runs, "train_loss")["b"].pruned is None
    code, out = hgx("compare", "a", "b", "c", "--out", "cmp.png")
    assert code == 0, out


def test_a_pruned_branch_fine_tunes_on_two_processes(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    assert hgx("prune", "a", "b", "--amount", "0.5")[0] == 0
    code, out = hgx("continue", "b", "--epochs", "2", "--nproc", "2", "--batch-size", "2")
    assert code == 0, out
    state = json.loads((hgx.root / "b" / "state.json").read_text())
    assert state["processes"] == 2 and state["finished"]
    widths = hopts.Options(**yaml.safe_load((hgx.root / "b" / "options.yaml").read_text())) \
        .block_widths
    assert load_any_checkpoint(hgx.root / "b" / state["last_snapshot"]).arch["block_widths"] \
        == widths


def test_pruning_half_then_fine_tuning_two_epochs_recovers_most_of_the_accuracy(learned, hgx):
    """The issue's figure on the small model that has learned something (conftest.LEARNED):
    half the inner channels removed costs accuracy; two epochs of fine-tuning win most of it
    back (the README states the demo's figures)."""
    code, out = hgx("prune", "learned", "p", "--amount", "0.5")
    assert code == 0, out
    rec = yaml.safe_load((hgx.root / "p" / "experiment.yaml").read_text())["parent"]
    before, after = rec["pruning"]["valid_before"]["acc"], rec["pruning"]["valid_after"]["acc"]
    assert after < 0.9 * before  # pruning hurt
    code, out = hgx("continue", "p", "--epochs", str(rec["epoch"] + 2))
    assert code == 0, out
    tuned = read_tsv(hgx.root / "p" / "valid.log")[-1]["acc"]
    assert tuned > after and tuned >= 0.8 * before, (before, after, tuned)

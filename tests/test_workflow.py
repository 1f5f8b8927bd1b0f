"""The new -> continue (--lr) -> branch flow on a tiny model, as a user would check it."""
from __future__ import annotations

import json
import math

import torch
import yaml

from conftest import TINY, tree_hashes
from hgx.files import read_tsv


def epochs_of(path):
    return [int(r["epoch"]) for r in read_tsv(path)]


def test_new_writes_a_complete_experiment(hgx):
    code, out = hgx("new", "a", *TINY, "--epochs", "2")
    assert code == 0, out
    d = hgx.root / "a"
    opts = yaml.safe_load((d / "options.yaml").read_text())
    assert opts["epochs"] == 2 and opts["lr"] == 2.5e-4 and opts["stacks"] == 2
    assert opts["optimizer"] == "rmsprop" and opts["alpha"] == 0.99
    history = [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
    assert history[0]["command"] == "new" and history[0]["hgx_version"]
    assert history[0]["overrides"]["epochs"] == 2
    assert (d / "train.log").read_text().splitlines()[0].split("\t")[:5] == \
        ["epoch", "iters", "loss", "acc", "lr"]
    assert epochs_of(d / "train.log") == [1, 2] and epochs_of(d / "valid.log") == [1, 2]
    code, out = hgx("show", "a", "--json")
    info = json.loads(out)
    snap = torch.load(info["last_snapshot"], map_location="cpu", weights_only=False)
    assert "model" in snap and snap["epoch"] == 2
    best = torch.load(info["best_snapshot"], map_location="cpu", weights_only=False)
    assert set(best["model"]) == set(snap["model"])
    assert info["status"] == "finished" and info["epochs_done"] == 2


def test_new_without_name_generates_one(hgx):
    code, out = hgx("new", *TINY, "--epochs", "1")
    assert code == 0, out
    names = [p.name for p in hgx.root.iterdir()]
    assert len(names) == 1 and names[0] in out


def test_existing_name_is_refused_and_untouched(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    before = tree_hashes(hgx.root / "a")
    code, out = hgx("new", "a", *TINY, "--epochs", "1", "--lr", "1")
    assert code != 0
    assert "already exists" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1
    assert tree_hashes(hgx.root / "a") == before


def test_continue_with_lr_keeps_other_options(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "2", "--momentum", "0.5")[0] == 0
    code, out = hgx("continue", "a")
    assert code == 0 and "nothing to do" in out
    code, out = hgx("continue", "a", "--epochs", "3", "--lr", "1e-5")
    assert code == 0, out
    d = hgx.root / "a"
    opts = yaml.safe_load((d / "options.yaml").read_text())
    assert opts["lr"] == 1e-5 and opts["epochs"] == 3
    assert opts["momentum"] == 0.5 and opts["stacks"] == 2  # kept, not reset to defaults
    rows = read_tsv(d / "train.log")
    assert [r["lr"] for r in rows] == [2.5e-4, 2.5e-4, 1e-5]
    snap = torch.load(d / "snapshots" / "epoch-0003.pt", weights_only=False)
    assert snap["optimizer"]["param_groups"][0]["lr"] == 1e-5  # on the restored optimizer
    assert snap["optimizer"]["state"]  # RMSprop's running averages were restored, not reset
    history = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
    assert [h["command"] for h in history] == ["new", "continue"]
    assert history[1]["overrides"] == {"epochs": 3, "lr": 1e-5}


def test_continue_after_stop_has_each_epoch_once(hgx):
    # --max-iters stops inside epoch 2 (3 iterations per epoch); continue finishes it.
    code, out = hgx("new", "a", *TINY, "--epochs", "3", "--max-iters", "5")
    assert code == 0 and "max-iters" in out
    d = hgx.root / "a"
    assert epochs_of(d / "train.log") == [1]
    assert json.loads((d / "state.json").read_text())["iteration"] == 2
    code, out = hgx("continue", "a", "--max-iters", "0")
    assert code == 0, out
    assert epochs_of(d / "train.log") == [1, 2, 3]
    assert epochs_of(d / "valid.log") == [1, 2, 3]
    # epoch 2 ran in two parts; its row counts all 3 iterations, its loss averages all three
    assert read_tsv(d / "train.log")[1]["iters"] == 3


def test_continue_drops_log_rows_past_the_snapshot(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "2")[0] == 0
    d = hgx.root / "a"
    # A crash after logging epoch 3 but before its snapshot: the row is stale.
    with open(d / "train.log", "a") as fh:
        fh.write("3\t3\t9.9\t0\t0.00025\t1\t1\n")
    code, out = hgx("continue", "a", "--epochs", "3")
    assert code == 0, out
    rows = read_tsv(d / "train.log")
    assert epochs_of(d / "train.log") == [1, 2, 3] and rows[-1]["loss"] != 9.9


def test_branch_leaves_parent_unchanged(hgx):
    assert hgx("new", "old", *TINY, "--epochs", "2", "--snapshot", "1")[0] == 0
    before = tree_hashes(hgx.root / "old")
    code, out = hgx("branch", "old", "new-01", "--lr", "1e-5", "--epochs", "3")
    assert code == 0, out
    code, out = hgx("branch", "old", "new-02", "--from-epoch", "1", "--lr", "5e-5")
    assert code == 0, out
    assert tree_hashes(hgx.root / "old") == before
    meta = yaml.safe_load((hgx.root / "new-01" / "experiment.yaml").read_text())
    assert meta["parent"]["name"] == "old" and meta["parent"]["epoch"] == 2
    assert epochs_of(hgx.root / "new-01" / "train.log") == [3]
    assert epochs_of(hgx.root / "new-02" / "train.log") == [2]
    opts = yaml.safe_load((hgx.root / "new-02" / "options.yaml").read_text())
    assert opts["lr"] == 5e-5 and opts["epochs"] == 2 and opts["stacks"] == 2
    code, out = hgx("list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["new-01"]["parent"] == "old" and rows["new-01"]["epochs_done"] == 3
    assert rows["old"]["status"] == "finished"


def test_branch_errors_touch_nothing(hgx):
    assert hgx("new", "old", *TINY, "--epochs", "2")[0] == 0
    before = tree_hashes(hgx.root)
    code, out = hgx("branch", "old", "x", "--from-epoch", "1")  # not kept (--snapshot 10)
    assert code == 1 and "no snapshot of epoch 1" in out
    code, out = hgx("branch", "old", "old")
    assert code == 1 and "already exists" in out
    code, out = hgx("branch", "nope", "x")
    assert code == 1 and "no experiment 'nope'" in out
    code, out = hgx("branch", "old", "x", "--stacks", "3")
    assert code == 2 and "--stacks cannot change" in out
    assert tree_hashes(hgx.root) == before


def test_diff_prints_only_differing_options(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    assert hgx("branch", "a", "b", "--lr", "1e-5", "--epochs", "1")[0] == 0
    code, out = hgx("diff", "a", "b", "--json")
    assert json.loads(out) == {"lr": {"a": 2.5e-4, "b": 1e-5}}


def test_ctrl_c_writes_a_snapshot_and_continue_finishes(hgx, tmp_path):
    """SIGINT: finish the step, snapshot, exit 130 with how to continue; continue completes."""
    import os
    import signal
    import subprocess
    import sys

    args = list(TINY)
    env = {**os.environ, "HGX_EXP_DIR": str(hgx.root)}
    # first make sure the dataset exists, so the run is training when the signal arrives
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    proc = subprocess.Popen([sys.executable, "-m", "hgx", "new", "run", *args, "--epochs", "2",
                             "--train-iters", "100000"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    state = hgx.root / "run" / "train.log"
    from test_crash import wait_for_training

    before = wait_for_training(proc, "run")  # however loaded the machine is
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    out = before + out
    assert proc.returncode == 130, out
    assert "hgx continue run" in out and "Traceback" not in out
    snap = json.loads((hgx.root / "run" / "state.json").read_text())
    assert snap["iteration"] > 0 and snap["last_snapshot"]
    assert not (hgx.root / "run" / "lock").exists()
    assert epochs_of(state) == []
    # epochs as long as what was done: epoch 1 is complete, epoch 2 is trained in full
    code, out = hgx("continue", "run", "--train-iters", str(snap["iteration"]))
    assert code == 0, out
    rows = read_tsv(state)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert rows[0]["iters"] == snap["iteration"] and rows[0]["loss"] > 0


def test_untrained_network_scores_near_zero(hgx):
    """The synthetic set is a real learning problem: a random network has ~0 PCKh."""
    from hgx import options as hopts
    from hgx.data import open_split
    from hgx.engine.device import setup_runtime
    from hgx.engine.predict import predict
    from hgx.eval import GroundTruth, pckh
    from hgx.models import build_model

    opts = hopts.resolve(None, None, {"stacks": 2, "features": 16, "depth": 2, "input_res": 64,
                                      "output_res": 16, "synth_size": "160x120",
                                      "synth_train": 24, "synth_valid": 8, "synth_test": 4,
                                      "threads": 1})
    ds = open_split(opts, "valid")
    runtime = setup_runtime(opts)
    model = runtime.prepare(build_model(opts, 16))
    out = predict(model, ds, runtime, batch=4, interactive=False)
    a = ds.annot
    result = pckh(out.preds, GroundTruth(a.part, ~a.present, a.normalize, "mpii"))
    assert result["Mean"] < 10


def test_generation_then_loader_workers_in_one_process_does_not_hang(tmp_path):
    """Regression: generating the synthetic set in-process started cv2's thread pool, and the
    forked loader worker then hung for ever in cv2.setNumThreads (the demo's path)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HGX_EXP_DIR": str(tmp_path / "exp"),
           "HGX_CACHE_DIR": str(tmp_path / "cache")}
    args = ["--stacks", "1", "--features", "16", "--depth", "2", "--input-res", "64",
            "--output-res", "16", "--train-iters", "2", "--valid-iters", "1", "--batch-size", "2",
            "--epochs", "1", "--workers", "1", "--threads", "1", "--synth-size", "480x360",
            "--synth-train", "200", "--synth-valid", "20", "--synth-test", "20"]
    proc = subprocess.run([sys.executable, "-m", "hgx", "new", "g", *args], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_gpu_recipe_bf16_autocast_runs_end_to_end_and_is_recorded(hgx, monkeypatch):
    """The CUDA recipe (bf16 autocast, channels_last, loss in fp32), forced onto the CPU, which
    autocasts bf16 too: a run trains, validates, snapshots, and records its precision."""
    import torch

    from hgx.engine import device as hdev
    from hgx.engine import train

    seen = []

    def bf16_runtime(opts, local_rank=0):
        runtime = hdev.Runtime(torch.device("cpu"), "bf16", True)
        seen.append(runtime)
        return runtime

    real_loss = train.heatmap_loss

    def checked_loss(outputs, target):
        loss = real_loss(outputs, target)
        if torch.is_grad_enabled():
            assert outputs[-1].dtype == torch.bfloat16 and loss.dtype == torch.float32
        return loss

    monkeypatch.setattr(train, "setup_runtime", bf16_runtime)
    monkeypatch.setattr(train, "heatmap_loss", checked_loss)
    code, out = hgx("new", "b", *TINY, "--epochs", "2")
    assert code == 0, out
    assert seen, "the trainer did not take its runtime from setup_runtime"
    state = json.loads((hgx.root / "b" / "state.json").read_text())
    assert state["precision"] == "bf16" and state["epochs_done"] == 2
    rows = read_tsv(hgx.root / "b" / "valid.log")
    assert all(math.isfinite(r["loss"]) for r in rows) and len(rows) == 2


def test_the_number_of_loader_workers_never_changes_the_run(hgx):
    """Samples are keyed by (row, epoch, position): 0 or 2 workers give the same weights and
    logs, so --workers auto (its number differs between machines) is safe."""
    runs = {}
    for w in ("0", "2"):
        assert hgx("new", f"w{w}", *TINY, "--epochs", "2", "--workers", w)[0] == 0
        d = hgx.root / f"w{w}"
        snap = torch.load(d / "snapshots" / "epoch-0002.pt", weights_only=True)
        logs = [[{k: r[k] for k in ("loss", "acc")} for r in read_tsv(d / f"{s}.log")]
                for s in ("train", "valid")]
        runs[w] = snap["model"], logs
    (m0, logs0), (m2, logs2) = runs["0"], runs["2"]
    assert logs0 == logs2
    assert all(torch.equal(m0[k], m2[k]) for k in m0)

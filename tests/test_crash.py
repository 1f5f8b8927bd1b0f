"""Never lose a run: kill -9 at random moments, continue, and get the uninterrupted result."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY, dataset_of, tree_hashes
from hgx.files import read_tsv

# Long enough epochs that kills land in training, validation and snapshot writing; a
# mid-epoch snapshot every ~30 ms so that resumes happen inside epochs too.
LONG = [*TINY, "--train-iters", "40", "--valid-iters", "2", "--epochs", "3",
        "--checkpoint-minutes", "0.0005", "--snapshot", "1"]


def _cli(root, *args, **kw):
    env = {**os.environ, "HGX_EXP_DIR": str(root)}
    return subprocess.Popen([sys.executable, "-m", "hgx", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def wait_for_training(proc, name: str, timeout: float = 120.0) -> str:
    """Read the run's output until its first training step is reported (the progress line
    "epoch 1/E 1/N"), however slow the machine: a signal sent then reaches the training loop,
    not the setup. Returns what was read."""
    seen = []
    deadline = time.time() + timeout
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("epoch 1/") and " 1/" in line.split("  ")[0][8:]:
            return "".join(seen)
        assert time.time() < deadline, "".join(seen)
    raise AssertionError("the run ended before training:\n" + "".join(seen))


def _final(root, name):
    d = root / name
    snap = torch.load(d / "snapshots" / "epoch-0003.pt", map_location="cpu", weights_only=False)
    train = [{k: r[k] for k in ("epoch", "iters", "loss", "acc", "lr")}
             for r in read_tsv(d / "train.log")]
    valid = [{k: r[k] for k in ("epoch", "loss", "acc", "pckh")} for r in read_tsv(d / "valid.log")]
    return snap["model"], snap["optimizer"], train, valid


@pytest.mark.parametrize("workers,precision,extra", [
    ("0", "fp32", ()), ("2", "bf16", ()), ("0", "fp32", ("--adversarial",))],
    ids=["fp32", "bf16-workers", "adversarial"])
def test_kill_9_then_continue_is_bit_identical(hgx, workers, precision, extra):
    """bf16 autocast too (emulated where the CPU lacks it, so the test means the same
    everywhere), and adversarial training (the discriminator, its Adam state and k_t are in
    the snapshots): the resumed run's weights, optimizer state and logs equal the clean run's."""
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0  # the dataset exists first
    root = hgx.root
    LONG_ = [*LONG, *extra]
    p = _cli(root, "new", "clean", *LONG_, "--workers", workers, "--precision", precision)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out

    rng = np.random.default_rng(int(workers))
    kills, started = 0, False
    for delay in rng.uniform(1.5, 3.5, size=4):
        args = ["continue", "killed"] if started else ["new", "killed", *LONG_, "--workers",
                                                        workers, "--precision", precision]
        proc = _cli(root, *args)
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()  # SIGKILL: no handler, no cleanup
            kills += 1
        proc.communicate(timeout=60)
        started = (root / "killed" / "options.yaml").exists()
    proc = _cli(root, *(["continue", "killed"] if started else
                        ["new", "killed", *LONG_, "--workers", workers, "--precision",
                         precision]))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert kills >= 2, "the run finished before it could be killed: lengthen LONG"

    model_a, optim_a, train_a, valid_a = _final(root, "clean")
    model_b, optim_b, train_b, valid_b = _final(root, "killed")
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert train_a == train_b and valid_a == valid_b  # each epoch exactly once, same values
    sq_a = [s["square_avg"] for s in optim_a["state"].values()]
    sq_b = [s["square_avg"] for s in optim_b["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(sq_a, sq_b))
    leftovers = list((root / "killed").rglob(".*tmp-*"))
    assert not leftovers, leftovers
    assert json.loads((root / "killed" / "state.json").read_text())["precision"] == precision
    if extra:  # the discriminator resumed bit for bit too, k_t with it
        da, db = (torch.load(root / n / "snapshots" / "epoch-0003.pt", weights_only=True)
                  ["adversarial"] for n in ("clean", "killed"))
        assert all(torch.equal(da["model"][k], db["model"][k]) for k in da["model"])
        assert da["k_t"] == db["k_t"] and da["steps"] == db["steps"]
        assert "k_t" in train_a[0] or "d_loss" in read_tsv(root / "killed" / "train.log")[0]


def test_sigterm_snapshots_and_exits_143(hgx):
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    proc = _cli(hgx.root, "new", "t", *TINY, "--epochs", "2", "--train-iters", "100000")
    before = wait_for_training(proc, "t")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    out = before + out
    assert proc.returncode == 143, out
    assert "hgx continue t" in out
    state = json.loads((hgx.root / "t" / "state.json").read_text())
    assert state["iteration"] > 0 and (hgx.root / "t" / state["last_snapshot"]).is_file()


def test_second_writer_is_refused_and_stale_lock_taken_over(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    lock = hgx.root / "a" / "lock"
    # a live holder: this very process (pid alive, same host)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": "now", "heartbeat": time.time()}))
    code, out = hgx("continue", "a", "--epochs", "2")
    assert code == 1 and f"in use by pid {os.getpid()}" in out
    code, out = hgx("list", "--json")
    assert json.loads(out)[0]["status"] == "running"
    # a dead holder: a pid that no longer exists
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                "started": "then", "heartbeat": time.time()}))
    code, out = hgx("continue", "a", "--epochs", "2")
    assert code == 0 and "took over a stale lock" in out
    assert not lock.exists()
    # another host whose heartbeat stopped long ago
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "heartbeat": time.time() - 3600}))
    assert hgx("continue", "a", "--epochs", "3")[0] == 0


def test_corrupt_latest_snapshot_falls_back_to_previous(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "2", "--snapshot", "1")[0] == 0
    latest = hgx.root / "a" / "snapshots" / "epoch-0002.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # truncated, as by a dying disk
    code, out = hgx("continue", "a", "--epochs", "3")
    assert code == 0, out
    assert "epoch-0002.pt is truncated" in out and "resuming from epoch-0001.pt" in out
    assert [int(r["epoch"]) for r in read_tsv(hgx.root / "a" / "train.log")] == [1, 2, 3]


class _RunsCode:
    def __reduce__(self):  # unpickling this would create a file
        return (open, (str(_RunsCode.marker), "w"))


def test_snapshots_load_as_weights_only_and_code_never_runs(hgx, tmp_path):
    """Our own snapshots hold tensors and plain numbers (weights_only loads them); a .pt file
    that would run code when unpickled is refused and falls back to the previous snapshot."""
    assert hgx("new", "a", *TINY, "--epochs", "2", "--snapshot", "1")[0] == 0
    snaps = hgx.root / "a" / "snapshots"
    data = torch.load(snaps / "epoch-0002.pt", weights_only=True)
    assert data["rng"]["numpy"]["keys"].dtype == torch.int64
    _RunsCode.marker = tmp_path / "pwned"
    torch.save({"format": "hgx-snapshot", "model": {}, "x": _RunsCode()}, snaps / "epoch-0002.pt")
    code, out = hgx("continue", "a", "--epochs", "3")
    assert code == 0, out
    assert "besides tensors and numbers" in out and "resuming from epoch-0001.pt" in out
    assert not _RunsCode.marker.exists()


def test_full_disk_while_snapshotting_keeps_the_old_one(tmp_path, monkeypatch):
    from hgx import checkpoint
    from hgx.errors import HgxError

    path = tmp_path / "epoch-0001.pt"
    checkpoint.save(path, {"model": {"w": torch.ones(3)}})
    before = path.read_bytes()

    def no_space(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", no_space)
    with pytest.raises(HgxError, match="No space left on device.*free some disk"):
        checkpoint.save(path, {"model": {"w": torch.zeros(3)}})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001.pt"]  # no half-written file


def test_nan_loss_stops_and_keeps_last_good_snapshot(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    before = json.loads((hgx.root / "a" / "state.json").read_text())
    code, out = hgx("continue", "a", "--epochs", "4", "--lr", "1e30", "--train-iters", "20")
    assert code == 1
    assert "not finite" in out or "loss became" in out
    assert "last good" in out
    state = json.loads((hgx.root / "a" / "state.json").read_text())
    snap = torch.load(hgx.root / "a" / state["last_snapshot"], weights_only=False)
    assert all(torch.isfinite(v).all() for v in snap["model"].values() if v.is_floating_point())
    assert state["epochs_done"] >= before["epochs_done"]
    # state.json agrees with options.yaml: a NaN before the continued run's first snapshot
    # leaves the experiment as it was (options included); a later one is not "finished"
    epochs = yaml.safe_load((hgx.root / "a" / "options.yaml").read_text())["epochs"]
    assert state["finished"] == (state["epochs_done"] >= epochs and not state["iteration"])
    assert state["epochs_done"] < 4


def test_nan_in_the_first_epoch_of_new_keeps_nothing(hgx):
    """No snapshot was ever written: say so (no "last good snapshot"), and free the name."""
    code, out = hgx("new", "n", *TINY, "--epochs", "2", "--lr", "1e30", "--train-iters", "20")
    assert code == 1 and "loss became" in out
    assert "last good" not in out and "no snapshot had been written" in out
    assert not (hgx.root / "n").exists()


def _corrupt_options(d):
    (d / "options.yaml").write_text((d / "options.yaml").read_text()
                                    .replace("batch_size: 4", "batch_size: four"))


def _missing_key(d):
    import h5py

    ann = d.parent.parent / "data" / "annot"
    ann.mkdir(parents=True)
    with h5py.File(ann / "train.h5", "w") as f:
        f["part"] = np.zeros((2, 16, 2))


def _a_file(d):
    (d.parent.parent / "a-file").write_text("not a directory")


def _no_images(d):
    """A complete annotation set (the synthetic one's) without its images/ folder."""
    import shutil

    from hgx.data.synth import synth_cache_dir

    shutil.copytree(synth_cache_dir(0, (160, 120), 24, 8, 4) / "annot",
                    d.parent.parent / "data" / "annot")


def _plain_pickle(d):
    import pickle

    (d.parent.parent / "plain.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}, 4))


def _damaged_meta(d):
    (d / "experiment.yaml").write_text("name: [unclosed\n")


def _junk_snapshots(d):
    for p in (d / "snapshots").glob("*.pt"):
        p.write_bytes(b"junk")


# (command, setup, exit code, fragment of the one-line message)
CASES = [
    (["continue", "ghost"], None, 1, "no experiment 'ghost'"),
    (["new", "a"], None, 1, "already exists"),
    (["new", "x/y"], None, 2, "invalid experiment name"),
    (["new", ".."], None, 2, "invalid experiment name"),
    (["continue", "a", "--lr", "fast"], None, 2, "--lr: expected a number"),
    (["continue", "a", "--batch-size", "0"], None, 2, "below the minimum"),
    (["continue", "a", "--warp", "9"], None, 2, "No such option: --warp"),
    (["new", "b", "--preset", "nope"], None, 2, "preset 'nope' not found"),
    (["continue", "a"], _corrupt_options, 1, "'batch_size' in"),
    (["new", "b", "--dataset", "mpii", "--data-dir", "missing-dir"], None, 1,
     "data directory missing-dir not found"),
    (["new", "b", "--dataset", "mpii", "--data-dir", "data"], _missing_key, 1, "lacks center"),
    (["new", "b", "--load-model", "nowhere.pt"], None, 1, "file not found"),
    (["new", "b", *TINY, "--device", "cuda"], None, 1, "no CUDA device"),
    (["new", "b", *TINY, "--input-res", "100"], None, 2, "must be a multiple of 16"),
    (["new", "b", *TINY, "--input-res", "128"], None, 2, "--output-res 16: the network"),
    (["new", "b", *TINY, "--exp-dir", "a-file"], _a_file, 2, "is a file, not a directory"),
    (["new", "b", *TINY, "--dataset", "mpii", "--data-dir", "data"], _no_images, 1,
     "image folder"),
    (["new", "b", *TINY, "--load-model", "plain.pkl"], _plain_pickle, 1,
     "cannot be read as a checkpoint"),
    (["continue", "a", "--epochs", "2"], _damaged_meta, 1, "a is damaged"),
    (["continue", "a", "--epochs", "2"], _junk_snapshots, 1, "no snapshot can be loaded"),
    (["branch", "a", "b", "--input-res", "128"], None, 2, "--output-res 16"),
    (["new", "b", *TINY, "--block-widths", "4", "4"], None, 2, "--block-widths has 2 values"),
    (["new", "b", *TINY, "--block-widths", "0"], None, 2, "--block-widths: 0 is below"),
    (["prune", "ghost", "b", "--amount", "0.5"], None, 1, "no experiment 'ghost'"),
    (["prune", "a", "b", "--amount", "1.5"], None, 2, "--amount 1.5: expected the fraction"),
    (["prune", "a", "b", "--amount", "half"], None, 2, "--amount"),
    (["prune", "a", "b"], None, 2, "--amount: give the fraction"),
    (["prune", "a", "a", "--amount", "0.5"], None, 1, "already exists"),
    (["prune", "a", "b", "--amount", "0.5", "--criterion", "l2"], None, 2, "--criterion l2"),
    (["prune", "a", "b", "--amount", "0.5", "--levels", "7"], None, 2, "--levels 7"),
    (["prune", "a", "b", "--amount", "0.5", "--from", "9"], None, 1, "no snapshot of epoch 9"),
    (["prune", "a", "b", "--amount", "0.5"], _junk_snapshots, 1, "no snapshot can be loaded"),
    (["prune", "a", "b", "--amount", "0.5"], _damaged_meta, 1, "a is damaged"),
    (["prune", "a", "--scan", "--out", "exp/a/scan.png"], None, 2, "inside the experiment"),
    (["prune", "a", "--scan", "--amounts", "2"], None, 2, "--amounts: expected fractions"),
    (["new", "b", *TINY, "--arch", "hg-xx"], None, 2, "--arch: 'hg-xx' is not one of"),
    (["new", "b", *TINY, "--arch", "hg-prm", "--cardinality", "0"], None, 2,
     "--cardinality: 0 is below the minimum"),
    (["new", "b", *TINY, "--arch", "hg-prm", "--cardinality", "four"], None, 2,
     "--cardinality: expected an integer"),
    (["new", "b", *TINY, "--arch", "hg-prm", "--base-width", "17"], None, 2,
     "--base-width 17: a PRM of 16 output channels"),
    (["new", "b", *TINY, "--arch", "hg-atten", "--stem", "bearpaw"], None, 2,
     "--stem bearpaw: --arch hg-atten"),
    (["continue", "a", "--arch", "hg-prm"], None, 2, "--arch cannot change on continue"),
    (["branch", "a", "b", "--cardinality", "4"], None, 2, "--cardinality cannot change on"),
]


@pytest.mark.parametrize("args,setup,code,fragment", CASES,
                         ids=[" ".join(c[0])[:40] for c in CASES])
def test_bad_input_never_loses_data(hgx, args, setup, code, fragment):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    if setup:
        setup(hgx.root / "a")
    before = tree_hashes(hgx.root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a library warning leaking to the user fails
        got, out = hgx(*args)
    assert got == code, out
    assert fragment in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    assert "Warning" not in out
    assert tree_hashes(hgx.root) == before


def test_corrupt_image_is_named_with_its_row(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    from hgx.data.synth import synth_cache_dir

    data = synth_cache_dir(0, (160, 120), 24, 8, 4)
    copy = hgx.root.parent / "data"
    import shutil

    shutil.copytree(data, copy)
    victim = sorted((copy / "images").glob("*.jpg"))[0]
    victim.write_bytes(b"not a jpeg")
    code, out = hgx("new", "b", *TINY, "--epochs", "1", "--data-dir", str(copy),
                    "--train-iters", "20")
    assert code == 1
    assert victim.name in out and "row" in out and "Traceback" not in out
    assert not (hgx.root / "b").exists()  # failed before its first snapshot: nothing kept


def test_list_shows_a_damaged_experiment_and_the_others(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    assert hgx("new", "b", *TINY, "--epochs", "1")[0] == 0
    (hgx.root / "a" / "experiment.yaml").write_text(": [\n")
    code, out = hgx("list", "--json")
    assert code == 0, out
    rows = {r["name"]: r for r in json.loads(hgx.stdout)}
    assert rows["a"]["status"] == "damaged" and "experiment.yaml" in rows["a"]["problem"]
    assert rows["b"]["status"] == "finished"
    code, out = hgx("list")
    assert code == 0 and "damaged" in out and "finished" in out


def test_load_model_that_does_not_fit(hgx):
    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    snap = hgx.root / "a" / "snapshots" / "best.pt"
    code, out = hgx("new", "b", *TINY, "--epochs", "1", "--load-model", str(snap),
                    "--features", "32")
    assert code == 1 and "does not fit this model" in out
    assert not (hgx.root / "b").exists()


def test_corrupt_image_after_a_good_one_is_still_reported(tmp_path):
    """Decoding reuses a buffer: a corrupt file must not come back as the previous image."""
    import cv2

    from hgx.errors import HgxError

    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "good.jpg"), np.full((120, 160, 3), 128, np.uint8))
    (tmp_path / "images" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = dataset_of(tmp_path, ["good.jpg", "bad.jpg"], (80.0, 60.0), 0.4, input_res=64,
                    output_res=16)
    ds[(0, 1, 0)]
    with pytest.raises(HgxError, match=r"bad.jpg \(a.h5 row 1\)"):
        ds[(1, 1, 1)]


def test_reading_the_numbers_every_few_steps_changes_nothing(hgx, monkeypatch):
    """On CUDA the host reads loss and accuracy every SYNC_EVERY steps instead of every step;
    here on CPU, forced to 3: the same logs and weights, and --max-iters still stops at its
    step exactly (5, between two reads) and resumes from there."""
    from hgx.engine import train

    run = [*TINY, "--train-iters", "7", "--epochs", "2"]
    assert hgx("new", "every1", *run)[0] == 0
    monkeypatch.setattr(train, "SYNC_EVERY", {"cpu": 3})
    assert hgx("new", "every3", *run)[0] == 0
    code, out = hgx("new", "stopped", *run, "--max-iters", "5")
    assert code == 0 and "iteration 5" in out
    assert hgx("continue", "stopped", "--max-iters", "0")[0] == 0

    def final(name):
        d = hgx.root / name
        snap = torch.load(d / "snapshots" / "epoch-0002.pt", weights_only=False)
        logs = [[{k: r[k] for k in ("epoch", "iters", "loss", "acc") if k in r} for r in
                 read_tsv(d / f"{split}.log")] for split in ("train", "valid")]
        return snap["model"], logs

    (m1, logs1), (m3, logs3), (ms, logss) = final("every1"), final("every3"), final("stopped")
    assert logs1 == logs3 == logss and logs1[0][0]["iters"] == 7
    assert all(torch.equal(m1[k], m3[k]) and torch.equal(m1[k], ms[k]) for k in m1)


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_setup_exits_cleanly_and_keeps_nothing(hgx, monkeypatch, signum, code):
    """A signal between creating the experiment and the first step: exit 143/130, the lock
    released, the half-made experiment removed so its name is free again."""
    from hgx.engine import train

    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    real_init = train.Trainer.__init__

    def init_then_signal(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        os.kill(os.getpid(), signum)  # arrives while the run is still setting up

    monkeypatch.setattr(train.Trainer, "__init__", init_then_signal)
    rc, out = hgx("new", "t", *TINY, "--epochs", "1")
    assert rc == code, out
    assert "interrupted while setting up" in out and "Traceback" not in out
    assert not (hgx.root / "t").exists()
    monkeypatch.setattr(train.Trainer, "__init__", real_init)
    assert hgx("new", "t", *TINY, "--epochs", "1")[0] == 0  # the name is free


def test_continue_interrupted_during_setup_changes_nothing(hgx, monkeypatch):
    from hgx.engine import train

    assert hgx("new", "a", *TINY, "--epochs", "1")[0] == 0
    before = tree_hashes(hgx.root / "a")
    real_init = train.Trainer.__init__

    def init_then_signal(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train.Trainer, "__init__", init_then_signal)
    rc, out = hgx("continue", "a", "--epochs", "2", "--lr", "1e-5")
    assert rc == 143, out
    assert tree_hashes(hgx.root / "a") == before  # options, history, logs, state restored

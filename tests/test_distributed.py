"""Scale-out with torchrun: a 2-process CPU (gloo) run is one experiment."""
from __future__ import annotations

import json

import torch

from conftest import TINY
from hgx.data.dataset import EpochSampler
from hgx.files import read_tsv


def test_ranks_split_each_global_batch_like_one_process_with_n_times_the_batch():
    one = EpochSampler(50, 4, 5, seed=3, shuffle=True)
    ranks = [EpochSampler(50, 2, 5, seed=3, shuffle=True, rank=r, world=2) for r in (0, 1)]
    for s in (one, *ranks):
        s.set_epoch(2)
    keys = [list(s) for s in ranks]
    merged = [k for i in range(5) for r in (0, 1) for k in keys[r][2 * i:2 * i + 2]]
    assert merged == list(one)
    # resuming at iteration 3 gives the tail of the same sequence on every rank
    for r, s in enumerate(ranks):
        s.set_epoch(2, 3)
        assert list(s) == keys[r][6:]


def test_two_process_gloo_run_is_one_experiment(hgx):
    code, out = hgx("new", "d", *TINY, "--epochs", "2", "--batch-size", "2", "--nproc", "2")
    assert code == 0, out
    d = hgx.root / "d"
    assert [int(r["epoch"]) for r in read_tsv(d / "train.log")] == [1, 2]
    assert [int(r["epoch"]) for r in read_tsv(d / "valid.log")] == [1, 2]
    state = json.loads((d / "state.json").read_text())
    assert state["processes"] == 2 and state["finished"]
    snap = torch.load(d / state["last_snapshot"], weights_only=False)
    assert not any(k.startswith("module.") for k in snap["model"])  # the bare network
    history = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
    assert [h["command"] for h in history] == ["new"]
    assert not (d / "lock").exists()
    # it continues, on one process or two
    code, out = hgx("continue", "d", "--epochs", "3")
    assert code == 0, out
    assert [int(r["epoch"]) for r in read_tsv(d / "train.log")] == [1, 2, 3]


def test_two_process_gloo_run_of_hg_prm(hgx):
    """PyraNet's fractional max-pools draw their regions on every rank from the run's own
    generator; rank 0's snapshot holds its state, and the run continues on one process."""
    prm = ["--arch", "hg-prm", "--base-width", "4", "--cardinality", "2"]
    code, out = hgx("new", "p", *TINY, *prm, "--epochs", "1", "--batch-size", "2", "--nproc", "2")
    assert code == 0, out
    d = hgx.root / "p"
    state = json.loads((d / "state.json").read_text())
    assert state["processes"] == 2 and state["finished"]
    snap = torch.load(d / state["last_snapshot"], weights_only=True)
    assert "stem.3.levels.0.weight" in snap["model"] and "cpu" in snap["rng"]["fmp"]
    code, out = hgx("continue", "p", "--epochs", "2")
    assert code == 0, out
    assert [int(r["epoch"]) for r in read_tsv(d / "train.log")] == [1, 2]


def test_two_process_gloo_adversarial_run_continues_on_one(hgx):
    """Hg-SAGAN's game under torchrun: one discriminator step per global step (not per rank),
    k_t agreed by the ranks, D's state in rank 0's snapshot, and a one-process continue."""
    code, out = hgx("new", "a", *TINY, "--adversarial", "--init-kt", "0.5", "--epochs", "1",
                    "--batch-size", "2", "--nproc", "2")
    assert code == 0, out
    d = hgx.root / "a"
    state = json.loads((d / "state.json").read_text())
    assert state["processes"] == 2 and state["finished"]
    snap = torch.load(d / state["last_snapshot"], weights_only=True)
    adv = snap["adversarial"]
    assert adv["steps"] == 3 and 0.0 <= adv["k_t"] <= 1.0  # --train-iters 3 global steps
    row, = read_tsv(d / "train.log")
    # the log holds the ranks' mean k_t, the snapshot rank 0's: equal only if the ranks agree
    assert adv["k_t"] != 0.5 and abs(row["k_t"] - adv["k_t"]) < 1e-6  # logged to 6 places
    assert row["d_loss"] == row["d_loss"]  # logged, not nan
    code, out = hgx("continue", "a", "--epochs", "2")
    assert code == 0, out
    snap2 = torch.load(d / "snapshots" / "epoch-0002.pt", weights_only=True)
    assert snap2["adversarial"]["steps"] == 2 * adv["steps"]


def test_sync_bn_on_cpu_is_refused_before_anything_is_written(hgx):
    code, out = hgx("new", "d", *TINY, "--nproc", "2", "--sync-bn", "--device", "cpu")
    assert code == 2 and "--sync-bn needs CUDA" in out
    assert not (hgx.root / "d").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_make_one_experiment(hgx):
    """Two "nodes" on this machine (torchrun --nnodes 2, one gloo process each): the same
    command on both, plus --node-rank 1 on the second. Node 0 writes; node 1 only joins."""
    import os
    import subprocess
    import sys

    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0  # the dataset exists first
    env = {**os.environ, "HGX_EXP_DIR": str(hgx.root)}
    cmd = [sys.executable, "-m", "hgx", "new", "m", *TINY, "--epochs", "2", "--batch-size", "2",
           "--nnodes", "2", "--master-port", str(_free_port())]
    nodes = [subprocess.Popen(cmd + extra, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for extra in ([], ["--node-rank", "1"])]
    outs = [p.communicate(timeout=240)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs
    assert "joining as node 1 of 2" in outs[1]
    d = hgx.root / "m"
    assert [int(r["epoch"]) for r in read_tsv(d / "train.log")] == [1, 2]
    state = json.loads((d / "state.json").read_text())
    assert state["processes"] == 2 and state["finished"]
    history = [json.loads(x) for x in (d / "history.jsonl").read_text().splitlines()]
    assert [h["command"] for h in history] == ["new"]  # node 1 wrote nothing
    assert json.loads(hgx("show", "m", "--json")[1])["options"]["node_rank"] == 0
    # a finished run: node 1 sees there is nothing to do, as node 0 does, and waits for nobody
    code, out = hgx("continue", "m", "--nnodes", "2", "--node-rank", "1")
    assert code == 0 and "nothing to do" in out


def test_node_rank_needs_a_name_and_a_rank_below_nnodes(hgx):
    code, out = hgx("new", *TINY, "--nnodes", "2", "--node-rank", "1")
    assert code == 2 and "give the experiment's NAME" in out
    code, out = hgx("new", "x", *TINY, "--nnodes", "2", "--node-rank", "2")
    assert code == 2 and "--node-rank 2 must be below --nnodes 2" in out
    assert not hgx.root.exists() or not any(hgx.root.iterdir())


def _d_step_rank(rank: int, store: str, out: str) -> None:
    """One discriminator step on rank ``rank`` of 2 (gloo), each rank on its own batch."""
    import types

    import torch.distributed as dist

    from hgx import options as hopts
    from hgx.engine.adversarial import Adversarial
    from hgx.engine.device import Runtime
    from hgx.engine.distributed import Dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        opts = types.SimpleNamespace(**{**hopts.defaults(), "features": 16, "depth": 2,
                                        "input_res": 64, "output_res": 16, "d_modules": 1})
        torch.manual_seed(0)  # the same D on both ranks
        adv = Adversarial(opts, 16, Runtime(torch.device("cpu"), "fp32", False),
                          Dist(rank, 2, rank))
        g = torch.Generator().manual_seed(100 + rank)  # but different data
        images = torch.rand(2, 3, 64, 64, generator=g)
        heatmaps, last = torch.rand(2, 16, 16, 16, generator=g), torch.rand(2, 16, 16, 16,
                                                                            generator=g)
        adv.d_step(images, heatmaps, last)
        torch.save(torch.cat([p.detach().reshape(-1) for p in adv.model.parameters()]),
                   f"{out}-{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_discriminator_steps_with_the_ranks_mean_gradient(tmp_path):
    """Under DDP each rank's D sees its own batch; the ranks must still take one and the
    same step, the one of their mean gradient (else D drifts apart across the ranks)."""
    import torch.multiprocessing as mp

    out = str(tmp_path / "d")
    mp.spawn(_d_step_rank, args=(str(tmp_path / "store"), out), nprocs=2, join=True)
    w0, w1 = (torch.load(f"{out}-{r}.pt") for r in (0, 1))
    torch.manual_seed(0)
    from hgx.models.discriminator import Discriminator

    start = torch.cat([p.detach().reshape(-1) for p in Discriminator(16, 16, 2, 1).parameters()])
    assert not torch.equal(w0, start)  # D took a step
    assert torch.equal(w0, w1)

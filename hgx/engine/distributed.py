"""Scale-out through PyTorch's own launcher: torchrun starts the ranks, DDP syncs gradients.

The `hgx` process the user started keeps the experiment's bookkeeping (lock, history) and runs
``python -m torch.distributed.run ... -m hgx _worker EXP``. Every rank trains; rank 0 alone
writes logs and snapshots. Ranks agree on when to stop or snapshot through one small
all-reduce each time the host reads the training numbers (``train.SYNC_EVERY``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a small tensor over the ranks (in place; itself on one process), so every rank
        takes the same decisions. It stays on its device: NCCL reduces CUDA tensors only."""
        if self.enabled:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def from_env() -> Dist:
    """The rank this process has under torchrun (a single process otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(d.local_rank)
        dist.init_process_group(backend)
    return d


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(exp_path: str, opts) -> tuple[int, int | None]:
    """Run the training of ``exp_path`` on ``opts.nproc`` processes per node with torchrun.

    Returns torchrun's exit code and the signal (SIGINT/SIGTERM) that stopped it, if any: a
    signal sent to this process is passed on, and the ranks snapshot and stop together.
    """
    import signal

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={opts.nproc}",
           f"--nnodes={opts.nnodes}", f"--node-rank={opts.node_rank}",
           f"--master-addr={opts.master_addr}", f"--master-port={opts.master_port}",
           "-m", "hgx", "_worker", exp_path]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, env=env)
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return code, (received[0] if received else None)

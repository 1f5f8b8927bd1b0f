"""The DataLoader of training and prediction, and the process set-up of its workers: one cv2 and
one torch thread each, glibc keeping big freed blocks (decoded photographs) for reuse, and a
parent that has not started cv2's thread pool before forking.
"""
from __future__ import annotations

import torch

from hgx.data.batch import collate


def keep_big_blocks() -> bool:
    """Let glibc keep freed large blocks (decoded photographs) for reuse instead of returning
    them to the system and page-faulting them in again (bench_loader: 1.5x samples/s)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, 64 << 20) and libc.mallopt(-1, 256 << 20))
    except (OSError, AttributeError):  # not glibc
        return False


def _worker_init(_):
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    keep_big_blocks()


def fork_safe() -> None:
    """Call before forking loader workers. cv2's thread pool, once started in this process (the
    synthetic generator starts it), cannot be reconfigured in a forked child: the worker hangs.
    With one cv2 thread in the parent, children never touch that pool."""
    import cv2

    cv2.setNumThreads(1)


def make_loader(dataset, sampler, batch: int, workers: int, pin_memory: bool = False,
                collate_fn=None):
    """hgx's DataLoader: ``sampler``'s keys in batches of ``batch``, made by ``workers``
    processes (0: in this one), pinned for a CUDA copy when asked."""
    if workers > 0:
        fork_safe()
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers,
        collate_fn=collate_fn or collate,
        pin_memory=pin_memory, persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None, drop_last=False,
        prefetch_factor=4 if workers > 0 else None)

"""Where a run starts and what makes it repeatable: the start state (epochs and iterations done,
weights, optimizer, the interrupted epoch's running sums) read from a snapshot, and every global
random generator's state, kept in tensors and plain numbers so that snapshots load with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from hgx.models.prm import REGIONS


@dataclass
class StartState:
    """Where training starts: epochs completed, iterations into the next, and the weights."""
    epoch: int = 0
    iteration: int = 0
    global_step: int = 0
    model: dict | None = None
    optimizer: dict | None = None
    rng: dict | None = None
    best_acc: float | None = None
    best_epoch: int | None = None
    partial: dict | None = None   # running sums of the interrupted epoch
    adversarial: dict | None = None  # --adversarial: the discriminator, its optimizer, k_t


def rng_state() -> dict:
    """Every global generator's state, in tensors and plain numbers only, so that snapshots
    load with ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
             "torch": torch.get_rng_state(),
             "fmp": REGIONS.state()}  # hg-prm's pooling regions (hgx.models.prm)
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict | None) -> None:
    if not state:
        return
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    REGIONS.set_state(state.get("fmp"))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    REGIONS.seed(seed)


def start_from_snapshot(data: dict) -> StartState:
    return StartState(epoch=int(data.get("epoch", 0)), iteration=int(data.get("iteration", 0)),
                      global_step=int(data.get("global_step", 0)), model=data["model"],
                      optimizer=data.get("optimizer"), rng=data.get("rng"),
                      best_acc=data.get("best_acc"), best_epoch=data.get("best_epoch"),
                      partial=data.get("partial"), adversarial=data.get("adversarial"))

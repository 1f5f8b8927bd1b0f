"""hgx's CPU training step against pytorch_stacked_hourglass's, same model, same run.

    python benchmarks/bench_peer_step.py --peer PATH/TO/pytorch_stacked_hourglass [--quick]

The peer's code is not part of hgx: point --peer at your own checkout of
princeton-vl/pytorch_stacked_hourglass. Both sides train the 2-stack, 256-feature hourglass
(the same architecture: 6,570,400 used weights) on 256x256 inputs, batch 6, with Adam 1e-3
(the peer's optimizer, task/pose.py:88), each fed and trained as its own training code does:

* the peer: a contiguous NHWC float batch, as its DataLoader stacks data/MPII/dp.py's HWC
  images; its PoseNet permutes it inside (models/posenet.py:50), so its convolutions run on
  channels_last memory; its own loss (PoseNet.calc_loss: HeatmapLoss per stack, then the mean,
  task/pose.py:120-125); fp32 (its train.py has no autocast);
* hgx: as `hgx new` runs it on this machine: NCHW input made channels_last, hgx's
  ``heatmap_loss`` in fp32 and ``--precision auto`` (bf16 autocast on CPUs with native bf16,
  fp32 elsewhere); and the same in fp32, the like-for-like row.

One step = forward, loss, backward, optimizer step on a batch already in memory (the same
random images and heatmaps for both). Ratios are paired: every repeat times each variant once
(interleaved), the ratio to the peer is taken within the repeat, and the median over repeats is
reported. torch.set_flush_denormal(True) on both (random weights make denormals).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def peer_model(peer: Path, stacks: int):
    sys.path.insert(0, str(peer))
    try:
        from models.posenet import PoseNet  # the peer's own class, from the user's checkout
    finally:
        sys.path.pop(0)
    return PoseNet(nstack=stacks, inp_dim=256, oup_dim=16)


def peer_step(model, x, target):
    """The peer's step as its code runs it: NHWC contiguous in, its own loss, fp32."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    imgs = x.permute(0, 2, 3, 1).contiguous()  # what its DataLoader delivers: (B, H, W, 3)

    def one():
        preds = model(imgs)                                   # (B, stacks, 16, 64, 64)
        loss = torch.mean(model.calc_loss([preds], target))   # task/pose.py:120-125
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return one


def hgx_step(model, x, target, precision: str):
    """hgx's step as `hgx new` runs it: channels_last, heatmap_loss in fp32, autocast."""
    from hgx.engine.train import heatmap_loss

    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = x.contiguous(memory_format=torch.channels_last)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else \
        contextlib.nullcontext()

    def one():
        with cast:
            out = model(images)
        loss = heatmap_loss(out, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return one


def step_rate(one, batch: int, steps: int) -> float:
    """img/s of ``steps`` steps after one warm-up step."""
    one()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    return steps * batch / (time.perf_counter() - t)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", required=True, type=Path, help="pytorch_stacked_hourglass checkout")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=0)
    ap.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args(argv)
    if not (args.peer / "models" / "posenet.py").is_file():
        sys.exit(f"--peer {args.peer}: no models/posenet.py there (a pytorch_stacked_hourglass "
                 "checkout is needed)")
    from hgx.models.hourglass import StackedHourglass

    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    steps, repeats = (2, 3) if args.quick else (4, args.repeats or 5)
    x = torch.rand(args.batch, 3, 256, 256)
    target = torch.rand(args.batch, 16, 64, 64)
    from hgx.engine.device import choose_precision

    auto = choose_precision("auto", torch.device("cpu"))
    variants = {
        "peer (as its train.py runs it)": lambda: step_rate(
            peer_step(peer_model(args.peer, 2), x, target), args.batch, steps),
        f"hgx as `hgx new` runs it ({auto})": lambda: step_rate(
            hgx_step(StackedHourglass(2, 256), x, target, auto), args.batch, steps),
        "hgx fp32 (like for like)": lambda: step_rate(
            hgx_step(StackedHourglass(2, 256), x, target, "fp32"), args.batch, steps),
    }
    peer_name = next(iter(variants))
    rates: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved; ratios paired within a repeat
        now = {k: fn() for k, fn in variants.items()}
        for k in variants:
            rates[k].append(now[k])
            ratios[k].append(now[k] / now[peer_name])
    result = {"benchmark": "peer_step", "batch": args.batch, "steps": steps, "repeats": repeats,
              "threads": torch.get_num_threads(),
              "img_per_s": {k: float(np.median(v)) for k, v in rates.items()},
              "x_peer": {k: float(np.median(v)) for k, v in ratios.items()}}
    print(f"{'HG2 x 256 training step, CPU':<42}{'img/s':>8}{'x peer':>8}")
    for k in variants:
        print(f"{k:<42}{result['img_per_s'][k]:>8.2f}{result['x_peer'][k]:>8.2f}")
    print("JSON:", json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

"""hgx's CPU training step against pytorch_stacked_hourglass's, same model, same run.

    python benchmarks/bench_peer_step.py --peer PATH/TO/pytorch_stacked_hourglass [--quick]

The peer's code is not part of hgx: point --peer at your own checkout of
princeton-vl/pytorch_stacked_hourglass. Both sides train the 2-stack, 256-feature hourglass
(the same architecture: 6,570,400 used weights) on 256x256 inputs with Adam 1e-3 (the peer's
optimizer), one MSE per stack; the peer as its train.py runs it (NHWC input permuted inside
the model, contiguous memory), hgx as `hgx new` runs it on CPU (channels_last). Baseline: the
peer's img/s. torch.set_flush_denormal(True) on both (random weights make denormals).
"""
from __future__ import annotations

import argparse
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


def step_rate(model, x, target, nhwc: bool, channels_last: bool, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    inp = x.permute(0, 2, 3, 1) if nhwc else x

    def one():
        out = model(inp)
        out = out.transpose(0, 1) if nhwc else out  # peer: (B, stack, ...) -> (stack, B, ...)
        loss = sum(((o - target) ** 2).mean() for o in out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        one()
    return steps * x.shape[0] / (time.perf_counter() - t)


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
    variants = {
        "peer": lambda: step_rate(peer_model(args.peer, 2), x, target, True, False, steps),
        "hgx fp32 contiguous": lambda: step_rate(StackedHourglass(2, 256), x, target, False,
                                                 False, steps),
        "hgx (channels_last, as hgx runs)": lambda: step_rate(StackedHourglass(2, 256), x,
                                                              target, False, True, steps),
    }
    rates: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):  # interleaved; ratios paired within a repeat
        now = {k: fn() for k, fn in variants.items()}
        for k in variants:
            rates[k].append(now[k])
            ratios[k].append(now[k] / now["peer"])
    result = {"benchmark": "peer_step", "batch": args.batch, "steps": steps, "repeats": repeats,
              "threads": torch.get_num_threads(),
              "img_per_s": {k: float(np.median(v)) for k, v in rates.items()},
              "x_peer": {k: float(np.median(v)) for k, v in ratios.items()}}
    print(f"{'HG2 x 256 training step, CPU':<36}{'img/s':>8}{'x peer':>8}")
    for k in variants:
        print(f"{k:<36}{result['img_per_s'][k]:>8.2f}{result['x_peer'][k]:>8.2f}")
    print("JSON:", json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

"""Training-step throughput of the stacked hourglass: fp32 against channels_last, bf16 autocast
and torch.compile, alone and combined; peak memory; FLOPs and the conv roofline.

    python benchmarks/bench_train_step.py [--quick] [--device cpu|cuda] [--json OUT]

One step = forward, hgx's ``heatmap_loss`` (every stack's heatmaps, fp32), backward and hgx's
``make_optimizer`` RMSprop step (pose-hg-train's defaults), on random images and heatmaps already
on the device: the model's compute alone, no data loading. Models: HG2 and HG8 with 256
features at 256x256 input (``--quick``: HG2 only, a few steps). Batch: 6 on CPU (pose-hg-train's),
32 on CUDA.

Variants (``--variants``): ``fp32`` is the baseline of every ratio; the others combine
``channels_last``, ``bf16`` (autocast) and ``compile`` (``torch.compile``) with ``+``. Defaults:
fp32 and channels_last on CPU; all eight combinations on CUDA. On CUDA, cuDNN benchmark and TF32
are on for every variant, as hgx's runtime sets them (``hgx.engine.device``): "fp32" convs run
in TF32 there.

FLOPs per image are counted with ``torch.utils.flop_counter.FlopCounterMode`` (forward +
backward, convs and matmuls; on the meta device, so nothing runs). The conv roofline (on by
default on CUDA, ``--roofline`` elsewhere) times every distinct conv shape of the model as a
plain ``F.conv2d`` forward + backward (bf16 channels_last on CUDA, fp32 on CPU), summed with
its multiplicity: the step time if the model were only its convs at cuDNN's speed.
Achieved TFLOP/s are compared with ``--peak-tflops`` (an assumption, printed).

``torch.set_flush_denormal(True)`` is on: random weights produce denormals that slow CPUs ~10x.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import time
from collections import Counter

import torch
import torch.nn.functional as F

from common import (base_parser, emit, environment, median, peak_memory_mib, pick_device, ratio,
                    reset_peak_memory, sync, table, timed)

FEATURES = ("channels_last", "bf16", "compile")
JOINTS = 16


def parse(argv):
    p = base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", default=None,
                   help="STACKSxFEATURES,... (default 2x256,8x256; --quick: 2x256)")
    p.add_argument("--depth", type=int, default=4, help="hourglass depth")
    p.add_argument("--res", type=int, default=256, help="input resolution (heatmaps res/4)")
    p.add_argument("--batch", type=int, default=None, help="default 6 on CPU, 32 on CUDA")
    p.add_argument("--steps", type=int, default=None, help="steps per timed repeat")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (compile: +2)")
    p.add_argument("--variants", default=None,
                   help="comma list of fp32 / channels_last / bf16 / compile, combined with +")
    p.add_argument("--roofline", action=argparse.BooleanOptionalAction, default=None,
                   help="time the conv roofline (default: on for CUDA)")
    p.add_argument("--peak-tflops", type=float, default=790.0,
                   help="assumed dense bf16 peak of the card, TFLOP/s (for %% of peak)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode (default: default)")
    args = p.parse_args(argv)
    cuda = pick_device(args.device).type == "cuda"
    args.models = args.models or ("2x256" if args.quick else "2x256,8x256")
    args.batch = args.batch or (32 if cuda else 6)
    args.steps = args.steps or ((5 if args.quick else 20) if cuda else (2 if args.quick else 3))
    args.warmup = 1 if args.warmup is None else args.warmup
    args.repeats = args.repeats or (3 if args.quick else 5)
    if args.variants is None:
        args.variants = ",".join(["fp32"] + ["+".join(c) for k in (1, 2, 3)
                                             for c in itertools.combinations(FEATURES, k)]) \
            if cuda else "fp32,channels_last"
    if args.roofline is None:
        args.roofline = cuda
    return args


def parse_variant(name: str) -> set[str]:
    parts = set(name.split("+")) - {"fp32"}
    unknown = parts - set(FEATURES)
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(sorted(unknown))}; use fp32, "
                         f"{', '.join(FEATURES)} joined with +")
    return parts


def build(stacks: int, features: int, depth: int):
    from hgx.models.hourglass import StackedHourglass

    return StackedHourglass(stacks=stacks, features=features, joints=JOINTS, depth=depth)


# -- one variant: a model, its optimizer, a batch, and the step --------------------------------
class Run:
    def __init__(self, stacks, features, depth, variant: str, batch, res, device, compile_mode):
        from hgx.engine.train import heatmap_loss, make_optimizer
        from hgx.options import resolve

        parts = parse_variant(variant)
        torch.manual_seed(0)
        fmt = torch.channels_last if "channels_last" in parts else torch.contiguous_format
        self.model = build(stacks, features, depth).to(device, memory_format=fmt).train()
        self.optimizer = make_optimizer(resolve(), self.model.parameters())  # RMSprop defaults
        self.forward = torch.compile(self.model, mode=compile_mode) if "compile" in parts \
            else self.model
        self.images = torch.rand(batch, 3, res, res, device=device).to(memory_format=fmt)
        self.target = torch.rand(batch, JOINTS, res // 4, res // 4, device=device) * 0.1
        self.bf16, self.device, self.loss, self.heatmap_loss = "bf16" in parts, device, None, \
            heatmap_loss

    def step(self):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            outputs = self.forward(self.images)
        self.loss = self.heatmap_loss(outputs, self.target)
        self.optimizer.zero_grad(set_to_none=True)
        self.loss.backward()
        self.optimizer.step()

    def steps(self, n: int):
        for _ in range(n):
            self.step()


# -- FLOPs and the conv roofline ---------------------------------------------------------------
def count_flops(stacks, features, depth, res) -> tuple[float, float]:
    """(forward, forward+backward) FLOPs per image, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    from hgx.engine.train import heatmap_loss

    with torch.device("meta"):
        model = build(stacks, features, depth).eval()  # eval: batch 1 is fine for BN
        x = torch.empty(1, 3, res, res)
        target = torch.empty(1, JOINTS, res // 4, res // 4)
    with FlopCounterMode(display=False) as fwd:
        outputs = model(x)
    with FlopCounterMode(display=False) as bwd:
        heatmap_loss(outputs, target).backward()
    return float(fwd.get_total_flops()), float(fwd.get_total_flops() + bwd.get_total_flops())


def conv_shapes(stacks, features, depth, batch, res) -> Counter:
    """Every distinct conv of the model at this batch: (input shape, weight shape, stride,
    padding) -> how many times it runs in one forward."""
    shapes = Counter()

    def hook(module, inputs, _output):
        shapes[(tuple(inputs[0].shape), tuple(module.weight.shape), module.stride,
                module.padding)] += 1

    with torch.device("meta"):
        model = build(stacks, features, depth)
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.register_forward_hook(hook)
        model(torch.empty(batch, 3, res, res))
    return shapes


def conv_roofline(shapes: Counter, device, repeats: int) -> dict:
    """Seconds of one forward+backward of all the model's convs as plain F.conv2d calls."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    total, flops = 0.0, 0.0
    for (xs, ws, stride, padding), count in shapes.items():
        x = torch.randn(xs, device=device, dtype=dtype).to(memory_format=torch.channels_last)
        w = torch.randn(ws, device=device, dtype=dtype).to(memory_format=torch.channels_last)
        b = torch.randn(ws[0], device=device, dtype=dtype)
        for t in (x, w, b):
            t.requires_grad_(True)
        y = F.conv2d(x, w, b, stride, padding)
        gy = torch.randn_like(y)
        n = 10 if device.type == "cuda" else 1

        def fwd_bwd():
            for _ in range(n):
                torch.autograd.grad(F.conv2d(x, w, b, stride, padding), (x, w, b), gy)

        total += count * median(timed(fwd_bwd, repeats, 1, device)) / n
        # forward MACs x 2 FLOPs, backward twice the forward
        flops += count * 3 * 2 * y.numel() * ws[1] * ws[2] * ws[3]
    return {"seconds": total, "flops": flops}


def main(argv=None) -> dict:
    args = parse(argv)
    device = pick_device(args.device)
    torch.set_flush_denormal(True)
    if device.type == "cuda":  # as hgx.engine.device.setup_runtime
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "fp32" not in variants:
        variants.insert(0, "fp32")
    compiling = any("compile" in parse_variant(v) for v in variants)
    if compiling:  # one compiled model per variant: let dynamo keep them all
        import torch._dynamo as dynamo  # (binds only "dynamo": torch stays the module's)

        dynamo.config.cache_size_limit = max(64, dynamo.config.cache_size_limit)

    models = {}
    for spec in args.models.split(","):
        stacks, features = (int(v) for v in spec.lower().split("x"))
        name = f"HG{stacks}-{features}"
        print(f"{name}: counting FLOPs, building {len(variants)} variants...", flush=True)
        flops_fwd, flops_step = count_flops(stacks, features, args.depth, args.res)
        entry = models[name] = {"stacks": stacks, "features": features,
                                "params": sum(p.numel() for p in build(
                                    stacks, features, args.depth).parameters()),
                                "flops_per_img_forward": flops_fwd,
                                "flops_per_img_step": flops_step, "variants": {}}

        # build and warm every variant (its own memory: peak minus what was there before)
        runs = {}
        for v in variants:
            if device.type == "cuda":
                gc.collect()
            sync(device)
            before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            reset_peak_memory(device)
            run = Run(stacks, features, args.depth, v, args.batch, args.res, device,
                      args.compile_mode)
            t0 = time.perf_counter()
            run.step()  # the first step: compilation, cuDNN autotuning, allocations
            sync(device)
            first = time.perf_counter() - t0
            run.steps(args.warmup + (2 if "compile" in v else 0))
            sync(device)
            peak = peak_memory_mib(device)
            runs[v] = run
            entry["variants"][v] = {"first_step_s": first,
                                    "peak_mib": None if peak is None else
                                    peak - before / 2 ** 20}

        # time them, interleaved: repeat r runs every variant once
        seconds = {v: [] for v in variants}
        for _ in range(args.repeats):
            for v, run in runs.items():
                seconds[v] += timed(lambda r=run: r.steps(args.steps), 1, 0, device)
        for v in variants:
            rates = [args.steps * args.batch / s for s in seconds[v]]
            base = [args.steps * args.batch / s for s in seconds["fp32"]]
            ips = median(rates)
            entry["variants"][v].update({
                "img_per_s": ips, "step_ms": 1000 * args.batch / ips,
                "ratio_vs_fp32": median([ratio(a, b) for a, b in zip(rates, base)]),
                "tflops": flops_step * ips / 1e12,
                "pct_of_peak": 100 * flops_step * ips / 1e12 / args.peak_tflops
                if device.type == "cuda" else None,
                "loss_finite": bool(torch.isfinite(runs[v].loss).item()),
                "rates": rates})
        del runs, run
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
        if compiling:
            dynamo.reset()

        if args.roofline:
            print(f"{name}: timing the conv roofline...", flush=True)
            shapes = conv_shapes(stacks, features, args.depth, args.batch, args.res)
            roof = conv_roofline(shapes, device, args.repeats)
            best = max(entry["variants"], key=lambda k: entry["variants"][k]["img_per_s"])
            roof_ips = args.batch / roof["seconds"]
            entry["roofline"] = {
                "dtype": "bf16" if device.type == "cuda" else "fp32",
                "distinct_conv_shapes": len(shapes),
                "convs_per_forward": sum(shapes.values()),
                "conv_ms_per_step": 1000 * roof["seconds"],
                "conv_img_per_s": roof_ips,
                "conv_tflops": roof["flops"] / roof["seconds"] / 1e12,
                "conv_pct_of_peak": 100 * roof["flops"] / roof["seconds"] / 1e12 /
                args.peak_tflops if device.type == "cuda" else None,
                "best_variant": best,
                "best_pct_of_conv_roofline": 100 * entry["variants"][best]["img_per_s"] /
                roof_ips}

    result = {"benchmark": "train_step", "env": environment(device),
              "config": {"models": args.models, "depth": args.depth, "res": args.res,
                         "batch": args.batch, "steps_per_repeat": args.steps,
                         "repeats": args.repeats, "warmup": args.warmup, "variants": variants,
                         "quick": args.quick, "peak_tflops_assumed": args.peak_tflops,
                         "flush_denormal": True, "tf32": device.type == "cuda",
                         "compile_mode": args.compile_mode or "default"},
              "models": models}
    report(result)
    return emit(result, args.json)


def report(r: dict) -> None:
    c = r["config"]
    cuda = r["env"]["device"].startswith("cuda")
    print(f"\ntraining step on {r['env'].get('gpu', r['env']['device'])}: batch {c['batch']}, "
          f"{c['res']}px input, {c['steps_per_repeat']} steps x {c['repeats']} repeats "
          f"(medians; ratios paired within each repeat, baseline fp32 of the same model)")
    rows = []
    for name, m in r["models"].items():
        for v, d in m["variants"].items():
            rows.append([name, v, d["img_per_s"], d["ratio_vs_fp32"], d["step_ms"],
                         d["peak_mib"], d["tflops"], d["pct_of_peak"], d["first_step_s"]])
    print(table(["model", "variant", "img/s", "x fp32", "ms/step", "peak MiB", "TFLOP/s",
                 "% peak", "1st step s"], rows))
    for name, m in r["models"].items():
        print(f"{name}: {m['params']:,} parameters, {m['flops_per_img_forward'] / 1e9:.1f} "
              f"GFLOP/img forward, {m['flops_per_img_step'] / 1e9:.1f} GFLOP/img per training "
              f"step (FlopCounterMode)")
        roof = m.get("roofline")
        if roof:
            print(f"  conv roofline ({roof['dtype']} F.conv2d fwd+bwd of its "
                  f"{roof['convs_per_forward']} convs, {roof['distinct_conv_shapes']} distinct "
                  f"shapes): {roof['conv_ms_per_step']:.1f} ms/step = "
                  f"{roof['conv_img_per_s']:.1f} img/s, {roof['conv_tflops']:.2f} TFLOP/s"
                  + (f" = {roof['conv_pct_of_peak']:.1f}% of peak" if cuda else "")
                  + f"; best variant {roof['best_variant']} reaches "
                  f"{roof['best_pct_of_conv_roofline']:.0f}% of it")
    if cuda:
        print(f"% peak assumes {c['peak_tflops_assumed']:.0f} TFLOP/s dense bf16 (--peak-tflops)")


if __name__ == "__main__":
    main()

"""The families against the plain hourglass: FLOPs per image and training-step img/s of
hg-prm (PyraNet) and hg-atten (Hg-SAGAN) against hg of the same stacks and features.

    python benchmarks/bench_models.py [--quick] [--device cpu|cuda] [--json OUT]

Models are the presets' shapes (``--models``), each paired with an hg of its stacks:

* mpii-prm2: hg-prm, 2 stacks, base width 9, cardinality 4;
* mpii-sagan: hg-atten, 2 stacks;
* mpii-prm8: hg-prm, 8 stacks, base width 6, cardinality 30.

All have 256 features and 1 module. ``--quick`` drops mpii-prm8 and runs fewer repeats.

One step is hgx's training step on random images and heatmaps already on the device: forward
in fp32, ``heatmap_loss``, backward, RMSprop step. Repeats are interleaved: each repeat times
every model once. The ratio is paired within a repeat (family img/s / hg img/s of the same
stacks), and the table gives medians over repeats.

FLOPs per image are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device,
for a forward in eval mode. That counts convolutions and matrix products, including the
attention's two bmm's. It does not count fractional max-pooling, bilinear upsampling, BN or
ReLU, so the counts understate the pyramid's extra work.
"""
from __future__ import annotations

import torch

from common import base_parser, emit, environment, median, pick_device, ratio, table, timed

JOINTS = 16
SHAPES = {  # preset -> architecture (hgx.models.arch_of's dict)
    "mpii-prm2": dict(arch="hg-prm", stacks=2, base_width=9, cardinality=4),
    "mpii-sagan": dict(arch="hg-atten", stacks=2),
    "mpii-prm8": dict(arch="hg-prm", stacks=8, base_width=6, cardinality=30),
}


def parse(argv):
    p = base_parser(__doc__.split("\n")[0])
    p.add_argument("--models", default=None,
                   help="comma list of " + ", ".join(SHAPES) + " (default all; --quick: the "
                   "2-stack ones)")
    p.add_argument("--res", type=int, default=256, help="input resolution (heatmaps res/4)")
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=None, help="default 2 on CPU, 16 on CUDA")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)
    cuda = pick_device(args.device).type == "cuda"
    args.models = args.models or ("mpii-prm2,mpii-sagan" if args.quick else ",".join(SHAPES))
    args.batch = args.batch or (16 if cuda else 2)
    args.repeats = args.repeats or (2 if args.quick else 3)
    return args


def arch(name: str, args) -> dict:
    base = dict(stacks=SHAPES[name]["stacks"], features=args.features, modules=1,
                joints=JOINTS, depth=args.depth, mid=None, stem="original")
    return {**base, **SHAPES[name]}


def baseline(family: dict) -> dict:
    return {k: v for k, v in family.items() if k not in ("arch", "base_width", "cardinality")}


def count_flops(spec: dict, res: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from hgx.models import build_arch

    with torch.device("meta"):
        model = build_arch(spec).eval()
        x = torch.empty(1, 3, res, res)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


class Step:
    """One model, its optimizer and a batch; ``run`` is one training step."""

    def __init__(self, spec: dict, batch: int, res: int, device):
        from hgx.engine.train import heatmap_loss, make_optimizer
        from hgx.models import build_arch
        from hgx.options import resolve

        torch.manual_seed(0)
        self.model = build_arch(spec).to(device, memory_format=torch.channels_last).train()
        self.optimizer = make_optimizer(resolve(), self.model.parameters())
        self.images = torch.rand(batch, 3, res, res, device=device).to(
            memory_format=torch.channels_last)
        self.target = torch.rand(batch, JOINTS, res // 4, res // 4, device=device) * 0.1
        self.loss_fn, self.loss = heatmap_loss, None

    def run(self):
        self.loss = self.loss_fn(self.model(self.images), self.target)
        self.optimizer.zero_grad(set_to_none=True)
        self.loss.backward()
        self.optimizer.step()


def main(argv=None) -> dict:
    args = parse(argv)
    device = pick_device(args.device)
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown[0]!r}; known: {', '.join(SHAPES)}")
    specs = {}
    for n in names:
        specs[n] = arch(n, args)
        specs[f"hg{specs[n]['stacks']}"] = baseline(specs[n])
    print(f"counting FLOPs and building {len(specs)} models...", flush=True)
    flops = {k: count_flops(s, args.res) for k, s in specs.items()}
    steps = {}
    for k, s in specs.items():
        steps[k] = Step(s, args.batch, args.res, device)
        steps[k].run()  # warm-up: allocations, oneDNN/cuDNN choices
    seconds = {k: [] for k in specs}
    for _ in range(args.repeats):
        for k, step in steps.items():
            seconds[k] += timed(step.run, 1, 0, device)
    rates = {k: [args.batch / s for s in v] for k, v in seconds.items()}
    from hgx.models import count_parameters

    models = {}
    for n in names:
        base = f"hg{specs[n]['stacks']}"
        models[n] = {
            "arch": specs[n], "baseline": base,
            "params": count_parameters(steps[n].model),
            "baseline_params": count_parameters(steps[base].model),
            "gflops_per_img": flops[n] / 1e9, "baseline_gflops_per_img": flops[base] / 1e9,
            "flops_ratio_vs_hg": flops[n] / flops[base],
            "img_per_s": median(rates[n]), "baseline_img_per_s": median(rates[base]),
            "ratio_vs_hg": median([ratio(a, b) for a, b in zip(rates[n], rates[base])]),
            "rates": rates[n], "baseline_rates": rates[base],
            "loss_finite": bool(torch.isfinite(steps[n].loss).item())}
    result = {"benchmark": "models", "env": environment(device),
              "config": {"models": names, "res": args.res, "features": args.features,
                         "depth": args.depth, "batch": args.batch, "repeats": args.repeats,
                         "quick": args.quick, "flush_denormal": True,
                         "memory_format": "channels_last", "precision": "fp32"},
              "models": models}
    report(result)
    return emit(result, args.json)


def report(r: dict) -> None:
    c = r["config"]
    print(f"\ntraining step on {r['env'].get('gpu', r['env']['device'])}: batch {c['batch']}, "
          f"{c['res']}px, fp32 channels_last, {c['repeats']} repeats (medians; ratios paired "
          "within each repeat against hg of the same stacks)")
    rows = [[n, m["baseline"], m["params"], m["gflops_per_img"], m["flops_ratio_vs_hg"],
             m["img_per_s"], m["baseline_img_per_s"], m["ratio_vs_hg"]]
            for n, m in r["models"].items()]
    print(table(["model", "vs", "params", "GFLOP/img", "x hg FLOPs", "img/s", "hg img/s",
                 "x hg img/s"], rows))


if __name__ == "__main__":
    main()

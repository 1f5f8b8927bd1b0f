"""A network before and after `hgx prune`: parameters, FLOPs per image and img/s.

    python benchmarks/bench_prune.py [--quick] [--device cpu|cuda] [--json OUT]
    python benchmarks/bench_prune.py --old demo --new demo-p50 [--exp-dir DIR]

With ``--old OLD --new NEW`` it measures two experiments' networks (NEW typically `hgx prune
OLD NEW`), each built from its options with its latest snapshot's weights. Without them it
takes the demo preset's architecture (2 stacks of 64 features at 128 px), randomly initialised
(the speed does not depend on the weights), and prunes it with hgx's surgery (``--criterion``,
``--amount``, default l1 at 0.5, every block) into NEW.

Both networks run the same forward pass (eval mode, a batch of ``--batch`` random images of the
input size, no gradients) in hgx's runtime for the device (``setup_runtime``: channels_last,
bf16 autocast where ``--precision auto`` picks it). Repeats are interleaved (each runs OLD and
NEW, in alternating order) and NEW/OLD ratios are paired within a repeat; the table gives
medians. Parameters and FLOPs (``hgx.models.cost``: torch.utils.flop_counter on the meta
device, 2 per multiply-add of the convolutions) are exact counts.
"""
from __future__ import annotations

import dataclasses
import time

import torch

from common import (base_parser, emit, environment, median, pick_device, ratio, sync,
                    table)  # common also puts the repository on sys.path


def parse(argv):
    p = base_parser(__doc__.split("\n")[0])
    p.add_argument("--old", default=None, help="experiment before pruning")
    p.add_argument("--new", default=None, help="experiment after pruning (`hgx prune`)")
    p.add_argument("--exp-dir", default=None, help="experiments root (default $HGX_EXP_DIR "
                   "or ./exp)")
    p.add_argument("--preset", default="demo", help="architecture without --old/--new")
    p.add_argument("--stacks", type=int, default=None, help="override the preset's stacks")
    p.add_argument("--features", type=int, default=None, help="override its features")
    p.add_argument("--depth", type=int, default=None, help="override its depth")
    p.add_argument("--res", type=int, default=None, help="override its input resolution")
    p.add_argument("--criterion", default="l1", choices=("l1", "bn"))
    p.add_argument("--amount", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=None, help="default 8 on CPU, 64 on CUDA")
    p.add_argument("--iters", type=int, default=None,
                   help="forward passes per timed run (default 3 --quick, else 10)")
    args = p.parse_args(argv)
    if (args.old is None) != (args.new is None):
        p.error("give both --old and --new, or neither")
    cuda = pick_device(args.device).type == "cuda"
    args.batch = args.batch or (64 if cuda else 8)
    args.iters = args.iters or (3 if args.quick else 10)
    args.repeats = args.repeats or (3 if args.quick else 7)
    return args


def experiments(args):
    """(old options, old weights, new options, new weights, label) of two experiments."""
    from hgx import checkpoint
    from hgx import options as hopts
    from hgx.experiment import Experiment, exp_root

    root = exp_root(args.exp_dir)
    out = []
    for name in (args.old, args.new):
        exp = Experiment.open(root, name)
        _, data = checkpoint.select(exp, "last")
        out += [hopts.resolve(None, exp.options(), None), data["model"]]
    return (*out, f"{args.old} -> {args.new}")


def synthetic_pair(args, joints: int):
    """The preset's architecture, random weights, and its pruned copy."""
    from hgx import options as hopts
    from hgx.models import build_model, unpruned_widths
    from hgx.models import prune as surgery

    typed = {k: v for k, v in (("stacks", args.stacks), ("features", args.features),
                               ("depth", args.depth), ("input_res", args.res)) if v}
    if "input_res" in typed:
        typed["output_res"] = typed["input_res"] // 4
    opts = hopts.resolve(hopts.load_preset(args.preset), None, typed)
    torch.manual_seed(0)
    sd = build_model(opts, joints).state_dict()
    plan = surgery.plan(sd, opts.stacks, opts.depth, opts.modules, args.criterion,
                        args.amount, surgery.groups_of(opts.depth))
    widths = plan.after if plan.after != unpruned_widths(opts, joints) else []
    new_opts = dataclasses.replace(opts, block_widths=widths)
    label = f"{args.preset} architecture, {args.criterion} {args.amount:g} (random weights)"
    return opts, sd, new_opts, surgery.apply(sd, plan), label


def main(argv=None) -> dict:
    args = parse(argv)
    device = pick_device(args.device)
    from hgx.engine.device import setup_runtime
    from hgx.models import build_model, cost

    joints = 16
    old_opts, old_sd, new_opts, new_sd, label = experiments(args) if args.old else \
        synthetic_pair(args, joints)
    joints = old_sd["heads.0.weight"].shape[0]
    runtime = setup_runtime(dataclasses.replace(old_opts, device=device.type))
    nets = {}
    for name, opts, sd in (("old", old_opts, old_sd), ("new", new_opts, new_sd)):
        model = build_model(opts, joints)
        model.load_state_dict(sd)
        nets[name] = (runtime.prepare(model).eval(), opts, cost(opts, joints))
    res = old_opts.input_res
    x = torch.randn(args.batch, 3, res, res, device=device)
    if runtime.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def forward(model):
        with runtime.autocast():
            for _ in range(args.iters):
                model(x)

    for model, _, _ in nets.values():  # warm-up
        forward(model)
    rates = {"old": [], "new": []}
    for rep in range(args.repeats):
        for name in (("old", "new") if rep % 2 == 0 else ("new", "old")):
            sync(device)
            t0 = time.perf_counter()
            forward(nets[name][0])
            sync(device)
            rates[name].append(args.batch * args.iters / (time.perf_counter() - t0))
    out = {}
    for name, (_, opts, c) in nets.items():
        out[name] = {"parameters": c["parameters"], "flops_per_image": c["flops_per_image"],
                     "img_per_s": median(rates[name]), "img_per_s_runs": rates[name],
                     "block_widths": list(opts.block_widths)}
    o, n = out["old"], out["new"]
    result = {"benchmark": "prune", "env": environment(device),
              "config": {"networks": label, "stacks": old_opts.stacks,
                         "features": old_opts.features, "depth": old_opts.depth, "res": res,
                         "batch": args.batch, "iters": args.iters, "repeats": args.repeats,
                         "quick": args.quick, "precision": runtime.precision,
                         "channels_last": runtime.channels_last},
              "old": o, "new": n,
              "ratio_parameters": n["parameters"] / o["parameters"],
              "ratio_flops": n["flops_per_image"] / o["flops_per_image"],
              "ratio_img_per_s": median([ratio(b, a) for a, b in zip(rates["old"],
                                                                    rates["new"])])}
    report(result)
    return emit(result, args.json)


def report(r: dict) -> None:
    c = r["config"]
    print(f"\nprune on {r['env'].get('gpu', r['env']['device'])}: {c['networks']}; HG"
          f"{c['stacks']}-{c['features']} depth {c['depth']} at {c['res']} px, batch "
          f"{c['batch']} x {c['iters']} forward passes ({c['precision']}), {c['repeats']} "
          "repeats (medians; the img/s ratio paired within each repeat)")
    o, n = r["old"], r["new"]
    rows = [["parameters", o["parameters"], n["parameters"], r["ratio_parameters"]],
            ["GFLOPs per image", o["flops_per_image"] / 1e9, n["flops_per_image"] / 1e9,
             r["ratio_flops"]],
            ["img/s (forward)", o["img_per_s"], n["img_per_s"], r["ratio_img_per_s"]]]
    print(table(["", "old", "new", "new / old"], rows, digits=3))


if __name__ == "__main__":
    main()

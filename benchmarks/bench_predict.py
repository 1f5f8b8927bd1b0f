"""Prediction throughput with and without flip testing and a second test scale.

    python benchmarks/bench_predict.py [--quick] [--device cpu|cuda] [--json OUT]

Runs ``hgx.engine.predict.predict`` (crop, network, heatmaps -> image coordinates, data loading
included) over the first ``--count`` people of the synthetic validation split (1280x720, hgx's
default set, generated once and cached), with a randomly initialised HG2 of 256 features at 256 px
(the speed does not depend on the weights), in hgx's runtime for the device as ``--precision
auto`` sets it: channels_last, bf16 autocast on CUDA and on CPUs with native bf16, fp32 on other
CPUs (``hgx.engine.device.setup_runtime``; the table's header says which ran).

Variants: ``plain`` (the baseline of every ratio), ``flip`` (the mirrored image too, averaged),
``2scale`` (scales 1 and ``--second-scale``), ``flip+2scale``, ``pyranet`` (PyraNet's test:
scales 0.8 ... 1.3, each flipped: 12 passes, fused in the original image). Each is timed twice:

- ``end_to_end``: ``predict(...)`` as ``hgx`` runs it, data loading and decoding included;
- ``network``: the same building blocks (``heatmaps_for``, ``fuse_in_image``) on crops
  prepared once and already on the device, so data loading cannot hide the cost of flip/scales
  (on a GPU, loading 1280x720 JPEGs is the bottleneck of ``end_to_end``).

The variants run interleaved in each repeat; ratios are paired within a repeat and the median
reported. Flip and each extra scale are one more forward pass per image: the ideal ratio is
1/passes.
"""
from __future__ import annotations

import contextlib
import io
import os
import time

import torch

from common import (base_parser, emit, environment, median, pick_device, ratio, sync,
                    synthetic_options, table)  # common also puts the repository on sys.path


def parse(argv):
    p = base_parser(__doc__.split("\n")[0])
    p.add_argument("--model", default="2x256", help="STACKSxFEATURES")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--res", type=int, default=256, help="input resolution (heatmaps res/4)")
    p.add_argument("--size", default="1280x720", help="synthetic image size WxH")
    p.add_argument("--people", type=int, default=1000,
                   help="training people of the synthetic set (the set to use; valid = "
                        "min(200, this))")
    p.add_argument("--count", type=int, default=None,
                   help="validation people predicted per pass (default 8 --quick, else 24 on "
                        "CPU; 512 on CUDA)")
    p.add_argument("--batch", type=int, default=None, help="default 8 on CPU, 64 on CUDA")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers of predict (default 0 on CPU, cpu count on CUDA)")
    p.add_argument("--second-scale", type=float, default=0.75, help="the 2-scale variant's")
    args = p.parse_args(argv)
    cuda = pick_device(args.device).type == "cuda"
    args.count = args.count or (512 if cuda else (8 if args.quick else 24))
    args.batch = args.batch or (64 if cuda else 8)
    args.workers = (os.cpu_count() or 1) if cuda and args.workers is None else (args.workers or 0)
    args.repeats = args.repeats or (3 if args.quick else 5)
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    device = pick_device(args.device)
    from hgx.data import open_split
    from hgx.data.batch import collate, input_images
    from hgx.data.dataset import PoseDataset
    from hgx.engine.device import setup_runtime
    from hgx.engine.predict import PYRANET_SCALES, fuse_in_image, heatmaps_for, predict
    from hgx.models.hourglass import StackedHourglass

    stacks, features = (int(v) for v in args.model.lower().split("x"))
    opts = synthetic_options(args.size, args.people, input_res=args.res,
                             output_res=args.res // 4, device=device.type)
    runtime = setup_runtime(opts)  # flush denormals on CPU; cudnn benchmark, TF32 on CUDA
    dataset = open_split(opts, "valid", augment=False, log=lambda m: print(m, flush=True))
    count = min(args.count, len(dataset))
    torch.manual_seed(0)
    model = runtime.prepare(StackedHourglass(stacks=stacks, features=features,
                                             joints=dataset.skeleton.num_joints,
                                             depth=args.depth)).eval()
    variants = {"plain": (False, (1.0,)), "flip": (True, (1.0,)),
                "2scale": (False, (1.0, args.second_scale)),
                "flip+2scale": (True, (1.0, args.second_scale)),
                "pyranet": (True, PYRANET_SCALES)}

    def run(flip, scales):
        with contextlib.redirect_stdout(io.StringIO()):  # predict's plain progress lines
            return predict(model, dataset, runtime, batch=args.batch, flip=flip, scales=scales,
                           workers=args.workers, interactive=False, limit=count)

    # the network-only path: every scale's crops prepared once, on the device
    flip_index = dataset.skeleton.flip_index()
    crops, metas = {}, {}
    for scale in sorted({1.0, args.second_scale, *PYRANET_SCALES}):
        view = PoseDataset(dataset.annot, dataset.image_dir, dataset.skeleton, dataset.opts,
                           augment=False, seed=dataset.seed, scale_mult=scale)
        items = [view[(row, 0, row)] for row in range(count)]
        batches = [collate(items[i:i + args.batch]) for i in range(0, count, args.batch)]
        crops[scale] = [input_images(b.crops.to(runtime.device), b.colour.to(runtime.device),
                                     runtime.channels_last) for b in batches]
        metas[scale] = [b.meta for b in batches]

    @torch.no_grad()
    def network(flip, scales):
        for i in range(len(crops[1.0])):
            per_scale = [heatmaps_for(model, crops[s][i], runtime, flip, flip_index)
                         for s in scales]
            if len(scales) == 1:
                per_scale[0].cpu()  # the heatmaps reach the host, as in predict
                continue
            for b in range(per_scale[0].shape[0]):  # fused in the image, as in predict
                fuse_in_image([hm[b] for hm in per_scale],
                              [metas[s][i]["hm_to_image"][b] for s in scales],
                              metas[1.0][i]["image_size"][b])

    paths = {"end_to_end": run, "network": network}
    predicted = {name: run(*v).preds.shape[0] for name, v in variants.items()}  # warm-up
    for v in variants.values():
        network(*v)
    rates = {(p, name): [] for p in paths for name in variants}
    for _ in range(args.repeats):
        for p, fn in paths.items():
            for name, v in variants.items():
                sync(device)
                t0 = time.perf_counter()
                fn(*v)
                sync(device)
                rates[p, name].append(count / (time.perf_counter() - t0))

    results = {}
    for name, (flip, scales) in variants.items():
        passes = (2 if flip else 1) * len(scales)
        results[name] = {"flip": flip, "scales": list(scales), "forward_passes_per_img": passes,
                         "ideal_ratio": 1 / passes, "people": predicted[name]}
        for p in paths:
            results[name][p] = {
                "img_per_s": median(rates[p, name]),
                "ratio_vs_plain": median([ratio(a, b) for a, b in
                                          zip(rates[p, name], rates[p, "plain"])])}
    result = {"benchmark": "predict", "env": environment(device),
              "config": {"model": f"HG{stacks}-{features}", "depth": args.depth,
                         "res": args.res, "size": args.size, "count": count,
                         "batch": args.batch, "workers": args.workers,
                         "repeats": args.repeats, "quick": args.quick,
                         "precision": runtime.precision, "channels_last": runtime.channels_last},
              "variants": results}
    report(result)
    return emit(result, args.json)


def report(r: dict) -> None:
    c = r["config"]
    print(f"\npredict on {r['env'].get('gpu', r['env']['device'])}: {c['model']} "
          f"({c['precision']}, channels_last {c['channels_last']}), {c['count']} people of "
          f"{c['size']} images, batch {c['batch']}, {c['workers']} workers, {c['repeats']} "
          f"repeats (medians; ratios paired within each repeat, baseline: plain)")
    rows = [[name, d["forward_passes_per_img"], d["end_to_end"]["img_per_s"],
             d["end_to_end"]["ratio_vs_plain"], d["network"]["img_per_s"],
             d["network"]["ratio_vs_plain"], d["ideal_ratio"]]
            for name, d in r["variants"].items()]
    print(table(["variant", "passes/img", "predict() img/s", "x plain", "network img/s",
                 "x plain", "ideal x"], rows))


if __name__ == "__main__":
    main()

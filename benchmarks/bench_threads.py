"""CPU threads and loader workers of a training run, on a quiet machine and beside one busy
process: what `hgx new` chooses (`--threads 0 --workers -1`) against fixed choices.

    python benchmarks/bench_threads.py [--quick] [--json OUT]

Each configuration trains the demo's network (`experiments/demo.yaml`: HG2 x 64 features,
128 px input, batch 16, RMSprop, --precision auto) on the demo's synthetic set with hgx's own
training path (loader workers, `batch.to_device`, forward, loss, backward, step), in a fresh
process (torch's thread pool is fixed per process), for a fixed number of steps after a
warm-up; img/s counts the timed steps. "busy" runs the same with one other process spinning on
a core all along (`python -c "while True: pass"`), the situation of a laptop with a browser or
a second experiment running. Loader workers: the demo's (1) unless a row says otherwise.
Ratios are against hgx before this change (torch's default threads: one per core), paired per
repeat (A/B of the same repeat), median over repeats.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from common import REPO, base_parser, emit, environment, median, table

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {repo!r})
import torch
from hgx import options as hopts
from hgx.data import open_split
from hgx.data.batch import to_device
from hgx.data.dataset import EpochSampler
from hgx.engine.device import loader_workers, setup_runtime
from hgx.data.loader import make_loader
from hgx.engine.state import seed_everything
from hgx.engine.train import heatmap_loss, make_optimizer
from hgx.models import build_model

cfg = json.loads(sys.argv[1])
opts = hopts.resolve(hopts.load_preset("demo"), None, cfg["opts"])
runtime = setup_runtime(opts)
policy = None
if not opts.threads:  # what the Trainer does with --threads 0 on the CPU
    from hgx.engine.cpushare import ThreadPolicy
    policy = ThreadPolicy()
workers = loader_workers(opts.workers, runtime.device)
ds = open_split(opts, "train", augment=True)
seed_everything(0)
model = runtime.prepare(build_model(opts, 16)).train()
opt = make_optimizer(opts, model.parameters())
steps, warm = cfg["steps"], cfg["warmup"]
sampler = EpochSampler(len(ds), opts.batch_size, steps + warm, 0, shuffle=True)
loader = make_loader(ds, sampler, opts.batch_size, workers, runtime.device.type == "cuda")
t0 = None
for i, batch in enumerate(loader):
    if i == warm:
        t0 = time.perf_counter()
    images, heatmaps = to_device(batch, runtime.device, runtime.channels_last,
                                 opts.output_res, opts.hm_sigma)
    with runtime.autocast():
        out = model(images)
    loss = heatmap_loss(out, heatmaps)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    loss.item()
    if policy is not None:
        policy.maybe_adjust()
elapsed = time.perf_counter() - t0
print(json.dumps({{"img_per_s": steps * opts.batch_size / elapsed,
                   "threads": torch.get_num_threads(), "workers": workers,
                   "precision": runtime.precision}}))
"""


def run(config: dict, steps: int, warmup: int) -> dict:
    code = CHILD.format(repo=str(REPO))
    payload = json.dumps({"opts": config, "steps": steps, "warmup": warmup})
    out = subprocess.run([sys.executable, "-c", code, payload], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"configuration {config} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = base_parser(__doc__.split("\n")[0])
    args = p.parse_args(argv)
    steps, warmup = (12, 3) if args.quick else (40, 5)
    repeats = args.repeats or (1 if args.quick else 3)
    # the synthetic set is made once, before anything is timed
    run({"threads": 1, "workers": 0}, 1, 1)
    configs = {
        "torch's default threads (before)": {"threads": os.cpu_count() or 1},
        "hgx: --threads 0 (free cores)": {},
        "1 thread": {"threads": 1},
        "torch's default threads, no workers": {"threads": os.cpu_count() or 1, "workers": 0},
    }
    base = next(iter(configs))
    rates = {(k, busy): [] for k in configs for busy in (False, True)}
    seen = {}
    for _ in range(repeats):
        for busy in (False, True):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                if hog is not None:
                    time.sleep(1.0)
                for name, cfg in configs.items():
                    got = run(cfg, steps, warmup)
                    rates[(name, busy)].append(got["img_per_s"])
                    seen[(name, busy)] = got
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    rows, result = [], {"benchmark": "threads", "steps": steps, "repeats": repeats,
                        "environment": environment(), "configs": {}}
    for name in configs:
        entry = {"workers": seen[(name, False)]["workers"],
                 "precision": seen[(name, False)]["precision"]}
        for busy in (False, True):
            key = "busy" if busy else "quiet"
            ratios = [a / b for a, b in zip(rates[(name, busy)], rates[(base, busy)])]
            entry[f"{key}_threads"] = seen[(name, busy)]["threads"]
            entry[f"{key}_img_per_s"] = median(rates[(name, busy)])
            entry[f"{key}_x_before"] = median(ratios)
        result["configs"][name] = entry
        rows.append([name, entry["workers"], entry["quiet_threads"],
                     f"{entry['quiet_img_per_s']:.1f}", f"{entry['quiet_x_before']:.2f}",
                     entry["busy_threads"], f"{entry['busy_img_per_s']:.1f}",
                     f"{entry['busy_x_before']:.2f}"])
    print(f"demo training step ({seen[(base, False)]['precision']}), {steps} steps x "
          f"{repeats} repeats; busy = one other process spinning on a core")
    print(table(["configuration", "workers", "quiet: threads", "img/s", "x before",
                 "busy: threads", "img/s", "x before"], rows))
    emit(result, args.json)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

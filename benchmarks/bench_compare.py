"""How long `hgx compare` takes over many runs: 50 experiments x 200 epochs (issue: "about a
second or two").

Makes realistic fake experiment directories in a temporary directory (options.yaml,
experiment.yaml with lineage, state.json, history.jsonl, train.log and valid.log in hgx's
formats; 10 roots and 40 branches forking from them at various epochs), then times:

  baseline   reading the 100 log files (read_tsv, the cheapest possible look at the data)
  load       hgx.compare.load_runs: options, lineage, state and both logs of every run
  load_table + the comparison table (differing options, best accuracy...)
  compare    end to end as `hgx compare` does it: load + table + figure + writing the PNG
  cli        the command itself in a fresh process (`hgx compare DIR --out F.png`), which adds
             Python, typer, rich and matplotlib start-up

and prints a table and one `JSON: {...}` line (benchmarks/common.py's conventions), each time
the median of --repeats runs after a warm-up, with its ratio to the baseline.

    python benchmarks/bench_compare.py [--runs 50] [--epochs 200] [--repeats 3] [--keep DIR]
                                       [--quick] [--json OUT]

Measured on the project's 2-core CI machine (CPU only, Python 3.11, matplotlib 3.11; other jobs
running, load average ~3), median of 3:

    read the 100 logs  [baseline]                0.042       1.000
    load runs (options, lineage, state, logs)    0.093       2.207
    load + table                                 0.098       2.317
    compare: load + table + figure + PNG         0.672      15.958
    compare --ancestry                           0.779      18.507
    `hgx compare` in a new process               1.493      35.458

Most of `compare` is matplotlib rendering 200 lines of 200 points into the PNG (~0.4 s); the
figure uses a fixed layout because constrained layout alone cost ~0.35 s more.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import base_parser, emit, environment, median, ratio, table, timed

from hgx import options as hopts
from hgx.experiment import TRAIN_COLUMNS, VALID_COLUMNS
from hgx.files import format_tsv, read_tsv


def make_runs(root: Path, runs: int = 50, epochs: int = 200, seed: int = 0) -> list[str]:
    """``runs`` fake experiments of ``epochs`` epochs each: a fifth are roots, the others
    branch from one of them (or from a branch) at some epoch with another lr. Returns names."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    roots = max(1, runs // 5)
    names, info = [], {}
    for i in range(runs):
        if i < roots:
            name, parent, start = f"hg-{i:02d}", None, 0
            opts = hopts.defaults() | {"epochs": epochs, "lr": float(rng.choice([2.5e-4, 1e-4])),
                                       "batch_size": int(rng.choice([6, 8])),
                                       "stacks": int(rng.choice([2, 4, 8]))}
            a0, l0 = 0.0, 0.008
        else:
            parent = names[int(rng.integers(0, len(names)))]
            start = int(rng.integers(info[parent]["start"] + 1, info[parent]["end"]))
            name = f"hg-{i:02d}"
            opts = dict(info[parent]["options"]) | {
                "lr": float(rng.choice([1e-5, 5e-5, 1e-4])), "epochs": start + epochs}
            a0, l0 = info[parent]["acc"](start), info[parent]["loss"](start)
        # a smooth curve from (start, a0) towards a ceiling, plus noise
        ceiling = min(0.92, a0 + rng.uniform(0.1, 0.8) * (0.92 - a0))
        floor = 0.0035 + rng.uniform(0.0, 0.6) * (l0 - 0.0035)
        rate = rng.uniform(0.01, 0.04) * (1 if parent is None else 3)

        def acc_f(e, a0=a0, ceiling=ceiling, rate=rate, start=start):
            return a0 + (ceiling - a0) * (1 - np.exp(-rate * (np.asarray(e) - start)))

        def loss_f(e, l0=l0, floor=floor, rate=rate, start=start):
            return floor + (l0 - floor) * np.exp(-rate * (np.asarray(e) - start))

        d = root / name
        (d / "snapshots").mkdir(parents=True)
        (d / "options.yaml").write_text(hopts.dump_yaml(opts))
        lineage = None if parent is None else {
            "name": parent, "path": str((root / parent).resolve()), "epoch": start,
            "iteration": 0, "snapshot": f"epoch-{start:04d}.pt"}
        (d / "experiment.yaml").write_text(hopts.yaml.safe_dump(
            {"name": name, "created": "2026-01-01T00:00:00+00:00", "hgx_version": "0.1.0",
             "parent": lineage}, sort_keys=False))
        (d / "history.jsonl").write_text(json.dumps({"command": "new" if parent is None
                                                     else "branch", "overrides": {}}) + "\n")
        ep = np.arange(start + 1, start + epochs + 1)
        acc = acc_f(ep) + rng.normal(0, 0.008, len(ep))
        vloss = loss_f(ep) * (1 + rng.normal(0, 0.01, len(ep)))
        train = [{"epoch": int(e), "iters": 8000, "loss": float(vl * 0.95), "acc": float(a + 0.03),
                  "lr": opts["lr"], "seconds": 1800.0, "img_per_s": 26.7}
                 for e, a, vl in zip(ep, acc, vloss)]
        valid = [{"epoch": int(e), "loss": float(vl), "acc": float(a), "pckh": float(100 * a),
                  "seconds": 120.0} for e, a, vl in zip(ep, acc, vloss)]
        (d / "train.log").write_text(format_tsv(TRAIN_COLUMNS, train))
        (d / "valid.log").write_text(format_tsv(VALID_COLUMNS, valid))
        best = int(np.argmax(acc))
        (d / "state.json").write_text(json.dumps({
            "epochs_done": int(ep[-1]), "iteration": 0, "global_step": int(ep[-1]) * 8000,
            "last_snapshot": f"snapshots/epoch-{int(ep[-1]):04d}.pt",
            "best_snapshot": "snapshots/best.pt", "best_acc": float(acc[best]),
            "best_epoch": int(ep[best]), "finished": True, "precision": "fp32"}, indent=1))
        names.append(name)
        info[name] = {"options": opts, "start": start, "end": int(ep[-1]), "acc": acc_f,
                      "loss": loss_f}
    return names


def main(argv=None) -> dict:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--keep", metavar="DIR", help="make the runs in DIR and keep them")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.epochs = min(args.runs, 10), min(args.epochs, 30)
    repeats = args.repeats or (1 if args.quick else 3)

    from hgx import compare as cmp
    from hgx.compare.figure import compare_figure  # noqa: F401  (import time is not what we measure)

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hgx-bench-compare-"))
    try:
        root = tmp / "exp"
        t = time.perf_counter()
        names = make_runs(root, args.runs, args.epochs)
        made = time.perf_counter() - t
        logs = [root / n / f for n in names for f in ("train.log", "valid.log")]
        out = tmp / "compare.png"
        dirs = [str(root / n) for n in names]
        env = dict(os.environ, MPLBACKEND="Agg")
        steps = {
            "baseline_read_logs": lambda: [read_tsv(p) for p in logs],
            "load": lambda: cmp.load_runs(dirs),
            "load_table": lambda: cmp.table_data(cmp.load_runs(dirs)),
            "compare": lambda: cmp.compare(dirs, out=out),
            "compare_ancestry": lambda: cmp.compare(dirs, out=out, ancestry=True),
            "cli": lambda: subprocess.run(
                [sys.executable, "-m", "hgx", "compare", str(root), "--out", str(out)],
                check=True, capture_output=True, env=env, cwd=tmp),
        }
        # a new process each time: the command needs no warm-up run
        seconds = {k: median(timed(fn, repeats, warmup=0 if k == "cli" else 1))
                   for k, fn in steps.items()}
        png_kib = out.stat().st_size / 1024
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    base = seconds["baseline_read_logs"]
    labels = {"baseline_read_logs": f"read the {len(logs)} logs  [baseline]",
              "load": "load runs (options, lineage, state, logs)",
              "load_table": "load + table",
              "compare": "compare: load + table + figure + PNG",
              "compare_ancestry": "compare --ancestry",
              "cli": "`hgx compare` in a new process"}
    print(f"{len(names)} runs x {args.epochs} epochs (made in {made:.1f}s); median of "
          f"{repeats}; PNG {png_kib:.0f} KiB")
    print(table(["step", "seconds", "x baseline"],
                [[labels[k], v, ratio(v, base)] for k, v in seconds.items()], digits=3))
    result = {
        "benchmark": "compare",
        "env": environment(),
        "config": {"runs": len(names), "epochs": args.epochs, "repeats": repeats,
                   "quick": args.quick, "png_kib": png_kib},
        "seconds": seconds,
        "ratio_vs_baseline": {k: ratio(v, base) for k, v in seconds.items()},
        "target_seconds": 2.0,
    }
    result["meets_target"] = bool(seconds["compare"] <= result["target_seconds"])
    return emit(result, args.json)


if __name__ == "__main__":
    main()

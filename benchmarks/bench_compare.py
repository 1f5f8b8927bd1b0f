"""How long `hgx compare` takes over many runs: 50 experiments x 200 epochs (issue: "about a
second or two").

Makes realistic fake experiment directories in a temporary directory (options.yaml,
experiment.yaml with lineage, state.json, history.jsonl, train.log and valid.log in hgx's
formats; 10 roots and 40 branches forking from them at various epochs), then times, each the
best of --repeat runs in this process:

  baseline   reading the 100 log files (read_tsv, the cheapest possible look at the data)
  load       hgx.compare.load_runs: options, lineage, state and both logs of every run
  table      + the comparison table (differing options, best accuracy...)
  compare    end to end as `hgx compare` does it: load + table + figure + writing the PNG
  cli        the command itself in a fresh process (`hgx compare DIR --out F.png`), which adds
             Python, typer, rich and matplotlib start-up

and prints a table and one JSON line, with each time as a ratio to the baseline.

    python benchmarks/bench_compare.py [--runs 50] [--epochs 200] [--repeat 3] [--keep DIR]

Measured on the project's 2-core CI machine (CPU only, Python 3.11, matplotlib 3.11; other jobs
running, load average ~4), best of 3:

    baseline: read 2x50 logs                  0.042 s     1.0
    load runs                                 0.091 s     2.1
    load + table                              0.097 s     2.3
    compare (load + table + figure + PNG)     0.622 s    14.6
    compare --ancestry                        0.740 s    17.4
    `hgx compare` in a new process            1.409 s    33.2

Most of `compare` is matplotlib rendering 200 lines of 200 points into the PNG (~0.4 s); the
figure uses a fixed layout because constrained layout alone cost ~0.35 s more.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hgx import options as hopts  # noqa: E402
from hgx.experiment import TRAIN_COLUMNS, VALID_COLUMNS, format_tsv, read_tsv  # noqa: E402


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


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="make the runs in this directory and keep them")
    args = ap.parse_args()

    from hgx import compare as cmp
    from hgx.plots import compare_figure  # noqa: F401  (import time is not what we measure)

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hgx-bench-compare-"))
    try:
        root = tmp / "exp"
        t = time.perf_counter()
        names = make_runs(root, args.runs, args.epochs)
        made = time.perf_counter() - t
        logs = [root / n / f for n in names for f in ("train.log", "valid.log")]
        out = tmp / "compare.png"
        dirs = [str(root / n) for n in names]

        baseline = best_of(lambda: [read_tsv(p) for p in logs], args.repeat)
        load = best_of(lambda: cmp.load_runs(dirs), args.repeat)
        table = best_of(lambda: cmp.table_data(cmp.load_runs(dirs)), args.repeat)
        full = best_of(lambda: cmp.compare(dirs, out=out), args.repeat)
        anc = best_of(lambda: cmp.compare(dirs, out=out, ancestry=True), args.repeat)
        env = dict(os.environ, MPLBACKEND="Agg")
        cli = best_of(lambda: subprocess.run(
            [sys.executable, "-m", "hgx", "compare", str(root), "--out", str(out)],
            check=True, capture_output=True, env=env, cwd=tmp), args.repeat)
        png_kib = out.stat().st_size / 1024

        rows = [("baseline: read 2x%d logs" % len(names), baseline),
                ("load runs", load), ("load + table", table),
                ("compare (load + table + figure + PNG)", full),
                ("compare --ancestry", anc),
                ("`hgx compare` in a new process", cli)]
        print(f"{len(names)} runs x {args.epochs} epochs ({sum(1 for _ in logs)} logs, made in "
              f"{made:.1f}s); best of {args.repeat}; PNG {png_kib:.0f} KiB")
        print(f"{'step':<42}{'seconds':>9}{'x baseline':>12}")
        for label, sec in rows:
            print(f"{label:<42}{sec:>9.3f}{sec / baseline:>12.1f}")
        print(json.dumps({"runs": len(names), "epochs": args.epochs, "repeat": args.repeat,
                          "baseline_read_logs_s": round(baseline, 4),
                          "load_s": round(load, 4), "load_table_s": round(table, 4),
                          "compare_s": round(full, 4), "compare_ancestry_s": round(anc, 4),
                          "cli_s": round(cli, 4),
                          "compare_over_baseline": round(full / baseline, 1),
                          "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

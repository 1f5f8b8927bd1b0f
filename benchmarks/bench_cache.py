"""Crop cache vs photographs: training samples/s of one process, and how close the samples are.

    python benchmarks/bench_cache.py [--quick] [--json OUT]

Baseline (same run): hgx's training sample decoded from the 1280x720 synthetic photographs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer people and samples")
    ap.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args(argv)

    from hgx import options as hopts
    from hgx.data import open_split
    from hgx.data.cache import build, cache_dir
    from hgx.data.synth import ensure_synthetic

    people, samples, repeats = (200, 100, 3) if args.quick else (1000, 300, 3)
    data = ensure_synthetic(0, (1280, 720), people, 200, 200)
    opts = hopts.resolve(None, None, {"data_dir": str(data)})
    t = time.perf_counter()
    build(data, opts, ("train",))
    build_s = time.perf_counter() - t
    plain = open_split(opts, "train", augment=True)
    cached = open_split(hopts.resolve(None, None, {"data_dir": str(data), "crop_cache": True}),
                        "train", augment=True)
    keys = [(i * 7 % len(plain), 1, i) for i in range(samples)]
    for ds in (plain, cached):  # warm-up: page cache, buffers
        for k in keys[:20]:
            ds[k]
    rates: dict[str, list[float]] = {"photos": [], "cache": []}
    for _ in range(repeats):  # interleaved, medians
        for name, ds in (("photos", plain), ("cache", cached)):
            t = time.perf_counter()
            for k in keys:
                ds[k]
            rates[name].append(len(keys) / (time.perf_counter() - t))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    diff = float(np.mean([np.abs(plain.example(k)[0] - cached.example(k)[0]).mean() for k in keys[:50]]))
    du = lambda p: subprocess.run(["du", "-sm", str(p)], capture_output=True,  # noqa: E731
                                  text=True).stdout.split()[0]
    result = {"benchmark": "cache", "people": people, "samples": samples,
              "photos_per_s": med["photos"], "cache_per_s": med["cache"],
              "ratio_cache_vs_photos": med["cache"] / med["photos"],
              "mean_abs_pixel_diff": diff, "build_seconds": build_s,
              "cache_mb": float(du(cache_dir(data, opts.input_res) / "train")),
              "images_mb": float(du(data / "images"))}
    print(f"{'pipeline':<28}{'samples/s':>10}{'x photos':>10}")
    print(f"{'photos [baseline]':<28}{med['photos']:>10.0f}{1.0:>10.2f}")
    print(f"{'crop cache':<28}{med['cache']:>10.0f}{result['ratio_cache_vs_photos']:>10.2f}")
    print(f"mean |pixel difference| (0..1 scale): {diff:.4f}; cache built in {build_s:.1f}s")
    print("JSON:", json.dumps(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

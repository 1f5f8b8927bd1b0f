"""The benchmark scripts run end to end in their tiniest mode and emit their JSON keys.

No timing is asserted: these only prove that benchmarks/*.py still work against hgx's code.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(cache_dir, monkeypatch):
    """Import benchmarks/<name>.py as a module (its folder on sys.path, as when run)."""
    monkeypatch.syspath_prepend(str(BENCH))

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return load


def run(module, args, tmp_path, capsys) -> dict:
    out = tmp_path / "result.json"
    result = module.main([*args, "--device", "cpu", "--json", str(out)])
    printed = capsys.readouterr().out
    blob = [line for line in printed.splitlines() if line.startswith("JSON: ")]
    assert len(blob) == 1, printed
    assert json.loads(blob[0][len("JSON: "):]) == json.loads(out.read_text())
    assert json.loads(out.read_text())["benchmark"] == result["benchmark"]
    assert {"env", "config"} <= result.keys()
    return result


def test_bench_loader(bench, tmp_path, capsys):
    r = run(bench("bench_loader"), ["--size", "160x120", "--people", "8", "--samples", "4",
                                    "--repeats", "1", "--workers", "1", "--batch", "2",
                                    "--input-res", "64", "--output-res", "16"], tmp_path, capsys)
    assert r["config"]["mean_file_kb"] > 0
    for part in ("one_process", "n_workers"):
        for key in ("imread_per_s", "hgx_per_s", "ratio_hgx_vs_imread",
                    "ratio_imread_buffer_vs_imread", "ratio_wi_float_out_vs_imread"):
            assert r[part][key] > 0, (part, key)
    assert r["n_workers"]["hgx_per_s_per_worker"] > 0
    assert r["one_process"]["ratio_imread_reduced_2_vs_imread"] > 0
    assert r["one_process"]["ratio_hgx_malloc_vs_imread"] > 0
    b = r["breakdown"]
    assert b["mirrors_dataset"] is True  # the staged copy still matches PoseDataset.sample
    assert 0 < b["crop_bbox_area_share"] <= 1
    for name in ("hgx", "wi_float_out"):
        assert set(b[name]["ms"]) == {"augment", "decode", "warp", "labels", "meta",
                                      "float_out", "finish"}
        assert b[name]["total_ms"] > 0 and b[name]["bytes_out_per_sample"] > 0
    # the compact sample: uint8 crop + joints, a fifth of the float image + heatmaps
    assert b["hgx"]["bytes_out_per_sample"] * 4 < b["wi_float_out"]["bytes_out_per_sample"]
    assert isinstance(r["meets_target"], bool) and r["target_ratio"] == 0.9


def test_bench_train_step(bench, tmp_path, capsys):
    r = run(bench("bench_train_step"), ["--models", "1x8", "--depth", "1", "--res", "32",
                                        "--batch", "2", "--steps", "1", "--repeats", "1",
                                        "--warmup", "0", "--roofline"], tmp_path, capsys)
    m = r["models"]["HG1-8"]
    assert m["flops_per_img_step"] > m["flops_per_img_forward"] > 0 and m["params"] > 0
    assert set(m["variants"]) == {"fp32", "channels_last"}
    for v in m["variants"].values():
        assert v["img_per_s"] > 0 and v["ratio_vs_fp32"] > 0 and v["loss_finite"]
        assert {"peak_mib", "tflops", "pct_of_peak", "step_ms", "first_step_s"} <= v.keys()
    assert m["roofline"]["conv_img_per_s"] > 0 and m["roofline"]["distinct_conv_shapes"] > 0


def test_bench_predict(bench, tmp_path, capsys):
    r = run(bench("bench_predict"), ["--model", "1x8", "--depth", "1", "--res", "32",
                                     "--size", "160x120", "--people", "8", "--count", "2",
                                     "--batch", "2", "--repeats", "1"], tmp_path, capsys)
    assert set(r["variants"]) == {"plain", "flip", "2scale", "flip+2scale", "pyranet"}
    for v in r["variants"].values():
        assert v["people"] == 2
        for path in ("end_to_end", "network"):
            assert v[path]["img_per_s"] > 0 and v[path]["ratio_vs_plain"] > 0
    assert r["variants"]["flip+2scale"]["forward_passes_per_img"] == 4
    assert r["variants"]["pyranet"]["forward_passes_per_img"] == 12


def test_bench_prune(bench, tmp_path, capsys):
    r = run(bench("bench_prune"), ["--stacks", "1", "--features", "8", "--depth", "1",
                                   "--res", "32", "--batch", "2", "--iters", "1",
                                   "--repeats", "2"], tmp_path, capsys)
    assert r["new"]["parameters"] < r["old"]["parameters"]
    assert r["new"]["flops_per_image"] < r["old"]["flops_per_image"]
    assert 0 < r["ratio_parameters"] < 1 and 0 < r["ratio_flops"] < 1
    assert r["ratio_img_per_s"] > 0 and len(r["old"]["img_per_s_runs"]) == 2
    assert r["old"]["block_widths"] == [] and r["new"]["block_widths"]


def test_bench_models(bench, tmp_path, capsys):
    r = run(bench("bench_models"), ["--models", "mpii-prm2,mpii-sagan", "--features", "16",
                                    "--depth", "2", "--res", "64", "--batch", "2",
                                    "--repeats", "1", "--threads", "1"], tmp_path, capsys)
    assert set(r["models"]) == {"mpii-prm2", "mpii-sagan"}
    for m in r["models"].values():
        assert m["baseline"] == "hg2" and m["loss_finite"]
        assert m["params"] != m["baseline_params"]
        assert m["gflops_per_img"] > 0 and m["flops_ratio_vs_hg"] > 0
        assert m["img_per_s"] > 0 and m["ratio_vs_hg"] > 0

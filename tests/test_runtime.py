"""Where and how the network runs: --precision auto, and CPU threads that never oversubscribe."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY
from hgx.engine import cpushare, device


@pytest.mark.parametrize("native,expect", [(True, "bf16"), (False, "fp32")])
def test_precision_auto_follows_the_cpu(monkeypatch, native, expect):
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native)
    assert device.choose_precision("auto", torch.device("cpu")) == expect
    assert device.choose_precision("auto", torch.device("cuda")) == "bf16"
    assert device.choose_precision("fp32", torch.device("cuda")) == "fp32"
    assert device.choose_precision("bf16", torch.device("cpu")) == "bf16"


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    real_open = open

    def fake(flags):
        def opener(path, *a, **k):
            if path == "/proc/cpuinfo":
                p = tmp_path / "cpuinfo"
                p.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
                return real_open(p, *a, **k)
            return real_open(path, *a, **k)
        return opener

    monkeypatch.setattr("builtins.open", fake("avx2 avx512f avx512_bf16"))
    assert device.cpu_has_native_bf16()
    monkeypatch.setattr("builtins.open", fake("avx2 amx_tile amx_bf16"))
    assert device.cpu_has_native_bf16()
    monkeypatch.setattr("builtins.open", fake("avx2 avx512f"))
    assert not device.cpu_has_native_bf16()


def test_the_precision_is_recorded_and_bf16_trains(hgx):
    code, out = hgx("new", "b", *TINY, "--epochs", "1", "--precision", "bf16")
    assert code == 0, out
    assert json.loads((hgx.root / "b" / "state.json").read_text())["precision"] == "bf16"
    code, out = hgx("new", "f", *TINY, "--epochs", "1", "--precision", "fp32")
    assert json.loads((hgx.root / "f" / "state.json").read_text())["precision"] == "fp32"


def test_threads_leave_room_for_other_processes_and_our_workers():
    share = cpushare.CpuShare()
    share.cores = 2
    assert share.threads(0.0, 0.0) == 2          # a quiet machine: every core
    assert share.threads(0.1, 0.16) == 2         # light background, one light worker
    assert share.threads(0.67, 0.0) == 1         # a busy process sharing with our 2 threads
    assert share.threads(1.0, 0.16) == 1         # a busy process on its own core
    assert share.threads(2.0, 0.5) == 1          # never below one
    share.cores = 16
    assert share.threads(3.2, 1.9) == 11


def test_the_policy_adjusts_torch_threads(monkeypatch):
    """ThreadPolicy sets torch's threads to the free cores at the start and after each
    re-check (the machine's load is faked; the arithmetic is the test above's)."""
    before = torch.get_num_threads()
    seen = iter([(0.9, 0.0), (0.0, 0.1)])
    monkeypatch.setattr(cpushare.CpuShare, "measure", lambda self: next(seen))
    monkeypatch.setattr(cpushare, "_machine_busy", lambda: 1.0)
    monkeypatch.setattr(cpushare, "available_cores", lambda: 2)
    notes = []
    torch.set_num_threads(2)
    try:
        policy = cpushare.ThreadPolicy(log=notes.append, probe_seconds=0.0)
        assert torch.get_num_threads() == 1 and "busy elsewhere" in notes[-1]
        policy.last -= cpushare.RECHECK_SECONDS + 1
        policy.maybe_adjust()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_measuring_the_machine_gives_sane_numbers():
    share = cpushare.CpuShare()
    if not share.enabled:
        pytest.skip("no /proc/stat on this system")
    sum(i * i for i in range(200000))  # some work of our own
    others, workers = share.measure()
    assert 0.0 <= others <= share.cores + 1e-6 and workers >= 0.0

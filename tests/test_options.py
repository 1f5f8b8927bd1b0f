"""The option schema: defaults, validation, precedence, and the CLI derived from it."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import TINY
from hgx import options as hopts
from hgx.errors import UsageError


def test_defaults_are_pose_hg_train():
    d = hopts.defaults()
    assert (d["optimizer"], d["lr"], d["alpha"], d["epsilon"]) == ("rmsprop", 2.5e-4, 0.99, 1e-8)
    assert (d["stacks"], d["features"], d["modules"]) == (8, 256, 1)
    assert (d["input_res"], d["output_res"], d["batch_size"]) == (256, 64, 6)


def test_precedence_defaults_preset_parent_typed():
    preset = {"lr": 1e-3, "batch_size": 16, "stacks": 2}
    parent = {**hopts.defaults(), **preset, "batch_size": 8}
    opts = hopts.resolve(preset, parent, {"lr": 5e-5})
    assert opts.lr == 5e-5          # typed beats everything
    assert opts.batch_size == 8     # parent beats preset
    assert opts.stacks == 2         # preset beats defaults
    assert opts.momentum == 0.0     # default


@pytest.mark.parametrize("name,value,fragment", [
    ("lr", "abc", "expected a number"), ("stacks", "0", "below the minimum"),
    ("optimizer", "adagrad", "not one of"), ("batch_size", "2.5", "expected an integer"),
    ("lr", "nan", "expected a number"), ("schedule", "60 x", "list of ints"),
    ("device", "tpu", "not auto, cpu"),
])
def test_bad_values_are_named(name, value, fragment):
    with pytest.raises(UsageError, match=fragment):
        hopts.coerce(name, value)


def test_every_option_is_a_flag_of_new_continue_branch():
    # typer's own test runner: typer 0.29 vendors click and no longer installs it
    from typer.main import get_command
    from typer.testing import CliRunner

    from hgx.cli import app

    cmd = get_command(app)
    for sub in ("new", "continue", "branch"):
        flags = {o for p in cmd.commands[sub].params for o in p.opts}
        assert {o.flag for o in hopts.SCHEMA} <= flags
    assert "--schedule" in CliRunner().invoke(app, ["new", "--help"]).output


def test_options_yaml_round_trips():
    d = hopts.defaults()
    d["schedule"] = [60, 90]
    assert yaml.safe_load(hopts.dump_yaml(d)) == d


def test_preset_then_typed(hgx, tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("# my preset\nlr: 0.001\nmomentum: 0.3\n")
    code, out = hgx("new", "p", *TINY, "--epochs", "1", "--preset", str(preset), "--lr", "2e-3")
    assert code == 0, out
    opts = yaml.safe_load((hgx.root / "p" / "options.yaml").read_text())
    assert opts["lr"] == 2e-3 and opts["momentum"] == 0.3
    code, out = hgx("continue", "p", "--epochs", "2")
    opts = yaml.safe_load((hgx.root / "p" / "options.yaml").read_text())
    assert opts["lr"] == 2e-3 and opts["momentum"] == 0.3  # the parent's, not the preset's


def test_schedule_takes_several_values(hgx):
    code, out = hgx("new", "s", *TINY, "--epochs", "3", "--schedule", "1", "2", "--gamma", "0.5")
    assert code == 0, out
    from hgx.files import read_tsv

    assert [r["lr"] for r in read_tsv(hgx.root / "s" / "train.log")] == [2.5e-4, 1.25e-4, 6.25e-5]


@pytest.mark.parametrize("args,code,fragment", [
    (["new", "x", "--lr", "abc"], 2, "--lr: expected a number"),
    (["new", "x", "--lrr", "1"], 2, "No such option"),
    (["new", "x", "--preset", "nope"], 2, "preset 'nope' not found"),
    (["new", "../x"], 2, "invalid experiment name"),
    (["new", ""], 2, "invalid experiment name"),
    (["continue", "ghost"], 1, "no experiment 'ghost'"),
    (["new", "x", "--dataset", "mpii", "--data-dir", "/nonexistent"], 1, "not found"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, code, fragment):
    env = {"HGX_EXP_DIR": str(tmp_path / "exp"), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    res = subprocess.run([sys.executable, "-m", "hgx", *args], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert res.returncode == code, res.stderr
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "exp" / "x").exists()


def test_auto_workers_resolve_per_device_and_processes(monkeypatch):
    import os

    import torch

    from hgx import options as hopts
    from hgx.engine.device import loader_workers

    assert hopts.resolve().workers == -1  # auto by default
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loader_workers(-1, cpu) == 2 and loader_workers(0, cuda) == 0
    assert loader_workers(5, cpu) == 5
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert loader_workers(-1, cuda) == 15 and loader_workers(-1, cuda, 4) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)), raising=False)
    assert loader_workers(-1, cuda) == 16  # at most 16

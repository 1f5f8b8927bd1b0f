"""Presets: each is a commented YAML of options that differ from the defaults, and trains."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import TINY
from hgx import options as hopts

PRESETS = hopts.available_presets()


def test_the_issue_presets_exist():
    assert {"mpii-hg8", "mpii-hg2", "mpii-hg8-adam", "mpii-hg8-bearpaw", "flic-hg8", "lsp-hg8",
            "demo"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_a_commented_diff_from_defaults(name):
    path = hopts.presets_dir() / f"{name}.yaml"
    text = path.read_text()
    assert text.startswith("#"), "a preset names its source in a leading comment"
    values = hopts.load_preset(name)
    defaults = hopts.defaults()
    same = [k for k, v in values.items() if defaults[k] == v and k != "dataset"]
    assert not same, f"{name} repeats defaults: {same}"


def test_adam_preset_matches_pytorch_stacked_hourglass():
    p = hopts.load_preset("mpii-hg8-adam")
    assert (p["optimizer"], p["lr"], p["batch_size"]) == ("adam", 1e-3, 16)


def test_paper_preset_trains_on_an_mpii_layout_directory(hgx):
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    from hgx.data.synth import synth_cache_dir

    data = synth_cache_dir(0, (160, 120), 24, 8, 4)  # MPII layout
    code, out = hgx("new", "p", "--preset", "mpii-hg8", *TINY, "--epochs", "1", "--data-dir",
                    str(data))
    assert code == 0, out
    opts = yaml.safe_load((hgx.root / "p" / "options.yaml").read_text())
    assert opts["dataset"] == "mpii" and opts["optimizer"] == "rmsprop"

"""Presets: each is a commented YAML of options that differ from the defaults, and trains."""
from __future__ import annotations


import pytest
import yaml

from conftest import TINY, require_shared
from hgx import options as hopts

PRESETS = hopts.available_presets()


def test_the_issue_presets_exist():
    assert {"mpii-hg8", "mpii-hg2", "mpii-hg8-adam", "mpii-hg8-bearpaw", "flic-hg8", "lsp-hg8",
            "demo", "mpii-prm2", "mpii-prm8", "mpii-sagan", "mpii-lsp-sagan"} <= set(PRESETS)


def test_sagan_presets_train_adversarially_and_differ_only_in_data():
    mpii, lsp = hopts.load_preset("mpii-sagan"), hopts.load_preset("mpii-lsp-sagan")
    assert mpii["adversarial"] is True and mpii["arch"] == "hg-atten"
    assert (mpii["dataset"], lsp["dataset"]) == ("mpii", "mpii-lsp")
    assert {k: v for k, v in lsp.items() if k != "dataset"} == \
        {k: v for k, v in mpii.items() if k != "dataset"}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_a_commented_diff_from_defaults(name):
    path = hopts.presets_dir() / f"{name}.yaml"
    text = path.read_text()
    assert text.startswith("#"), "a preset names its source in a leading comment"
    values = hopts.load_preset(name)
    defaults = hopts.defaults()
    same = [k for k, v in values.items() if defaults[k] == v and k != "dataset"]
    assert not same, f"{name} repeats defaults: {same}"


@pytest.mark.parametrize("name,arch", [("mpii-prm2", "hg-prm"), ("mpii-prm8", "hg-prm"),
                                       ("mpii-sagan", "hg-atten")])
def test_family_presets_train_on_an_mpii_layout_directory(hgx, name, arch):
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    from hgx.data.synth import synth_cache_dir

    data = synth_cache_dir(0, (160, 120), 24, 8, 4)
    code, out = hgx("new", "p", "--preset", name, *TINY, "--epochs", "1", "--data-dir",
                    str(data), "--valid-batch-size", "4")
    assert code == 0, out
    opts = yaml.safe_load((hgx.root / "p" / "options.yaml").read_text())
    assert (opts["dataset"], opts["arch"], opts["init"]) == ("mpii", arch, "torch7")
    typed = {f[2:].replace("-", "_") for f in TINY if f.startswith("--")} | {"epochs",
                                                                          "valid_batch_size"}
    preset = hopts.load_preset(name)
    assert {k: opts[k] for k in preset if k not in typed} == \
        {k: v for k, v in preset.items() if k not in typed}


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


def test_pruning_fork_width_flags(hgx):
    code, out = hgx("new", "w", *TINY, "--epochs", "1", "--N", "4", "--M", "24")
    assert code == 0, out
    opts = yaml.safe_load((hgx.root / "w" / "options.yaml").read_text())
    assert (opts["mid"], opts["features"]) == (4, 24)
    import torch

    snap = torch.load(hgx.root / "w" / "snapshots" / "best.pt", weights_only=False)
    assert snap["model"]["hourglasses.0.up1.0.conv1.weight"].shape[:2] == (4, 24)


@pytest.mark.parametrize("peer,stem", [
    ("princeton_vl_pytorch_stacked_hourglass/checkpoint.pt", "original"),
    ("bearpaw_pytorch_pose/checkpoint.pth.tar", "bearpaw")])
def test_downloaded_model_path_new_then_eval(hgx, peer, stem):
    from conftest import SHARED

    path = SHARED / "fixtures/peer-checkpoints" / peer
    require_shared(path)
    code, out = hgx("new", "p", "--load-model", str(path), "--epochs", "1", "--train-iters", "1", "--valid-iters", "1",
                    "--batch-size", "2", "--input-res", "64", "--output-res", "16",
                    "--workers", "0", "--threads", "1", "--synth-size", "160x120",
                    "--synth-train", "24", "--synth-valid", "8", "--synth-test", "4")
    assert code == 0, out
    opts = yaml.safe_load((hgx.root / "p" / "options.yaml").read_text())
    assert (opts["stacks"], opts["features"], opts["stem"]) == (2, 64, stem)
    code, out = hgx("eval", "p", "--json")
    assert code == 0 and '"Mean"' in out

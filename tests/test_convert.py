"""Checkpoint import: hgx snapshots and the two peer layouts (shared/fixtures/peer-checkpoints)."""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import require_shared
import torch

from hgx.errors import HgxError
from hgx.models.loading import (BEARPAW, HGX, PRINCETON, build_from_checkpoint,
                                check_compatible, infer_hgx_arch, load_any_checkpoint)
from hgx.models.hourglass import StackedHourglass, count_parameters

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared/fixtures/peer-checkpoints"
PEERS = {
    PRINCETON: ("princeton_vl_pytorch_stacked_hourglass", "checkpoint.pt", "model.module."),
    BEARPAW: ("bearpaw_pytorch_pose", "checkpoint.pth.tar", "module."),
}
TOL = 1e-5


def peer_dir(source: str) -> Path:
    folder = FIXTURES / PEERS[source][0]
    require_shared(folder / PEERS[source][1])
    return folder


def peer_checkpoint(source: str) -> Path:
    return peer_dir(source) / PEERS[source][1]


def peer_meta(source: str) -> dict:
    return json.loads((peer_dir(source) / "meta.json").read_text())


def raw(source: str) -> dict:
    return torch.load(peer_checkpoint(source), map_location="cpu", weights_only=True)


_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def io_pair(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    if source not in _cache:
        folder = peer_dir(source)
        x = torch.load(folder / "input.pt", weights_only=True)["x_nchw"]
        y = torch.load(folder / "expected.pt", weights_only=True)["heatmaps"]
        _cache[source] = x.contiguous(), y
    return _cache[source]


def max_diff(model: torch.nn.Module, source: str, samples: int = 2) -> float:
    """Max abs difference to the peer's heatmaps (all stacks) on the first ``samples`` inputs.

    Eval-mode BatchNorm treats samples independently, so checks of a re-saved copy of the
    fixture use one sample to stay fast; the acceptance test uses the whole batch.
    """
    x, expected = io_pair(source)
    x, expected = x[:samples], expected[:, :samples]
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == expected.shape
    return (out - expected).abs().max().item()


def assert_loads_strictly(state_dict, arch) -> None:
    """``state_dict`` fits ``StackedHourglass(**arch)`` exactly (built on the meta device: fast)."""
    with torch.device("meta"):
        model = StackedHourglass(**arch)
    model.load_state_dict(state_dict, strict=True, assign=True)


both = pytest.mark.parametrize("source", [PRINCETON, BEARPAW])


# ---------------------------------------------------------------------------------------------
# Acceptance: the imported peer models reproduce the peers' heatmaps


@both
def test_peer_checkpoint_reproduces_peer_heatmaps(source):
    model, loaded = build_from_checkpoint(peer_checkpoint(source))
    assert loaded.source == source
    assert loaded.weights_only
    assert loaded.arch == dict(stacks=2, features=64, modules=1, joints=16, depth=4, mid=None,
                               stem="bearpaw" if source == BEARPAW else "original")
    assert loaded.extra["epoch"] == 1
    assert "optimizer" not in loaded.extra
    assert list(loaded.state_dict) == list(model.state_dict())
    assert max_diff(model, source) <= TOL


def test_bearpaw_metadata_kept():
    loaded = load_any_checkpoint(peer_checkpoint(BEARPAW))
    assert loaded.extra["arch"] == "hg"
    assert loaded.extra["best_acc"] == 0.0


@both
def test_detection_does_not_depend_on_file_name(source, tmp_path):
    other = tmp_path / "weights.bin"
    other.write_bytes(peer_checkpoint(source).read_bytes())
    assert load_any_checkpoint(other).source == source


def test_princeton_dead_skip_convs_are_dropped():
    sd = raw(PRINCETON)["state_dict"]
    loaded = load_any_checkpoint(peer_checkpoint(PRINCETON))
    # a skip conv (weight, bias) in every Residual, used or not: 3 in the stem + 14 per stack
    assert sum("skip_layer" in k for k in sd) == 2 * (3 + 2 * 14)
    # Only the stem's 64->128 and 128->64 residuals change width; every other skip is dead.
    assert sorted(k for k in loaded.state_dict if ".skip." in k) == [
        "stem.3.skip.bias", "stem.3.skip.weight", "stem.6.skip.bias", "stem.6.skip.weight"]
    assert torch.equal(loaded.state_dict["stem.3.skip.weight"],
                       sd["model.module.pre.1.skip_layer.conv.weight"])
    assert torch.equal(loaded.state_dict["stem.6.skip.bias"],
                       sd["model.module.pre.4.skip_layer.conv.bias"])


@both
def test_missing_num_batches_tracked_is_filled_in(source, tmp_path):
    ckpt = raw(source)
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items()
                          if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth.tar"
    torch.save(ckpt, path)
    model, loaded = build_from_checkpoint(path)
    nbt = [v for k, v in loaded.state_dict.items() if k.endswith("num_batches_tracked")]
    assert nbt and all(int(v) == 0 for v in nbt)
    assert max_diff(model, source, samples=1) <= TOL


@both
def test_legacy_serialization_loads(source, tmp_path):
    path = tmp_path / "legacy.pth.tar"
    torch.save(raw(source), path, _use_new_zipfile_serialization=False)
    model, loaded = build_from_checkpoint(path)
    assert loaded.source == source
    assert max_diff(model, source, samples=1) <= TOL


@both
def test_bare_state_dict_loads(source, tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(raw(source)["state_dict"], path)
    model, loaded = build_from_checkpoint(path)
    assert loaded.source == source and loaded.extra == {}
    assert max_diff(model, source, samples=1) <= TOL


@both
def test_unprefixed_state_dict_loads(source, tmp_path):
    prefix = PEERS[source][2]
    sd = {k[len(prefix):]: v for k, v in raw(source)["state_dict"].items()}
    path = tmp_path / "stripped.pt"
    torch.save(sd, path)
    assert load_any_checkpoint(path).source == source


@both
def test_known_layout_with_python_objects_falls_back_to_full_unpickling(source, tmp_path):
    ckpt = raw(source)
    ckpt["args"] = argparse.Namespace(lr=2.5e-4, stacks=2)  # rejected by weights_only=True
    path = tmp_path / "with_namespace.pth.tar"
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    model, loaded = build_from_checkpoint(path)
    assert not loaded.weights_only
    assert loaded.extra["args"] == {"lr": 2.5e-4, "stacks": 2}
    assert max_diff(model, source, samples=1) <= TOL


def test_unknown_file_with_python_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "mystery.pt"
    torch.save({"weights": {"a.weight": torch.zeros(2)}, "args": argparse.Namespace(x=1)}, path)
    with pytest.raises(HgxError, match="argparse.Namespace"):
        load_any_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# Arbitrary stack counts, num_blocks > 1, increase != 0 (synthesised from the fixture layouts)


def _renumber(sd: dict, source: str, stacks: int) -> dict:
    """The fixture state dict (2 stacks) extended or cut to ``stacks`` stacks."""
    stacked = (r"hgs|features|outs" if source == PRINCETON else r"hg|res|fc|score")
    merged = (r"merge_features|merge_preds" if source == PRINCETON else r"fc_|score_")
    prefix = PEERS[source][2]
    pat_s = re.compile(rf"^{re.escape(prefix)}({stacked})\.(\d+)\.(.*)$")
    pat_m = re.compile(rf"^{re.escape(prefix)}({merged})\.(\d+)\.(.*)$")
    out = {}
    for k, v in sd.items():
        ms, mm = pat_s.match(k), pat_m.match(k)
        if ms:
            if ms.group(2) == "0":
                for s in range(stacks):
                    out[f"{prefix}{ms.group(1)}.{s}.{ms.group(3)}"] = v.clone() + s
        elif mm:
            for s in range(stacks - 1):
                out[f"{prefix}{mm.group(1)}.{s}.{mm.group(3)}"] = v.clone() + s
        else:
            out[k] = v
    return out


@both
@pytest.mark.parametrize("stacks", [1, 3, 8])
def test_any_stack_count(source, stacks, tmp_path):
    ckpt = raw(source)
    ckpt["state_dict"] = _renumber(ckpt["state_dict"], source, stacks)
    path = tmp_path / "many.pt"
    torch.save(ckpt, path)
    loaded = load_any_checkpoint(path)
    assert loaded.arch["stacks"] == stacks
    assert_loads_strictly(loaded.state_dict, loaded.arch)
    head = "outs.{}.conv.weight" if source == PRINCETON else "score.{}.weight"
    last = PEERS[source][2] + head.format(stacks - 1)
    assert torch.equal(loaded.state_dict[f"heads.{stacks - 1}.weight"], ckpt["state_dict"][last])


def test_bearpaw_num_blocks_indexing(tmp_path):
    sd = raw(BEARPAW)["state_dict"]
    blocks = {}
    for k, v in sd.items():
        m = re.match(r"^(module\.(?:hg\.\d+\.hg\.\d+\.\d+|res\.\d+))\.0\.(.*)$", k)
        if m:
            for b in range(3):
                blocks[f"{m.group(1)}.{b}.{m.group(2)}"] = v.clone() + 10 * b
        else:
            blocks[k] = v
    path = tmp_path / "b3.pth.tar"
    torch.save({"state_dict": blocks, "epoch": 3}, path)
    loaded = load_any_checkpoint(path)
    assert loaded.arch["modules"] == 3 and loaded.arch["depth"] == 4
    assert_loads_strictly(loaded.state_dict, loaded.arch)
    ours = loaded.state_dict
    # L = 3 is the outermost level; j = 0 up1, 1 low1, 2 low3, 3 (L = 0 only) innermost low2
    pairs = {
        "hourglasses.1.up1.2.conv1.weight": "module.hg.1.hg.3.0.2.conv1.weight",
        "hourglasses.0.low1.1.bn2.running_var": "module.hg.0.hg.3.1.1.bn2.running_var",
        "hourglasses.0.low2.low3.2.conv3.bias": "module.hg.0.hg.2.2.2.conv3.bias",
        "hourglasses.1.low2.low2.low2.low2.1.conv2.weight": "module.hg.1.hg.0.3.1.conv2.weight",
        "hourglasses.0.low2.low2.low2.up1.0.bn1.weight": "module.hg.0.hg.0.0.0.bn1.weight",
        "features.1.2.conv1.weight": "module.res.1.2.conv1.weight",
    }
    for o, t in pairs.items():
        assert torch.equal(ours[o], blocks[t]), (o, t)


def test_princeton_increase_is_refused(tmp_path):
    sd = dict(raw(PRINCETON)["state_dict"])
    k = "model.module.hgs.0.0.low1.conv3.conv.weight"
    sd[k] = torch.zeros(sd[k].shape[0] + 128, *sd[k].shape[1:])
    path = tmp_path / "increase.pt"
    torch.save({"state_dict": sd, "optimizer": {}, "epoch": 1}, path)
    with pytest.raises(HgxError, match="increase=128"):
        load_any_checkpoint(path)


def test_modified_peer_model_is_refused(tmp_path):
    sd = dict(raw(BEARPAW)["state_dict"])
    sd["module.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "modified.pth.tar"
    torch.save(sd, path)
    with pytest.raises(HgxError, match="extra_head"):
        load_any_checkpoint(path)
    sd = dict(raw(BEARPAW)["state_dict"])
    del sd["module.fc.1.0.weight"]
    torch.save(sd, path)
    with pytest.raises(HgxError, match=r"fc\.1\.0\.weight"):
        load_any_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# hgx snapshots


def _random_model(**arch) -> StackedHourglass:
    torch.manual_seed(0)
    model = StackedHourglass(**arch)
    for name, buf in model.named_buffers():
        if name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
        elif name.endswith("running_mean"):
            buf.normal_(0, 0.2)
    return model.eval()


@pytest.mark.parametrize("arch", [
    dict(stacks=3, features=32, modules=2, joints=5, depth=3, mid=8, stem="bearpaw"),
    dict(stacks=1, features=128, modules=1, joints=16, depth=2, mid=None, stem="original"),
])
def test_hgx_snapshot_round_trip(arch, tmp_path):
    model = _random_model(**arch)
    path = tmp_path / "snapshot.pt"
    options = dict(arch, lr=2.5e-4, joints=arch["joints"])
    # as hgx's trainer writes them: with numpy's RNG state, which weights_only=True refuses
    torch.save({"format": "hgx-snapshot", "model": model.state_dict(), "options": options,
                "epoch": 7, "optimizer": {"state": {}, "param_groups": []},
                "rng": {"numpy": np.random.get_state(), "torch": torch.get_rng_state()}}, path)
    rebuilt, loaded = build_from_checkpoint(path)
    assert loaded.source == HGX and loaded.arch == arch and not loaded.weights_only
    assert loaded.extra["epoch"] == 7 and loaded.extra["options"]["lr"] == 2.5e-4
    assert "rng" not in loaded.extra and "optimizer" not in loaded.extra
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt.eval()(x))


def test_hgx_bare_and_prefixed_state_dict(tmp_path):
    arch = dict(stacks=2, features=16, modules=1, joints=3, depth=2, mid=None, stem="bearpaw")
    sd = StackedHourglass(**arch).state_dict()
    path = tmp_path / "model.pt"
    torch.save({f"module._orig_mod.{k}": v for k, v in sd.items()
                if not k.endswith("num_batches_tracked")}, path)
    loaded = load_any_checkpoint(path)
    assert loaded.source == HGX and loaded.arch == arch
    assert list(loaded.state_dict) == list(sd)


def test_damaged_hgx_snapshot(tmp_path):
    path = tmp_path / "snap.pt"
    torch.save({"format": "hgx-snapshot", "model": {"x.weight": torch.zeros(1)}}, path)
    with pytest.raises(HgxError, match="hgx snapshot"):
        load_any_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# Errors


def test_truncated_files_raise(tmp_path):
    for source in (PRINCETON, BEARPAW):
        data = peer_checkpoint(source).read_bytes()
        path = tmp_path / f"{source}.trunc"
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(HgxError, match=re.escape(str(path))):
            load_any_checkpoint(path)
        legacy = tmp_path / f"{source}.legacy"
        torch.save(raw(source), legacy, _use_new_zipfile_serialization=False)
        data = legacy.read_bytes()
        for cut in (50, 3000, len(data) // 2, len(data) - 10):
            legacy.write_bytes(data[:cut])
            with pytest.raises(HgxError):
                load_any_checkpoint(legacy)


def test_random_bytes_and_non_checkpoints_raise(tmp_path):
    rnd = tmp_path / "random.pth.tar"
    rnd.write_bytes(os.urandom(4096))
    with pytest.raises(HgxError, match="random.pth.tar"):
        load_any_checkpoint(rnd)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(HgxError):
        load_any_checkpoint(text)
    with pytest.raises(HgxError, match="does not exist"):
        load_any_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(HgxError, match="not a file"):
        load_any_checkpoint(tmp_path)
    other = tmp_path / "resnet.pt"
    torch.save({"state_dict": {"layer1.0.conv1.weight": torch.zeros(1)}}, other)
    with pytest.raises(HgxError, match="not a checkpoint hgx can read.*expected an hgx snapshot"):
        load_any_checkpoint(other)
    lst = tmp_path / "list.pt"
    torch.save([1, 2, 3], lst)
    with pytest.raises(HgxError, match="not a checkpoint hgx can read"):
        load_any_checkpoint(lst)


def test_check_compatible_names_mismatching_tensor():
    loaded = load_any_checkpoint(peer_checkpoint(BEARPAW))
    with torch.device("meta"):
        same = StackedHourglass(**loaded.arch)
        wider = StackedHourglass(**dict(loaded.arch, features=128))
        more_joints = StackedHourglass(**dict(loaded.arch, joints=14))
        more_stacks = StackedHourglass(**dict(loaded.arch, stacks=3))
    check_compatible(same, loaded.state_dict, "ck.pth.tar")
    with pytest.raises(HgxError, match=r"ck\.pth\.tar.*'stem\.0\.weight' is \[16, 3, 7, 7\] in "
                                       r"the checkpoint but \[32, 3, 7, 7\] in the model"):
        check_compatible(wider, loaded.state_dict, "ck.pth.tar")
    with pytest.raises(HgxError,
                       match=r"'heads\.0\.weight' is \[16, 64, 1, 1\] .* \[14, 64, 1, 1\]"):
        check_compatible(more_joints, loaded.state_dict, "ck.pth.tar")
    with pytest.raises(HgxError, match=r"no tensor 'hourglasses\.2\..*stacks=2"):
        check_compatible(more_stacks, loaded.state_dict, "ck.pth.tar")


# ---------------------------------------------------------------------------------------------
# Full-size parameter counts: our HG8x256 has exactly the parameters the peers use


@pytest.mark.parametrize("stacks,princeton_key,bearpaw_key", [
    (8, "full_nstack8_inp_dim256", "full_num_stacks8_num_blocks1"),
    (2, "full_nstack2_inp_dim256", "full_num_stacks2_num_blocks1"),
])
def test_full_size_parameter_counts(stacks, princeton_key, bearpaw_key):
    p_meta = peer_meta(PRINCETON)["param_counts"][princeton_key]
    b_meta = peer_meta(BEARPAW)["param_counts"][bearpaw_key]
    with torch.device("meta"):
        original = StackedHourglass(stacks, 256, 1, 16)
        bearpaw = StackedHourglass(stacks, 256, 1, 16, stem="bearpaw")
    assert count_parameters(original) == p_meta["used_parameters"]
    assert count_parameters(bearpaw) == b_meta["parameters"]
    if stacks == 8:
        assert count_parameters(original) == 25_434_112
        assert count_parameters(bearpaw) == 25_594_624
    # state-dict entries: princeton minus the dead skip convs (2 tensors each), bearpaw 1:1
    assert len(bearpaw.state_dict()) == b_meta["state_dict_entries"]
    dead = p_meta["unused_skip_layer_parameters"]
    assert p_meta["parameters"] - dead == count_parameters(original)


def test_infer_hgx_arch_full_size():
    for stem in ("original", "bearpaw"):
        arch = dict(stacks=8, features=256, modules=1, joints=16, depth=4, mid=None, stem=stem)
        with torch.device("meta"):
            sd = StackedHourglass(**arch).state_dict()
        assert infer_hgx_arch(sd) == arch

"""Tests that catch one-line bugs a reviewer could miss: each pins a convention to its source
or checks the behaviour a user relies on (left/right flips, presence masks under flips, atomic
files, intermediate supervision)."""
from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY
from hgx import options as hopts
from hgx.data.dataset import PoseDataset, read_annotations
from hgx.data.joints import FLIC, MPII


def test_mpii_flip_pairs_are_pose_hg_train_s():
    # umich-vl/pose-hg-train src/util/dataset/mpii.lua:7-8 (1-based):
    # flipRef = {{1,6}, {2,5}, {3,4}, {11,16}, {12,15}, {13,14}}
    lua = {(1, 6), (2, 5), (3, 4), (11, 16), (12, 15), (13, 14)}
    assert {(a + 1, b + 1) for a, b in MPII.flip_pairs} == lua
    assert MPII.flip_index() == [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10]


def test_flic_flip_index_is_pypose_s():
    # umich-vl/pose-hg-train src/pypose/ref.py:29: flipped_parts['flic']
    assert FLIC.flip_index() == [3, 4, 5, 0, 1, 2, 7, 6, 9, 8, 10]


def test_presence_follows_the_joints_through_a_flip(tmp_path):
    """l-ankle annotated, r-ankle missing: in a mirrored sample the person's left ankle is
    drawn in the r-ankle map (the image is mirrored, the labels swap) and the l-ankle map is
    empty. A presence mask left unpermuted would draw the other map."""
    img = np.full((240, 320, 3), 40, np.uint8)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), img)
    part = np.array([[120.0 + 5 * j, 60 + 8 * j] for j in range(16)])
    part[0] = 0.0  # r-ankle missing
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["center"] = np.array([[160.0, 120.0]])
        f["scale"] = np.array([1.1])
        f["part"] = part[None]
        f["imgname"] = np.array([b"a.png"])
    opts = hopts.resolve(None, None, {"input_res": 64, "output_res": 16, "flip_prob": 1.0,
                                      "rotate_prob": 0.0, "scale_aug": 0.0})
    ds = PoseDataset(read_annotations(tmp_path / "a.h5", 16), tmp_path / "images", MPII, opts,
                     augment=True)
    _, hm, meta = ds.example((0, 1, 0))
    assert meta["flip"]
    r_ankle, l_ankle = MPII.index("r_ankle"), MPII.index("l_ankle")
    assert hm[r_ankle].max() == pytest.approx(1.0) and hm[l_ankle].max() == 0.0
    plain = PoseDataset(ds.annot, ds.image_dir, MPII, opts, augment=False)
    _, hm0, _ = plain.example((0, 1, 0))
    assert hm0[l_ankle].max() == pytest.approx(1.0) and hm0[r_ankle].max() == 0.0


EXPERIMENT_FILES = ("state.json", "train.log", "valid.log", "options.yaml", "history.jsonl",
                    "experiment.yaml")


def test_experiment_files_are_only_ever_replaced_whole(hgx, monkeypatch):
    """Every file of an experiment is written to a temporary name and renamed: opening
    state.json, a log or a snapshot for writing under its final name would let a crash leave
    it half-written."""
    opened: list[tuple[str, str]] = []
    real_open = builtins.open
    real_io_open = io.open

    def spy(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            opened.append((str(file), mode))
        return real_open(file, mode, *args, **kwargs)

    def spy_io(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            opened.append((str(file), mode))
        return real_io_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy_io)
    real_write_text, real_write_bytes = Path.write_text, Path.write_bytes

    def wt(self, *a, **k):
        opened.append((str(self), "write_text"))
        return real_write_text(self, *a, **k)

    def wb(self, *a, **k):
        opened.append((str(self), "write_bytes"))
        return real_write_bytes(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", wt)
    monkeypatch.setattr(Path, "write_bytes", wb)
    assert hgx("new", "a", *TINY, "--epochs", "2", "--snapshot", "1")[0] == 0
    assert hgx("continue", "a", "--epochs", "3")[0] == 0
    exp = hgx.root / "a"
    written = [Path(p) for p, _ in opened if Path(p).resolve().is_relative_to(exp.resolve())]
    assert written, "the spy saw no writes at all"
    for path in written:
        name = path.name
        assert not (name in EXPERIMENT_FILES or name.endswith(".pt")), \
            f"{name} was opened for writing under its final name"


def test_the_loss_supervises_every_stack(hgx):
    """train.log's first loss is the sum over BOTH stacks of the MSE to the target
    (intermediate supervision, pose-hg-train src/util/pose.lua:4-8), not the last stack's."""
    from hgx.data import open_split
    from hgx.data.batch import collate, to_device
    from hgx.engine.device import setup_runtime
    from hgx.engine.state import seed_everything
    from hgx.files import read_tsv
    from hgx.models import build_model

    args = [*TINY, "--epochs", "1", "--train-iters", "1", "--color-aug", "0"]
    assert hgx("new", "a", *args)[0] == 0
    logged = read_tsv(hgx.root / "a" / "train.log")[0]["loss"]
    opts = hopts.Options(**hopts.check_dict(
        __import__("yaml").safe_load((hgx.root / "a" / "options.yaml").read_text()), "o"))
    ds = open_split(opts, "train", augment=True)
    seed_everything(opts.seed)
    model = build_model(opts, 16)
    runtime = setup_runtime(opts)
    model = runtime.prepare(model).train()
    from hgx.data.dataset import EpochSampler

    sampler = EpochSampler(len(ds), opts.batch_size, opts.train_iters, opts.seed, True)
    batch = collate([ds[k] for k in sampler])
    images, target = to_device(batch, runtime.device, runtime.channels_last, opts.output_res,
                               opts.hm_sigma)
    with torch.no_grad(), runtime.autocast():  # as the trainer runs it (--precision auto)
        out = model(images)
    every = sum(F.mse_loss(o.float(), target) for o in out).item()
    last = F.mse_loss(out[-1].float(), target).item()
    assert logged == pytest.approx(every, rel=1e-4)
    assert abs(every - last) > 1e-3 * every  # the two readings are told apart

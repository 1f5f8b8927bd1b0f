"""pose-hg-train's heatmap accuracy, number for number (src/util/eval.lua heatmapAccuracy),
pinned with hand-made heatmaps: each case below gives a different number under the
plausible variants (sub-pixel shift, < instead of <=, pooled instead of per-joint mean, first
row/column kept, empty targets counted)."""
from __future__ import annotations

import math

import pytest
import torch

from hgx.data.labels import argmax_xy, heatmap_accuracy

RES = 20  # unit = RES / 10 = 2 px; threshold 0.5 -> a hit within 1 px


def maps(batch: int, joints: int) -> torch.Tensor:
    return torch.zeros(batch, joints, RES, RES)


def put(hm, b, j, x, y, value=1.0):
    hm[b, j, y, x] = value


def acc(out, tgt, joints=None):
    joints = tuple(range(out.shape[1])) if joints is None else joints
    return float(heatmap_accuracy(out, tgt, joints))


def test_exact_and_within_threshold_is_a_hit_with_less_or_equal():
    out, tgt = maps(1, 1), maps(1, 1)
    put(tgt, 0, 0, 10, 10)
    put(out, 0, 0, 11, 10)  # 1 px = 0.5 units: <= 0.5 hits (a strict < would miss)
    assert acc(out, tgt) == 1.0
    out2 = maps(1, 1)
    put(out2, 0, 0, 11, 11)  # sqrt(2) px = 0.71 units: a miss
    assert acc(out2, tgt) == 0.0


def test_integer_argmax_without_the_quarter_pixel_shift():
    out, tgt = maps(1, 1), maps(1, 1)
    put(tgt, 0, 0, 10, 10)
    put(out, 0, 0, 11, 10, 1.0)
    put(out, 0, 0, 12, 10, 0.9)  # decode's +0.25 shift would give 1.25 px = 0.625: a miss
    assert acc(out, tgt) == 1.0


def test_targets_peaking_in_the_first_row_or_column_do_not_count():
    out, tgt = maps(2, 2), maps(2, 2)
    put(tgt, 0, 0, 0, 7)   # first column (Lua's x > 1 fails): not counted
    put(out, 0, 0, 15, 15)
    put(tgt, 1, 0, 5, 5)   # counted and hit
    put(out, 1, 0, 5, 5)
    put(tgt, 0, 1, 9, 0)   # first row: not counted; joint 1 has no counted target at all
    put(out, 0, 1, 3, 3)   # (an empty target in sample 1 is not counted either)
    assert acc(out, tgt) == 1.0  # joint 0: 1/1; joint 1 left out of the mean


def test_per_joint_rates_then_their_mean_not_pooled():
    out, tgt = maps(2, 2), maps(2, 2)
    for b in range(2):  # joint 0: two hits
        put(tgt, b, 0, 6, 6)
        put(out, b, 0, 6, 6)
    put(tgt, 0, 1, 8, 8)  # joint 1: one counted target, missed
    put(out, 0, 1, 2, 2)
    assert acc(out, tgt) == pytest.approx(0.5)  # (1 + 0) / 2, not 2 hits / 3 targets


def test_prediction_without_a_positive_peak_is_read_at_the_corner():
    """getPreds masks a map whose max is not > 0 to (1, 1), 1-based: (0, 0) here."""
    out, tgt = maps(1, 1) - 1.0, maps(1, 1)
    out[0, 0, 1, 1] = -0.5     # its argmax (1, 1), one pixel from the target: not used
    put(tgt, 0, 0, 2, 1)
    assert argmax_xy(out)[0, 0].tolist() == [0, 0]
    assert acc(out, tgt) == 0.0  # (0, 0) is sqrt(5) px = 1.12 units away


def test_only_the_accuracy_joints_count():
    out, tgt = maps(1, 3), maps(1, 3)
    put(tgt, 0, 0, 5, 5)
    put(out, 0, 0, 5, 5)
    put(tgt, 0, 2, 5, 5)
    put(out, 0, 2, 15, 15)
    assert acc(out, tgt, (0,)) == 1.0
    assert acc(out, tgt, (0, 2)) == pytest.approx(0.5)


def test_nothing_counted_is_nan():
    assert math.isnan(acc(maps(2, 3), maps(2, 3)))

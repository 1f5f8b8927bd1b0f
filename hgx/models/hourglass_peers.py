"""The stacked hourglass's checkpoints from the two public PyTorch peers (and hgx's own) in hgx's
keys: for each layout its anchor keys, the key translation and the architecture it implies
(princeton-vl/pytorch_stacked_hourglass models/posenet.py + models/layers.py; bearpaw/pytorch-pose
pose/models/hourglass.py). hgx.models.loading finds the layout and calls these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from hgx.errors import HgxError

HGX = "hgx"
PRINCETON = "pytorch_stacked_hourglass"
BEARPAW = "pytorch-pose"

BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
# the architecture options a checkpoint fixes; "arch" (the family) is absent for hg,
# base_width/cardinality are present for hg-prm only, block_widths for a pruned hg only
ARCH_KEYS = ("arch", "stacks", "features", "modules", "joints", "depth", "mid", "stem",
             "base_width", "cardinality", "block_widths")

# --------------------------------------------------------------------------------------------
# Key translation


def find_prefix(keys: list[str], anchors: tuple[str, ...]) -> str | None:
    """The prefix p for which p + every anchor is a key, if any."""
    keyset = set(keys)
    for k in keys:
        if k.endswith(anchors[0]):
            p = k[: len(k) - len(anchors[0])]
            if all(p + a in keyset for a in anchors[1:]):
                return p
    return None


class _Mapper:
    """Copies source tensors to our keys and tracks which source keys were used."""

    def __init__(self, src: Mapping[str, torch.Tensor], path: Path, source: str):
        self.src, self.path, self.source = src, path, source
        self.used: set[str] = set()
        self.out: dict[str, torch.Tensor] = {}

    def has(self, key: str) -> bool:
        return key in self.src

    def get(self, key: str) -> torch.Tensor:
        if key not in self.src:
            raise HgxError(f"{self.path}: this {self.source} checkpoint lacks the tensor "
                           f"'{key}', so it is incomplete or from another model variant; "
                           "re-export it from the original training code")
        return self.src[key]

    def take(self, ours: str, theirs: str) -> None:
        self.out[ours] = self.get(theirs)
        self.used.add(theirs)

    def drop(self, theirs: str) -> None:
        self.used.add(theirs)

    def conv(self, ours: str, theirs: str) -> None:
        self.take(f"{ours}.weight", f"{theirs}.weight")
        if self.has(f"{theirs}.bias"):  # every peer conv has a bias; a missing one fails below
            self.take(f"{ours}.bias", f"{theirs}.bias")

    def bn(self, ours: str, theirs: str) -> None:
        for t in BN_TENSORS:
            self.take(f"{ours}.{t}", f"{theirs}.{t}")
        if self.has(f"{theirs}.num_batches_tracked"):
            self.take(f"{ours}.num_batches_tracked", f"{theirs}.num_batches_tracked")

    def residual(self, ours: str, theirs: str, conv: str, skip: str) -> None:
        """Pre-activation bottleneck; ``conv`` is the suffix of its convs (princeton '.conv')."""
        for i in (1, 2, 3):
            self.bn(f"{ours}.bn{i}", f"{theirs}.bn{i}")
            self.conv(f"{ours}.conv{i}", f"{theirs}.conv{i}{conv}")
        cin = self.get(f"{theirs}.conv1{conv}.weight").shape[1]
        cout = self.get(f"{theirs}.conv3{conv}.weight").shape[0]
        if cin != cout:
            self.conv(f"{ours}.skip", f"{theirs}.{skip}")
        else:  # princeton stores an unused skip conv when in == out: drop it
            for t in ("weight", "bias"):
                if self.has(f"{theirs}.{skip}.{t}"):
                    self.drop(f"{theirs}.{skip}.{t}")

    def finish(self, prefix: str) -> dict[str, torch.Tensor]:
        extra = [k for k in self.src if k not in self.used]
        if extra:
            raise HgxError(f"{self.path}: unexpected tensor '{prefix}{extra[0]}' "
                           f"({len(extra)} in all) for a {self.source} checkpoint; it comes from "
                           "a modified model hgx cannot import")
        return self.out


def _count(keys: set[str], fmt: str) -> int:
    n = 0
    while fmt.format(n) in keys:
        n += 1
    return n


def _shape(sd: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    return tuple(sd[key].shape)


def _princeton(sd: Mapping[str, torch.Tensor], path: Path):
    keys = set(sd)
    stacks = _count(keys, "outs.{}.conv.weight")
    joints, features = _shape(sd, "outs.0.conv.weight")[:2]
    depth = 0
    while f"hgs.0.0{'.low2' * depth}.up1.bn1.weight" in keys:
        depth += 1
    for lvl in range(depth):
        low1 = f"hgs.0.0{'.low2' * lvl}.low1.conv3.conv.weight"
        if low1 in keys and sd[low1].shape[0] != features:
            raise HgxError(
                f"{path} is a pytorch_stacked_hourglass model built with increase="
                f"{sd[low1].shape[0] - features} (hourglass width grows per level); hgx's "
                "hourglass keeps a constant width, so only increase=0 checkpoints can be imported")
    mid = sd["hgs.0.0.up1.conv1.conv.weight"].shape[0] if depth else features // 2
    arch = dict(stacks=stacks, features=features, modules=1, joints=joints, depth=depth,
                mid=None if mid == features // 2 else mid, stem="original")

    m = _Mapper(sd, path, PRINCETON)
    m.conv("stem.0", "pre.0.conv")
    m.bn("stem.1", "pre.0.bn")
    for ours, theirs in (("stem.3", "pre.1"), ("stem.5", "pre.3"), ("stem.6", "pre.4")):
        m.residual(ours, theirs, ".conv", "skip_layer.conv")
    for s in range(stacks):
        for lvl in range(depth):
            o, t = f"hourglasses.{s}" + ".low2" * lvl, f"hgs.{s}.0" + ".low2" * lvl
            for part in ("up1", "low1", "low3"):
                m.residual(f"{o}.{part}.0", f"{t}.{part}", ".conv", "skip_layer.conv")
            if lvl == depth - 1:
                m.residual(f"{o}.low2.0", f"{t}.low2", ".conv", "skip_layer.conv")
        m.residual(f"features.{s}.0", f"features.{s}.0", ".conv", "skip_layer.conv")
        m.conv(f"lin.{s}.0", f"features.{s}.1.conv")
        m.bn(f"lin.{s}.1", f"features.{s}.1.bn")
        m.conv(f"heads.{s}", f"outs.{s}.conv")
        if s < stacks - 1:
            m.conv(f"merge_features.{s}", f"merge_features.{s}.conv.conv")
            m.conv(f"merge_heatmaps.{s}", f"merge_preds.{s}.conv.conv")
    return m, arch


def _bearpaw(sd: Mapping[str, torch.Tensor], path: Path):
    keys = set(sd)
    stacks = _count(keys, "score.{}.weight")
    joints, features = _shape(sd, "score.0.weight")[:2]
    depth = _count(keys, "hg.0.hg.{}.0.0.bn1.weight")
    modules = _count(keys, "hg.0.hg.0.0.{}.bn1.weight")
    mid = sd["hg.0.hg.0.0.0.conv1.weight"].shape[0] if depth else features // 2
    arch = dict(stacks=stacks, features=features, modules=modules, joints=joints, depth=depth,
                mid=None if mid == features // 2 else mid, stem="bearpaw")

    m = _Mapper(sd, path, BEARPAW)
    m.conv("stem.0", "conv1")
    m.bn("stem.1", "bn1")
    for ours, theirs in (("stem.3", "layer1.0"), ("stem.5", "layer2.0"), ("stem.6", "layer3.0")):
        m.residual(ours, theirs, "", "downsample.0")
    for s in range(stacks):
        for lvl in range(depth):
            o, level = f"hourglasses.{s}" + ".low2" * lvl, f"hg.{s}.hg.{depth - 1 - lvl}"
            parts = [("up1", 0), ("low1", 1), ("low3", 2)] + ([("low2", 3)] if lvl == depth - 1
                                                              else [])
            for part, j in parts:
                for b in range(modules):
                    m.residual(f"{o}.{part}.{b}", f"{level}.{j}.{b}", "", "downsample.0")
        for b in range(modules):
            m.residual(f"features.{s}.{b}", f"res.{s}.{b}", "", "downsample.0")
        m.conv(f"lin.{s}.0", f"fc.{s}.0")
        m.bn(f"lin.{s}.1", f"fc.{s}.1")
        m.conv(f"heads.{s}", f"score.{s}")
        if s < stacks - 1:
            m.conv(f"merge_features.{s}", f"fc_.{s}")
            m.conv(f"merge_heatmaps.{s}", f"score_.{s}")
    return m, arch


def infer_hgx_arch(sd: Mapping[str, torch.Tensor], path: Any = "checkpoint") -> dict[str, Any]:
    """The architecture a state dict with our keys was built with: the ``StackedHourglass``
    arguments, or those of hg-prm / hg-atten (with their family under ``arch``)."""
    from hgx.models import attention, prm

    keys = set(sd)
    for family in (prm, attention):
        if family.MARKER in keys:
            try:
                return family.infer_arch(sd)
            except KeyError as err:
                raise HgxError(f"{path}: hgx state dict lacks the tensor {err}; the checkpoint "
                               "is incomplete, take an earlier snapshot") from None
    try:
        stacks = _count(keys, "heads.{}.weight")
        joints, features = _shape(sd, "heads.0.weight")[:2]
        modules = _count(keys, "features.0.{}.conv1.weight")
        depth = 0
        while f"hourglasses.0{'.low2' * depth}.up1.0.bn1.weight" in keys:
            depth += 1
        mid = sd["hourglasses.0.up1.0.conv1.weight"].shape[0]
        c0 = sd["stem.0.weight"].shape[0]
        c3 = sd["stem.3.conv3.weight"].shape[0]
        c5 = sd["stem.5.conv3.weight"].shape[0]
    except KeyError as err:
        raise HgxError(f"{path}: hgx state dict lacks the tensor {err}; the checkpoint is "
                       "incomplete, take an earlier snapshot") from None
    if (c0, c3, c5) == (64, 128, 128):
        stem = "original"
    elif (c0, c3, c5) == (features // 4, features // 2, features):
        stem = "bearpaw"
    else:
        raise HgxError(f"{path}: unknown stem (widths {c0}/{c3}/{c5} for {features} features); "
                       "hgx knows the 'original' and 'bearpaw' stems only")
    arch = dict(stacks=stacks, features=features, modules=modules, joints=joints, depth=depth,
                mid=None if mid == features // 2 else mid, stem=stem)
    widths = _block_widths(sd, stacks, depth, modules, mid, features, stem, path)
    if widths is not None:  # a pruned network (`hgx prune`)
        arch["block_widths"] = widths
    return arch


def _block_widths(sd, stacks, depth, modules, mid, features, stem, path) -> list[int] | None:
    """The inner widths of every residual block (a pruned network, ``hgx prune``), or None
    when each block has the width the other architecture numbers imply."""
    from hgx.models.hourglass import block_names

    widths, default = [], []
    stem_mids = {"original": (64, 64, features // 2),
                 "bearpaw": (features // 4, features // 2, features // 2)}[stem]
    for i, (name, group) in enumerate(block_names(stacks, depth, modules)):
        try:
            widths += [sd[f"{name}.conv1.weight"].shape[0], sd[f"{name}.conv2.weight"].shape[0]]
        except KeyError as err:
            raise HgxError(f"{path}: hgx state dict lacks the tensor {err}; the checkpoint is "
                           "incomplete, take an earlier snapshot") from None
        w = stem_mids[i] if group == "stem" else mid
        default += [w, w]
    return None if widths == default else widths


def _hgx(sd: Mapping[str, torch.Tensor], path: Path):
    arch = infer_hgx_arch(sd, path)
    m = _Mapper(sd, path, HGX)
    for k in sd:
        m.take(k, k)
    return m, arch


# (source, anchor keys that identify it, translator)
LAYOUTS = (
    (HGX, ("stem.0.weight", "heads.0.weight", "hourglasses.0.up1.0.bn1.weight"), _hgx),
    (PRINCETON, ("pre.0.conv.weight", "outs.0.conv.weight", "hgs.0.0.up1.bn1.weight"),
     _princeton),
    (BEARPAW, ("conv1.weight", "score.0.weight", "hg.0.hg.0.0.0.bn1.weight"), _bearpaw),
)

"""Model construction from options: the family (--arch) and its architecture options.

Every family's ``forward`` returns (stacks, batch, joints, H/4, W/4): all stacks' heatmaps, the
last one being the prediction. ``arch_of`` gives the architecture as a dict (the constructor's
arguments, plus ``arch`` for the families other than hg), which is what checkpoints are
recognised as (``hgx.models.loading``) and what ``build_arch`` builds.
"""
from __future__ import annotations

from typing import Any, Mapping

from hgx.errors import UsageError
from hgx.models.attention import SelfAttentionHourglass
from hgx.models.hourglass import StackedHourglass, count_parameters
from hgx.models.layers import initialise
from hgx.models.prm import PyraNet

FAMILIES = {"hg": StackedHourglass, "hg-prm": PyraNet, "hg-atten": SelfAttentionHourglass}


def check_resolution(opts) -> None:
    """The input and heatmap sizes (and family options) the architecture can take, refused
    with the fix before anything is created: the stem divides the input by 4 (conv stride 2,
    then a 2x2 pool) and each of the --depth hourglass levels halves it again, so the input
    must be a multiple of 4 * 2^depth, and the heatmaps come out at input / 4. The same holds
    for every family: PyraNet's stem and hourglass halve as pose-hg-train's (hg-prm.lua:55-60,
    :19,:31), and its pyramids upsample to whatever size they receive."""
    step = 4 * 2 ** opts.depth
    if opts.input_res % step:
        low, high = (opts.input_res // step) * step, (opts.input_res // step + 1) * step
        near = " or ".join(str(v) for v in (low, high) if v >= step)
        raise UsageError(f"--input-res {opts.input_res}: with --depth {opts.depth} the input "
                         f"must be a multiple of {step} (4 x 2^depth); use {near}")
    if opts.output_res != opts.input_res // 4:
        raise UsageError(f"--output-res {opts.output_res}: the network's heatmaps are input-res "
                         f"/ 4 = {opts.input_res // 4} px for --input-res {opts.input_res}; use "
                         f"--output-res {opts.input_res // 4}")
    arch = getattr(opts, "arch", "hg")
    if arch == "hg":
        return
    if opts.stem != "original":
        raise UsageError(f"--stem {opts.stem}: --arch {arch} builds its own source's stem; "
                         "drop --stem (it applies to --arch hg only)")
    if opts.mid:
        raise UsageError(f"--mid {opts.mid}: --arch {arch} keeps its source's bottleneck width "
                         "(features/2); drop --mid (it applies to --arch hg only)")
    if arch == "hg-prm":
        widest = min(128, opts.features)  # the PRMs' output widths: 128 (stem) and --features
        if opts.base_width > widest:
            raise UsageError(f"--base-width {opts.base_width}: a PRM of {widest} output channels "
                             f"would get floor({widest}/{opts.base_width}) = 0 pyramid channels; "
                             f"use --base-width {widest} or less")


def arch_of(opts, joints: int) -> dict[str, Any]:
    """The architecture an experiment's options describe, for ``joints`` joints."""
    arch = getattr(opts, "arch", "hg")
    common = dict(stacks=opts.stacks, features=opts.features, modules=opts.modules,
                  joints=joints, depth=opts.depth)
    if arch == "hg":
        return dict(common, mid=opts.mid or None, stem=opts.stem)
    out = dict(common, arch=arch, mid=None, stem="original")
    if arch == "hg-prm":
        out.update(base_width=opts.base_width, cardinality=opts.cardinality)
    return out


def build_arch(arch: Mapping[str, Any]):
    """The (freshly initialised, PyTorch defaults) network of an architecture dict."""
    family = arch.get("arch", "hg")
    kw = {k: v for k, v in arch.items() if k != "arch"}
    if family == "hg":
        return StackedHourglass(**kw)
    common = {k: kw[k] for k in ("stacks", "features", "modules", "joints", "depth")}
    if family == "hg-prm":
        return PyraNet(**common, base_width=kw["base_width"], cardinality=kw["cardinality"])
    if family == "hg-atten":
        return SelfAttentionHourglass(**common)
    raise ValueError(f"unknown architecture family {family!r}")


def build_model(opts, joints: int):
    """The network an experiment's options describe, for a dataset of ``joints`` joints, with
    the initial weights of --init (drawn from torch's global generator)."""
    return initialise(build_arch(arch_of(opts, joints)), getattr(opts, "init", "pytorch"))


__all__ = ["FAMILIES", "PyraNet", "SelfAttentionHourglass", "StackedHourglass", "arch_of",
           "build_arch", "build_model", "check_resolution", "count_parameters"]

"""Model construction from options: the family (--arch) and its architecture options.

Every family's ``forward`` returns (stacks, batch, joints, H/4, W/4): all stacks' heatmaps, the
last one being the prediction. ``arch_of`` gives the architecture as a dict (the constructor's
arguments, plus ``arch`` for the families other than hg), which is what checkpoints are
recognised as (``hgx.models.loading``) and what ``build_arch`` builds. A pruned hourglass
(``hgx prune``) carries its inner widths in ``block_widths``.
"""
from __future__ import annotations

from typing import Any, Mapping

from hgx.errors import HgxError, UsageError
from hgx.models.attention import SelfAttentionHourglass
from hgx.models.hourglass import StackedHourglass, block_names, count_parameters
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
    if getattr(opts, "block_widths", None):
        raise UsageError(f"--block-widths: pruned widths apply to --arch hg only (`hgx prune` "
                         f"prunes the stacked hourglass), not to --arch {arch}")
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


def check_block_widths(opts, error=UsageError) -> None:
    """--block-widths has two values per residual block of the architecture, or none."""
    widths = list(getattr(opts, "block_widths", None) or [])
    if not widths:
        return
    blocks = len(block_names(opts.stacks, opts.depth, opts.modules))
    if len(widths) != 2 * blocks:
        raise error(f"--block-widths has {len(widths)} values, but {opts.stacks} stacks of "
                    f"depth {opts.depth} with {opts.modules} module(s) have {blocks} residual "
                    f"blocks: give {2 * blocks} (conv1 and conv2 filters of each), or none for "
                    "the unpruned network (`hgx prune` writes them)")


def arch_of(opts, joints: int) -> dict[str, Any]:
    """The architecture an experiment's options describe, for ``joints`` joints."""
    arch = getattr(opts, "arch", "hg")
    common = dict(stacks=opts.stacks, features=opts.features, modules=opts.modules,
                  joints=joints, depth=opts.depth)
    if arch == "hg":
        return dict(common, mid=opts.mid or None, stem=opts.stem,
                    block_widths=list(getattr(opts, "block_widths", None) or []) or None)
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
    check_block_widths(opts, HgxError)
    return initialise(build_arch(arch_of(opts, joints)), getattr(opts, "init", "pytorch"))


def block_widths_of(model) -> list[int]:
    """A network's inner widths in the form of the ``block_widths`` option (two per block)."""
    from hgx.models.hourglass import Residual

    return [w for m in model.modules() if isinstance(m, Residual) for w in m.widths]


def unpruned_widths(opts, joints: int = 16) -> list[int]:
    """The inner widths of the architecture's unpruned network (``block_widths`` empty)."""
    import dataclasses

    import torch

    with torch.device("meta"):
        return block_widths_of(build_model(dataclasses.replace(opts, block_widths=[]), joints))


def cost(opts, joints: int) -> dict:
    """Trainable parameters and FLOPs of one image's forward pass (``torch.utils.flop_counter``
    on the meta device: 2 per multiply-add of the convolutions; BatchNorm, ReLU, pooling,
    upsampling and the sums are not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(opts, joints).eval()
        x = torch.empty(1, 3, opts.input_res, opts.input_res)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return {"parameters": count_parameters(model), "flops_per_image": counter.get_total_flops()}


__all__ = ["FAMILIES", "PyraNet", "SelfAttentionHourglass", "StackedHourglass", "arch_of",
           "block_names", "block_widths_of", "build_arch", "build_model", "check_block_widths",
           "check_resolution", "cost", "count_parameters", "unpruned_widths"]

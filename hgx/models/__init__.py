"""Model construction from options."""
from hgx.errors import HgxError, UsageError
from hgx.models.hourglass import StackedHourglass, block_names, count_parameters


def check_resolution(opts) -> None:
    """The input and heatmap sizes the architecture can take, refused with the fix before
    anything is created: the stem divides the input by 4 (conv stride 2, then a 2x2 pool) and
    each of the --depth hourglass levels halves it again, so the input must be a multiple of
    4 * 2^depth, and the heatmaps come out at input / 4."""
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


def build_model(opts, joints: int) -> StackedHourglass:
    """The network an experiment's options describe, for a dataset of ``joints`` joints."""
    check_block_widths(opts, HgxError)
    return StackedHourglass(stacks=opts.stacks, features=opts.features, modules=opts.modules,
                            joints=joints, depth=opts.depth, mid=opts.mid or None,
                            stem=opts.stem, block_widths=list(opts.block_widths) or None)


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


__all__ = ["StackedHourglass", "block_names", "block_widths_of", "build_model",
           "check_block_widths", "check_resolution", "cost", "count_parameters",
           "unpruned_widths"]

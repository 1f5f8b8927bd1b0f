"""Model construction from options."""
from hgx.errors import UsageError
from hgx.models.hourglass import StackedHourglass, count_parameters


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


def build_model(opts, joints: int) -> StackedHourglass:
    """The network an experiment's options describe, for a dataset of ``joints`` joints."""
    return StackedHourglass(stacks=opts.stacks, features=opts.features, modules=opts.modules,
                            joints=joints, depth=opts.depth, mid=opts.mid or None,
                            stem=opts.stem)


__all__ = ["StackedHourglass", "build_model", "check_resolution", "count_parameters"]

"""Model construction from options."""
from hgx.models.hourglass import StackedHourglass, count_parameters


def build_model(opts, joints: int) -> StackedHourglass:
    """The network an experiment's options describe, for a dataset of ``joints`` joints."""
    return StackedHourglass(stacks=opts.stacks, features=opts.features, modules=opts.modules,
                            joints=joints, depth=opts.depth, mid=opts.mid or None,
                            stem=opts.stem)


__all__ = ["StackedHourglass", "build_model", "count_parameters"]

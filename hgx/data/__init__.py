"""Datasets: where their files are, and opening a split."""
from __future__ import annotations

import sys
from pathlib import Path

from hgx.data.dataset import DATASET_SKELETONS, PoseDataset, read_annotations
from hgx.errors import HgxError


def note(message: str) -> None:
    """Diagnostics (e.g. "generating the synthetic dataset") go to stderr: stdout is for
    results such as ``hgx eval --json``."""
    print(message, file=sys.stderr, flush=True)


def data_dir(opts, log=note) -> Path:
    """The dataset directory: --data-dir, else the synthetic cache (generated on first use),
    else ./data/<dataset>."""
    if opts.data_dir:
        path = Path(opts.data_dir).expanduser()
        if not path.is_dir():
            raise HgxError(f"data directory {path} not found; check --data-dir")
        return path
    if opts.dataset == "synthetic":
        from hgx.data.synth import ensure_synthetic, synth_cache_dir
        from hgx.options import parse_size

        size = parse_size(opts.synth_size)
        args = (opts.synth_seed, size, opts.synth_train, opts.synth_valid, opts.synth_test)
        target = synth_cache_dir(*args)
        if not (target / "annot" / "test.h5").is_file():
            log(f"generating the synthetic dataset into {target} (once)...")
        return ensure_synthetic(*args)
    path = Path("data") / opts.dataset
    if not path.is_dir():
        raise HgxError(f"no data for --dataset {opts.dataset}: {path} not found; pass "
                       "--data-dir DIR (the README says which files each dataset needs)")
    return path


def skeleton_for(opts, log=note):
    """The joints of a dataset: built in for synthetic/mpii/flic; for the others (lsp, coco,
    mpii-lsp, custom) read from the attributes of its annot/train.h5, which the converters of
    `hgx data prepare` write (joint names, flip pairs, PCK unit)."""
    if opts.dataset in DATASET_SKELETONS:
        return DATASET_SKELETONS[opts.dataset]
    from hgx.data.prepare.custom import describe_custom

    return describe_custom(data_dir(opts, log) / "annot" / "train.h5")


def open_split(opts, split: str, augment: bool = False, log=note) -> PoseDataset:
    root = data_dir(opts, log)
    skeleton = skeleton_for(opts, log)
    from hgx.data import posehg

    if posehg.has_raw(root, split):  # pose-hg-train's data/mpii with its raw annot.h5
        annot = posehg.read_raw(root, split)
    else:
        annot = read_annotations(root / "annot" / f"{split}.h5", skeleton.num_joints)
    dataset = PoseDataset(annot, root / "images", skeleton, opts, augment=augment,
                          seed=opts.seed)
    if getattr(opts, "crop_cache", False):
        from hgx.data.cache import cache_dir, load_index

        index = load_index(root, split, opts)
        if index is None:
            raise HgxError(f"--crop-cache: no crop cache for {split} at input-res "
                           f"{opts.input_res} in {root}; build it with `hgx data cache "
                           f"--data-dir {root} --input-res {opts.input_res}` (or drop the flag)")
        dataset.use_cache(cache_dir(root, opts.input_res) / split, *index)
    return dataset

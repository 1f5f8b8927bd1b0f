"""Shared fixtures: a tiny synthetic dataset and a tiny model, so flows run in seconds."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# A 2-stack hourglass small enough to train a few iterations in well under a second.
TINY = ["--stacks", "2", "--features", "16", "--depth", "2", "--input-res", "64",
        "--output-res", "16", "--train-iters", "3", "--valid-iters", "1", "--batch-size", "4",
        "--valid-batch-size", "4", "--workers", "0", "--threads", "1", "--synth-size",
        "160x120", "--synth-train", "24", "--synth-valid", "8", "--synth-test", "4"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hgx-cache")
    os.environ["HGX_CACHE_DIR"] = str(d)
    return d


@pytest.fixture
def hgx(cache_dir, tmp_path, monkeypatch, capsys):
    """Run the CLI in-process in a fresh experiments root; returns (exit code, output)."""
    from hgx.cli import main

    monkeypatch.setenv("HGX_EXP_DIR", str(tmp_path / "exp"))
    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out + out.err

    run.root = tmp_path / "exp"
    return run


def tree_hashes(path: Path) -> dict[str, str]:
    """sha256 of every file below ``path`` (to prove a directory was not changed)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def dataset_of(tmp_path: Path, names: list[str], center, scale: float, **opts):
    """A PoseDataset of one person (no joints annotated) per image in tmp_path/images."""
    import h5py
    import numpy as np

    from hgx import options as hopts
    from hgx.data.dataset import PoseDataset, read_annotations
    from hgx.data.joints import MPII

    n = len(names)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["center"] = np.array([center] * n, float)
        f["scale"] = np.full(n, scale)
        f["part"] = np.zeros((n, 16, 2))
        f["imgname"] = np.array([name.encode() for name in names])
    return PoseDataset(read_annotations(tmp_path / "a.h5", 16), tmp_path / "images", MPII,
                       hopts.resolve(None, None, opts), augment=False)

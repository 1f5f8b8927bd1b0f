"""The synthetic MPII-layout dataset: layout, determinism, geometry, cache handling."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import require_shared

from hgx.data import synth
from hgx.errors import HgxError

REAL_VALID = Path(__file__).resolve().parents[1].parent / "shared/data/mpii/annot/valid.h5"
SIZE = (320, 240)
COUNTS = dict(n_train=14, n_valid=6, n_test=4)
SPLITS = ("train", "valid", "test")


def _read(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    synth.generate(out, seed=0, size=SIZE, **COUNTS)
    return out


def test_layout_matches_real_mpii(dataset):
    require_shared(REAL_VALID)
    with h5py.File(REAL_VALID, "r") as real:
        for split in SPLITS:
            with h5py.File(dataset / "annot" / f"{split}.h5", "r") as ours:
                assert sorted(ours) == sorted(real)
                assert ours.attrs["name"] == real.attrs["name"] == "mpii"
                for key in real:
                    assert ours[key].shape[1:] == real[key].shape[1:], key
                    assert ours[key].dtype.kind == real[key].dtype.kind, key
                    if real[key].dtype.kind == "f":
                        assert ours[key].dtype == real[key].dtype, key


def test_counts_names_and_image_lists(dataset):
    seen = {}
    for split in SPLITS:
        a = _read(dataset / "annot" / f"{split}.h5")
        n = COUNTS[f"n_{split}"]
        assert len(a["scale"]) == n and a["part"].shape == (n, 16, 2)
        names = [s.decode() for s in a["imgname"]]
        listed = (dataset / "annot" / f"{split}_images.txt").read_text().splitlines()
        assert listed == names
        for name, index, person in zip(names, a["index"], a["person"]):
            assert (dataset / "images" / name).is_file()
            assert seen.setdefault(name, (split, index))[0] == split  # splits share no image
            assert seen[name][1] == index  # one image number per image
            assert person in (0.0, 1.0)
    assert (dataset / "synth.json").is_file()


def test_summary_and_progress(tmp_path):
    calls = []
    summary = synth.generate(tmp_path / "d", seed=3, size=(160, 120), n_train=3, n_valid=2,
                             n_test=1, progress=lambda done, total: calls.append((done, total)))
    n_images = len(list((tmp_path / "d" / "images").glob("*.jpg")))
    assert summary == {"dir": str(tmp_path / "d"), "train": 3, "valid": 2, "test": 1,
                       "images": n_images, "size": [160, 120], "seed": 3}
    assert calls[-1] == (n_images, n_images)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_deterministic_for_a_seed(dataset, tmp_path):
    again = tmp_path / "again"
    synth.generate(again, seed=0, size=SIZE, **COUNTS)
    for split in SPLITS:
        a, b = dataset / "annot" / f"{split}.h5", again / "annot" / f"{split}.h5"
        assert a.read_bytes() == b.read_bytes()
    for img in (dataset / "images").iterdir():
        assert img.read_bytes() == (again / "images" / img.name).read_bytes()

    other = tmp_path / "other"
    synth.generate(other, seed=1, size=SIZE, **COUNTS)
    assert not np.array_equal(_read(dataset / "annot/train.h5")["part"],
                              _read(other / "annot/train.h5")["part"])
    first = sorted((dataset / "images").iterdir())[0]
    assert first.read_bytes() != (other / "images" / first.name).read_bytes()


def test_valid_images_do_not_depend_on_train_count(tmp_path):
    small = synth.generate(tmp_path / "a", seed=5, size=(96, 72), n_train=2, n_valid=3, n_test=0)
    big = synth.generate(tmp_path / "b", seed=5, size=(96, 72), n_train=5, n_valid=3, n_test=0)
    va, vb = _read(tmp_path / "a/annot/valid.h5"), _read(tmp_path / "b/annot/valid.h5")
    assert np.array_equal(va["part"], vb["part"]) and np.array_equal(va["center"], vb["center"])
    for na, nb in zip(dict.fromkeys(va["imgname"]), dict.fromkeys(vb["imgname"])):
        a = (tmp_path / "a/images" / na.decode()).read_bytes()
        assert a == (tmp_path / "b/images" / nb.decode()).read_bytes()
    assert small["images"] < big["images"]


def test_worker_threads_draw_the_same_images(tmp_path):
    """Images drawn by the worker pool equal the same images drawn one by one."""
    synth.generate(tmp_path / "pool", seed=2, size=(48, 40), n_train=50, n_valid=0, n_test=0)
    tasks = synth._plan_tasks(2, (48, 40), {"train": 50, "valid": 0, "test": 0}, tmp_path)
    for task in tasks[::7]:
        rows = synth._render_task(task)
        pooled = tmp_path / "pool" / "images" / task.name
        assert pooled.read_bytes() == Path(task.path).read_bytes()
        assert rows[0]["imgname"] == task.name


def test_joints_visibility_and_missing(dataset):
    w, h = SIZE
    a = _read(dataset / "annot/train.h5")
    part, vis = a["part"], a["visible"]
    assert set(np.unique(vis)) <= {0.0, 1.0}
    present = (part != 0).any(-1)
    seen = vis == 1
    assert (present | ~seen).all()  # a visible joint is never missing
    x, y = part[..., 0], part[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    assert inside[seen].all()
    assert seen.mean() > 0.6


def test_center_and_scale_follow_mpii(dataset):
    w, h = SIZE
    a = _read(dataset / "annot/train.h5")
    scale, center, part = a["scale"], a["center"], a["part"]
    present = (part != 0).any(-1)
    assert ((200 * scale > 0.25 * h) & (200 * scale < 1.2 * h)).all()  # the crop: 1.25 x the person
    # the stored box is the crop (side 200*scale around center, hgx.data.formats): it holds
    # every joint; the raw MPII-style objpos (12*scale above it) lies near the hips
    half = 200 * scale / 2
    off = np.abs(part - center[:, None, :]).max(-1)
    assert (off[present] <= np.repeat(half[:, None] * 1.05, 16, 1)[present]).all()
    # the centre lies within the body, near the hips
    pelvis = part[:, 6]
    ok = present[:, 6]
    objpos = center - np.stack([np.zeros_like(scale), 12 * scale], 1)
    assert (np.linalg.norm(objpos[ok] - pelvis[ok], axis=1) < 0.2 * 200 * scale[ok]).all()
    # PCKh unit: 0.6 x head-box diagonal; the head is about a tenth of the body height
    ratio = a["normalize"] / (200 * scale)
    assert ((ratio > 0.07) & (ratio < 0.14)).all()


def test_test_split_has_people_but_no_joints(dataset):
    a = _read(dataset / "annot/test.h5")
    assert not a["part"].any() and not a["visible"].any()
    assert (a["scale"] > 0).all() and (a["normalize"] > 0).all() and a["center"].all()


def test_left_right_follow_facing():
    """Facing the camera, the person's right limbs are on the image's left; away: mirrored."""
    rng = np.random.default_rng(0)
    facing_seen = set()
    for _ in range(200):
        p = synth.sample_person(rng, 300.0)
        j = p.joints
        sign = 1 if p.facing else -1
        facing_seen.add(p.facing)
        assert sign * (j[synth.L_HIP, 0] - j[synth.R_HIP, 0]) > 0
        assert sign * (j[synth.L_SHOULDER, 0] - j[synth.R_SHOULDER, 0]) > 0
    assert facing_seen == {True, False}


def test_refuses_a_non_empty_directory(tmp_path):
    keep = tmp_path / "mine.txt"
    keep.write_text("precious")
    before = keep.stat().st_mtime_ns
    with pytest.raises(HgxError) as err:
        synth.generate(tmp_path, seed=0, size=(64, 64), n_train=1, n_valid=0, n_test=0)
    assert str(tmp_path) in str(err.value) and "empty directory" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    assert keep.read_text() == "precious" and keep.stat().st_mtime_ns == before


def test_ensure_synthetic_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HGX_CACHE_DIR", str(tmp_path))
    args = (0, (64, 48), 2, 1, 1)
    expected = tmp_path / "synthetic" / "s0-64x48-2-1-1-v2"
    assert synth.synth_cache_dir(*args) == expected
    path = synth.ensure_synthetic(*args)
    assert path == expected and (path / "annot/train.h5").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    assert synth.ensure_synthetic(*args) == path
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == stamps
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [expected.name]  # no temp


def test_ensure_synthetic_replaces_a_half_made_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HGX_CACHE_DIR", str(tmp_path))
    args = (1, (64, 48), 1, 1, 0)
    half = synth.synth_cache_dir(*args)
    (half / "images").mkdir(parents=True)  # a run killed before the summary was written
    dead = half.with_name(half.name + ".tmp-999999999")  # left by a process that is gone
    dead.mkdir()
    path = synth.ensure_synthetic(*args)
    assert (path / "synth.json").is_file() and (path / "annot/valid.h5").is_file()
    assert not dead.exists()


def test_default_cache_dir(monkeypatch):
    monkeypatch.delenv("HGX_CACHE_DIR", raising=False)
    got = synth.synth_cache_dir(7, (1280, 720), 1000, 200, 200)
    assert got == Path(os.path.expanduser("~")) / ".cache/hgx/synthetic/s7-1280x720-1000-200-200-v2"

"""Pictures of predictions (hgx.viz): skeletons on validation crops and one crop's heatmaps,
from a real tiny experiment; nothing is written into the experiment."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import TINY, tree_hashes
from hgx import viz
from hgx.data import transforms as T
from hgx.data.joints import MPII
from hgx.errors import HgxError, UsageError


@pytest.fixture
def trained(hgx):
    code, out = hgx("new", "a", *TINY, "--epochs", "1")
    assert code == 0, out
    return hgx.root / "a"


def test_samples_and_heatmaps_pictures(trained, tmp_path):
    before = tree_hashes(trained)
    entries = sorted(p.name for p in trained.rglob("*"))
    (tmp_path / "pics").mkdir()
    out = viz.draw_samples(trained, 5, tmp_path / "pics" / "s.png")
    assert out == tmp_path / "pics" / "s.png"
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 600
    assert image.std() > 10  # not a blank canvas

    out = viz.draw_heatmaps(trained, tmp_path / "pics" / "h.svg", index=2, snapshot="last")
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "valid #2" in svg
    for joint in MPII.joints:  # one panel per joint, titled by its name
        assert joint in svg

    # defaults: ./<name>-samples.png and ./<name>-heatmaps.png (the hgx fixture's cwd)
    assert viz.draw_samples(trained, 2).resolve() == (tmp_path / "a-samples.png").resolve()
    assert viz.draw_heatmaps(trained).resolve() == (tmp_path / "a-heatmaps.png").resolve()
    assert tree_hashes(trained) == before
    assert sorted(p.name for p in trained.rglob("*")) == entries


def test_predictions_are_in_crop_pixels(trained):
    p = viz.predict_crops(trained, rows=[0, 3, 5])
    assert p.rows == [0, 3, 5] and p.images.shape == (3, 64, 64, 3)
    assert p.heatmaps.shape == (3, 16, 16, 16) and p.pred.shape == (3, 16, 2)
    assert (p.pred >= 0).all() and (p.pred <= 64).all()
    # ground truth in crop pixels agrees with the dataset's own training heatmaps
    from hgx import options as hopts
    from hgx.data import open_split
    from hgx.experiment import Experiment

    opts = hopts.Options(**Experiment(trained).options())
    ds = open_split(opts, "valid")
    for k, row in enumerate(p.rows):
        _, target, _ = ds.example((row, 0, 0))
        coords, peak = T.decode(target)
        inside = (peak > 0) & p.known[k]
        assert inside.sum() >= 8
        np.testing.assert_allclose(coords[inside] * 4, p.truth[k][inside], atol=2.5)
    assert all(s is None or 0 <= s[0] <= s[1] <= 16 for s in p.pckh)


def test_limb_colours_tell_left_right_and_centre_apart():
    colors = viz.limb_colors(MPII.limbs)
    assert len(set(colors)) == len(colors)  # one per limb
    for (_, _, side), (r, g, b, _) in zip(MPII.limbs, colors):
        if side == "l":
            assert b > r and b > g
        elif side == "r":
            assert r > b and r > g
        else:
            assert g > r and g > b


def test_refusals(trained, tmp_path):
    before = tree_hashes(trained)
    with pytest.raises(UsageError, match="inside the experiment"):
        viz.draw_samples(trained, 2, trained / "x.png")
    with pytest.raises(UsageError, match="inside the experiment"):
        viz.draw_heatmaps(trained, trained / "snapshots" / "h.png")
    with pytest.raises(UsageError, match="out of range"):
        viz.draw_heatmaps(trained, tmp_path / "h.png", index=999)
    with pytest.raises(UsageError, match="at least 1"):
        viz.draw_samples(trained, 0, tmp_path / "s.png")
    with pytest.raises(UsageError, match=".png"):
        viz.draw_samples(trained, 2, tmp_path / "s.gif")
    with pytest.raises(HgxError, match="not an hgx experiment"):
        viz.draw_samples(tmp_path, 2, tmp_path / "s.png")
    assert tree_hashes(trained) == before


def test_no_snapshot_yet(hgx, tmp_path):
    from hgx import options as hopts
    from hgx.experiment import Experiment

    exp = Experiment.create(hgx.root, "fresh", hopts.defaults())
    with pytest.raises(HgxError, match="no snapshot yet"):
        viz.draw_samples(exp.path, 2, tmp_path / "s.png")


def test_show_samples_and_heatmaps_from_the_cli(hgx, tmp_path):
    from conftest import TINY, tree_hashes

    assert hgx("new", "v", *TINY, "--epochs", "1")[0] == 0
    before = tree_hashes(hgx.root / "v")
    code, out = hgx("show", "v", "--samples", "4", "--out", str(tmp_path / "s.png"))
    assert code == 0, out
    code, out = hgx("show", "v", "--heatmaps", "--out", str(tmp_path / "h.png"))
    assert code == 0, out
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "h.png").stat().st_size > 0
    assert tree_hashes(hgx.root / "v") == before

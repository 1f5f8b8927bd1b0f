"""The crop cache gives the same training samples as the photographs, up to interpolation."""
from __future__ import annotations

import numpy as np

from conftest import TINY
from hgx import options as hopts


def test_cached_samples_match_the_originals(hgx):
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    from hgx.data import open_split
    from hgx.data.synth import synth_cache_dir

    data = synth_cache_dir(0, (160, 120), 24, 8, 4)
    code, out = hgx("data", "cache", "--data-dir", str(data), "--input-res", "64")
    assert code == 0, out
    base = {"data_dir": str(data), "input_res": 64, "output_res": 16}
    plain = open_split(hopts.resolve(None, None, base), "train", augment=True)
    cached = open_split(hopts.resolve(None, None, {**base, "crop_cache": True}), "train",
                        augment=True)
    diffs = []
    for pos in range(24):
        key = (pos % len(plain), 1, pos)
        a, ha, ma = plain.example(key)
        b, hb, mb = cached.example(key)
        assert np.array_equal(ha, hb) and np.allclose(ma["hm_to_image"], mb["hm_to_image"])
        diffs.append(np.abs(a - b).mean())
    # same pixels up to resampling and JPEG re-encoding: a few percent of the range on average
    assert np.mean(diffs) < 0.03, np.mean(diffs)


def test_training_from_the_cache_and_a_missing_cache(hgx):
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    from hgx.data.synth import synth_cache_dir

    data = synth_cache_dir(0, (160, 120), 24, 8, 4)
    code, out = hgx("new", "c", *TINY, "--epochs", "1", "--data-dir", str(data), "--crop-cache",
                    "--input-res", "32", "--output-res", "8")
    assert code == 1 and "hgx data cache" in out
    assert hgx("data", "cache", "--data-dir", str(data), "--input-res", "64")[0] == 0
    code, out = hgx("new", "c", *TINY, "--epochs", "1", "--data-dir", str(data), "--crop-cache")
    assert code == 0, out

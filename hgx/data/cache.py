"""The crop cache: each person's image region, stored once at a bounded size.

An epoch then decodes one small JPEG per sample instead of a whole photograph. The region is
centred like the training crop and wide enough for the largest augmentation (scale 2^(2x) and
any rotation), and it is stored at the resolution the smallest augmented crop needs, so a
sample drawn from the cache equals the one drawn from the original image up to interpolation.

Layout: DIR/cache/r<input_res>/<split>.h5 (``origin`` (N,2) image px of the region's corner,
``factor`` (N,) stored px per image px) and DIR/cache/r<input_res>/<split>/<row>.jpg.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import h5py
import numpy as np

from hgx.errors import HgxError


def cache_dir(data_dir: Path, input_res: int) -> Path:
    return Path(data_dir) / "cache" / f"r{input_res}"


def region(center, scale: float, opts) -> tuple[np.ndarray, float, float]:
    """(corner, side in image px, stored px per image px) of one person's cached region."""
    c = np.array([center[0], center[1]], np.float64)  # the stored crop box (hgx.data.formats)
    box = 200.0 * scale
    largest, smallest = box * 2 ** (2 * opts.scale_aug), box * 2 ** (-2 * opts.scale_aug)
    side = largest * math.sqrt(2)  # any rotation of the largest box fits in this square
    factor = min(1.0, opts.input_res / smallest)  # >= 1 stored px per crop px
    return c - side / 2, side, factor


def build(data_dir: Path, opts, splits=("train", "valid"), progress=None) -> Path:
    """Write the cache of ``splits``; returns its directory. Existing entries are reused."""
    from hgx.data.dataset import read_annotations

    out = cache_dir(data_dir, opts.input_res)
    for split in splits:
        annot = read_annotations(Path(data_dir) / "annot" / f"{split}.h5")
        (out / split).mkdir(parents=True, exist_ok=True)
        origin = np.zeros((len(annot), 2))
        factor = np.zeros(len(annot))
        for row in range(len(annot)):
            corner, side, k = region(annot.center[row], float(annot.scale[row]), opts)
            x0, y0 = (int(math.floor(v)) for v in corner)
            size = int(math.ceil(side)) + 1
            n = max(1, int(round(size * k)))
            origin[row], factor[row] = (x0, y0), n / size  # stored px = (image px - origin) * f
            target = out / split / f"{row}.jpg"
            if not target.is_file():
                path = Path(data_dir) / "images" / annot.imgname[row]
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    raise HgxError(f"image {path} ({split}.h5 row {row}) is missing or "
                                   "unreadable; restore it before building the cache")
                crop = _window(image, x0, y0, size)
                crop = cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA) if n != size \
                    else crop
                tmp = target.with_name(f".{row}.tmp.jpg")
                cv2.imwrite(str(tmp), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
                tmp.replace(target)
            if progress:
                progress(split, row + 1, len(annot))
        tmp = out / f".{split}.h5.tmp"
        with h5py.File(tmp, "w") as f:
            f["origin"], f["factor"] = origin, factor
            f.attrs["input_res"], f.attrs["scale_aug"] = opts.input_res, opts.scale_aug
        tmp.replace(out / f"{split}.h5")
    return out


def _window(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """image[y0:y0+size, x0:x0+size], black where it leaves the image."""
    h, w = image.shape[:2]
    out = np.zeros((size, size, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + size, w), min(y0 + size, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def load_index(data_dir: Path, split: str, opts):
    """(origin, factor) of a built cache, or None when there is none for these options."""
    path = cache_dir(data_dir, opts.input_res) / f"{split}.h5"
    if not path.is_file():
        return None
    with h5py.File(path, "r") as f:
        if float(f.attrs["scale_aug"]) < opts.scale_aug:
            raise HgxError(f"the crop cache {path.parent} was built for --scale-aug "
                           f"{float(f.attrs['scale_aug'])}, smaller than {opts.scale_aug}; "
                           "rebuild it with `hgx data cache`")
        return np.asarray(f["origin"]), np.asarray(f["factor"])

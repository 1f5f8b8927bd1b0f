"""Annotation files, datasets and the deterministic sample order.

Annotations use pose-hg-train's h5 layout (``center``, ``scale``, ``part``, ``visible``,
``normalize``, ``imgname``...). A sample is addressed by (row, epoch, position) so that its
augmentation depends only on the seed and its place in the epoch: any number of workers, or a
run resumed mid-epoch, sees exactly the same samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from hgx.data import transforms as T
from hgx.data.batch import Sample, finished
from hgx.data.joints import FLIC, MPII, Skeleton
from hgx.errors import HgxError

REQUIRED = ("center", "scale", "part", "imgname")
DATASET_SKELETONS = {"synthetic": MPII, "mpii": MPII, "flic": FLIC}


@dataclass
class Annotations:
    path: Path
    center: np.ndarray      # (N, 2)
    scale: np.ndarray       # (N,)
    part: np.ndarray        # (N, J, 2), missing joint = (0, 0)
    visible: np.ndarray     # (N, J)
    normalize: np.ndarray   # (N,) PCKh unit, NaN when absent
    imgname: list[str]
    index: np.ndarray | None = None   # (N,) source image (MPII: 0-based annolist entry)
    person: np.ndarray | None = None  # (N,) person within it (MPII: 0-based annorect entry)

    def __len__(self) -> int:
        return len(self.scale)

    @property
    def present(self) -> np.ndarray:
        """(N, J) bool: the joint is annotated (pose-hg-train: x > 0)."""
        return self.part[..., 0] > 0


def read_annotations(path: Path, joints: int | None = None) -> Annotations:
    """Read and check a pose-hg-train annotation file; problems name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise HgxError(f"annotation file {path} not found; check --data-dir (it must hold "
                       "annot/train.h5, annot/valid.h5)")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in REQUIRED if k not in f]
            if missing:
                raise HgxError(f"annotation file {path} lacks {', '.join(missing)}; the "
                               f"pose-hg-train layout needs {', '.join(REQUIRED)}")
            center = np.asarray(f["center"], dtype=np.float64)
            scale = np.asarray(f["scale"], dtype=np.float64).reshape(-1)
            part = np.asarray(f["part"], dtype=np.float64)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["imgname"][()]]
            n = len(scale)
            visible = np.asarray(f["visible"], dtype=np.float64) if "visible" in f else \
                (part[..., 0] > 0).astype(np.float64)
            norm = np.asarray(f["normalize"], dtype=np.float64).reshape(-1) \
                if "normalize" in f else np.full(n, np.nan)
            index, person = (np.asarray(f[k], dtype=np.float64).reshape(-1) if k in f else None
                             for k in ("index", "person"))
    except HgxError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise HgxError(f"annotation file {path} cannot be read ({err}); restore it or "
                       "regenerate it") from None
    problems = []
    if center.shape != (n, 2):
        problems.append(f"center is {center.shape}, expected ({n}, 2)")
    if part.ndim != 3 or part.shape[0] != n or part.shape[2] != 2:
        problems.append(f"part is {part.shape}, expected ({n}, J, 2)")
    elif joints is not None and part.shape[1] != joints:
        problems.append(f"part has {part.shape[1]} joints, the dataset has {joints}")
    if len(names) != n:
        problems.append(f"imgname has {len(names)} rows, scale has {n}")
    if visible.shape != part.shape[:2]:
        problems.append(f"visible is {visible.shape}, expected {part.shape[:2]}")
    if norm.shape != (n,):
        problems.append(f"normalize is {norm.shape}, expected ({n},)")
    for key, arr in (("index", index), ("person", person)):
        if arr is not None and arr.shape != (n,):
            problems.append(f"{key} is {arr.shape}, expected ({n},)")
    if problems:
        raise HgxError(f"annotation file {path} has wrong shapes: {'; '.join(problems)}")
    return Annotations(path, center, scale, part, visible, norm, names, index, person)


class PoseDataset:
    """Crops, augments and labels people of one split (HRNet's JointsDataset, in one place).

    Items are addressed by keys (row, epoch, position); ``augment`` turns training
    augmentation on. An item is a compact ``batch.Sample`` (uint8 crop, joints, colour
    factors, meta), what a loader worker sends; ``example(key)`` gives the float image and
    heatmaps made from it.
    """

    def __init__(self, annot: Annotations, image_dir: Path, skeleton: Skeleton, opts,
                 augment: bool, seed: int = 0, scale_mult: float = 1.0):
        self.annot = annot
        self.scale_mult = scale_mult  # test-time scale: a box this many times the person's
        self.image_dir = Path(image_dir)
        self.skeleton = skeleton
        self.flip_index = skeleton.flip_index()
        self.augment = augment
        self.seed = seed
        self.input_res = opts.input_res
        self.output_res = opts.output_res
        self.opts = opts
        self._buffers: dict[tuple, np.ndarray] = {}  # decode targets, reused (per process)
        self.full_size: tuple[int, int] | None = None  # (w, h) of the last photograph read
        self.cache = None  # (dir, origin (N,2), factor (N,)) when reading from a crop cache

    def use_cache(self, directory: Path, origin: np.ndarray, factor: np.ndarray) -> None:
        """Read people's regions from a crop cache (hgx.data.cache) instead of the photos."""
        self.cache = (Path(directory), origin, factor)

    def __len__(self) -> int:
        return len(self.annot)

    # The recipe ------------------------------------------------------------------------------
    def box(self, row: int) -> tuple[np.ndarray, float]:
        """The crop box as stored: side 200 * scale around ``center`` (hgx.data.formats: the
        annotation files already hold pose-hg-train's adjusted box; pose-hg-demo main.lua:54-56
        crops them as stored)."""
        return self.annot.center[row].copy(), float(self.annot.scale[row])

    def augmentation(self, rng: np.random.Generator) -> tuple[float, float, bool, np.ndarray]:
        o = self.opts
        s = 2.0 ** float(np.clip(rng.standard_normal() * o.scale_aug, -2 * o.scale_aug,
                                 2 * o.scale_aug))
        r = float(np.clip(rng.standard_normal() * o.rotate_aug, -2 * o.rotate_aug,
                          2 * o.rotate_aug))
        if rng.random() >= o.rotate_prob:
            r = 0.0
        flip = bool(rng.random() < o.flip_prob)
        colour = rng.uniform(1 - o.color_aug, 1 + o.color_aug, size=3).astype(np.float32)
        return s, r, flip, colour

    def __getstate__(self):  # worker processes start with empty decode buffers
        state = self.__dict__.copy()
        state["_buffers"] = {}
        return state

    def load_image(self, row: int, reduce: int = 1) -> np.ndarray:
        """Row's photograph, decoded at 1/``reduce`` resolution (BGR, as ``cv2.imread`` gives
        it) into this process's reused array; overwritten by the next call."""
        path = self.image_dir / self.annot.imgname[row]
        image = self._read(path, reduce)
        if image is None:
            what = "missing" if not path.is_file() else "unreadable (corrupt?)"
            raise HgxError(f"image {path} ({self.annot.path.name} row {row}) is {what}; restore "
                           "it or remove the row from the annotation file")
        return image

    def _read(self, path: Path, reduce: int = 1, slot: str = "photo") -> np.ndarray | None:
        """Decode a file into the reused array of ``slot`` and ``reduce``; None if it is missing
        or unreadable. A fresh 2.7 MB array per photograph costs as much as the decode itself
        in page faults. JPEGs go through simplejpeg (libjpeg-turbo 3): the pixels of
        ``cv2.imread``, full or reduced, at 1.05-1.1x its rate (``benchmarks/bench_loader.py``);
        other files, and JPEGs it declines, through cv2."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        image = None
        self.full_size = None
        if data[:3] == b"\xff\xd8\xff":
            image = self._decode_jpeg(data, reduce, slot)
        if image is None and data:
            flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                    4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
            image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
            if image is not None:  # cv2's reduced size is ceil(size / reduce): near enough
                self.full_size = (image.shape[1] * reduce, image.shape[0] * reduce)
        return image

    def _decode_jpeg(self, data: bytes, reduce: int, slot: str) -> np.ndarray | None:
        try:
            import simplejpeg
        except ImportError:
            return None
        try:
            h, w, _, _ = simplejpeg.decode_jpeg_header(data)
            self.full_size = (w, h)  # the photograph's own size, before any reduced decode
            size = {}
            if reduce > 1:
                size = {"min_height": -(-h // reduce), "min_width": -(-w // reduce),
                        "min_factor": reduce}
                h, w, _, _ = simplejpeg.decode_jpeg_header(data, **size)
            buf = self._buffers.get((slot, reduce))
            if buf is None or buf.shape != (h, w, 3):
                buf = self._buffers[(slot, reduce)] = np.empty((h, w, 3), np.uint8)
            return simplejpeg.decode_jpeg(data, "BGR", buffer=buf, **size)
        except ValueError:  # corrupt, or a JPEG flavour it declines (e.g. CMYK)
            return None

    def sample(self, row: int, rng: np.random.Generator | None):
        center, scale = self.box(row)
        scale *= self.scale_mult
        rot, flip, colour = 0.0, False, None
        if self.augment and rng is not None:
            s, rot, flip, colour = self.augmentation(rng)
            scale *= s
        # Decode at 1/2, 1/4 or 1/8 resolution when the reduced image still has at least
        # input_res pixels across the crop (the warp then never upsamples).
        side = 200.0 * scale
        reduce = 1
        for f in (8, 4, 2):
            if side / self.input_res >= f:
                reduce = f
                break
        m_in = T.crop_matrix(center, scale, rot, self.input_res)
        if flip:  # mirror inside the warp: the crop comes out flipped, with no extra copy
            m_in = np.array([[-1, 0, self.input_res], [0, 1, 0]], np.float64) @ \
                np.vstack([m_in, [0, 0, 1]])
        if self.cache is not None:
            directory, origin, factor = self.cache
            image = self._read(directory / f"{row}.jpg", slot="cache")
            if image is None:
                raise HgxError(f"crop cache file {directory / f'{row}.jpg'} is missing or "
                               "corrupt; rebuild the cache with `hgx data cache`")
            f = factor[row]  # cached px -> image px: x = origin + x_c / f
            m_img = m_in @ np.array([[1 / f, 0, origin[row][0]], [0, 1 / f, origin[row][1]],
                                     [0, 0, 1.0]])
        else:
            image = self.load_image(row, reduce)
            m_img = m_in @ np.diag([reduce, reduce, 1.0]) if reduce > 1 else m_in
        crop = cv2.cvtColor(T.warp(image, m_img, self.input_res), cv2.COLOR_BGR2RGB)
        m_hm = T.crop_matrix(center, scale, rot, self.output_res)
        joints = T.apply(m_hm, self.annot.part[row])
        present = self.annot.present[row].copy()
        if flip:
            joints = T.flip_joints(joints, self.output_res, self.flip_index)
            present = present[self.flip_index]
            m_hm = np.array([[-1, 0, self.output_res], [0, 1, 0]], np.float64) @ \
                np.vstack([m_hm, [0, 0, 1]])
        # the photograph's size (w, h) where known (NaN from a crop cache): multi-scale
        # fusion clips to it as PyraNet's canvas does
        size = (np.array(self.full_size, np.float64) if self.cache is None and self.full_size
                else np.full(2, np.nan))
        meta = {"row": row, "hm_to_image": T.invert(m_hm).astype(np.float64), "flip": flip,
                "image_size": size}
        return Sample(crop, joints.astype(np.float32), present,
                      np.ones(3, np.float32) if colour is None else colour, meta)

    def example(self, key):
        """The network's input and target for ``key`` as training makes them, in numpy:
        (image (3, H, W) float32 in [0, 1], heatmaps (J, res, res) float32, meta)."""
        return finished(self[key], self.output_res, self.opts.hm_sigma)

    def __getitem__(self, key):
        row, epoch, position = key
        rng = np.random.default_rng([self.seed, epoch, position]) if self.augment else None
        return self.sample(row, rng)


class EpochSampler:
    """Deterministic keys (row, epoch, position) of one epoch, from iteration ``start`` on.

    Training: rows from permutations seeded by (seed, epoch), as many as ``iters`` global
    batches of ``batch * world`` (0 iters = one pass over the split). Validation: the first
    rows in file order. With several processes, rank r takes the r-th ``batch`` of each global
    batch, so N processes see exactly the samples of one process with N times the batch.
    """

    def __init__(self, n: int, batch: int, iters: int, seed: int, shuffle: bool,
                 rank: int = 0, world: int = 1):
        self.n, self.batch, self.iters, self.seed, self.shuffle = n, batch, iters, seed, shuffle
        self.rank, self.world = rank, world
        self.epoch, self.start = 1, 0

    def iterations(self) -> int:
        step = self.batch * self.world
        if self.iters:
            return self.iters if self.shuffle else min(self.iters, math.ceil(self.n / step))
        return self.n // step if self.shuffle else math.ceil(self.n / step)

    def set_epoch(self, epoch: int, start_iteration: int = 0) -> None:
        self.epoch, self.start = epoch, start_iteration

    def rows(self) -> np.ndarray:
        total = self.iterations() * self.batch * self.world
        if not self.shuffle:
            return np.arange(min(total, self.n))
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        reps = math.ceil(total / self.n)
        return np.concatenate([rng.permutation(self.n) for _ in range(reps)])[:total]

    def positions(self) -> np.ndarray:
        """This rank's global positions, from the start iteration on."""
        step = self.batch * self.world
        n = len(self.rows())
        first = np.arange(self.start * step + self.rank * self.batch, n, step)
        pos = (first[:, None] + np.arange(self.batch)[None, :]).reshape(-1)
        return pos[pos < n]

    def __iter__(self):
        rows = self.rows()
        for pos in self.positions():
            yield int(rows[pos]), self.epoch, int(pos)

    def __len__(self) -> int:
        return len(self.positions())

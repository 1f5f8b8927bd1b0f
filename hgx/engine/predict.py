"""Predictions on a whole split: heatmaps -> coordinates in original image pixels, in the order
of the split's annotation file. Flip testing (pose-hg-train) and multi-scale testing (PyraNet's
evalPyra.lua, fused in the original image) optional.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hgx.data import labels
from hgx.data import transforms as T
from hgx.data.batch import to_device
from hgx.data.dataset import EpochSampler, PoseDataset
from hgx.data.loader import make_loader
from hgx.engine.device import Runtime
from hgx.engine.progress import Progress


@dataclass
class Predictions:
    preds: np.ndarray     # (N, J, 2) original image px
    scores: np.ndarray    # (N, J) heatmap peak values
    rows: np.ndarray      # (N,) annotation rows, 0..N-1 in file order


# PyraNet's multi-scale test: the person box times these (bearpaw/PyraNet evalPyra.lua:22,
# torch.range(0.8, 1.3, 0.1)); `--scales pyranet` picks them.
PYRANET_SCALES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3)


def footprint(hm_to_image: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray]:
    """A crop's heatmap square [0, res]^2 in image pixels: (upper-left, lower-right) corners
    (test-time crops are not rotated)."""
    ul = T.apply(hm_to_image, np.array([[0.0, 0.0]]))[0]
    br = T.apply(hm_to_image, np.array([[float(res), float(res)]]))[0]
    return ul, br


def fuse_in_image(per_scale: list[torch.Tensor], maps: list[np.ndarray],
                  image_size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PyraNet's multi-scale fusion for one person (bearpaw/PyraNet train.lua:224-328,
    ``multiScaleTest`` + ``getHeatmaps``): each scale's (flip-averaged) last-stack heatmaps
    (J, R, R) are resized bilinearly (align-corners, as Torch's image.scale) to the crop's
    footprint in the original image and pasted into a zero canvas of image pixels; the canvases
    are averaged over the scales (zero where a scale's crop does not reach), and each joint is
    the integer argmax of the average, no sub-pixel step. The canvas is the union of the
    footprints clipped to the photograph (PyraNet's is the whole image: the same argmax,
    without the all-zero rest); a footprint's pixel j covers image pixel ul + j, where
    PyraNet's paste is one pixel further right and down than its own crop (train.lua:248-261
    against datasets/posetransforms.lua:86-89), a quirk not reproduced.

    Returns (joints (J, 2) in image px, at pixel centres; peak values (J,))."""
    res = per_scale[0].shape[-1]
    boxes = [footprint(m, res) for m in maps]
    ul = np.floor(np.min([u for u, _ in boxes], axis=0))
    br = np.ceil(np.max([b for _, b in boxes], axis=0))
    if np.all(np.isfinite(image_size)):
        ul, br = np.maximum(ul, 0.0), np.minimum(br, image_size)
    x0, y0 = int(ul[0]), int(ul[1])
    w, h = max(1, int(br[0]) - x0), max(1, int(br[1]) - y0)
    hm = per_scale[0]
    canvas = torch.zeros((hm.shape[0], h, w), dtype=torch.float32, device=hm.device)
    for maps_k, (u, b) in zip(per_scale, boxes):
        fx0, fy0 = int(np.floor(u[0] + 0.5)), int(np.floor(u[1] + 0.5))
        fw, fh = int(np.floor(b[0] + 0.5)) - fx0, int(np.floor(b[1] + 0.5)) - fy0
        if fw < 2 or fh < 2:
            continue
        big = F.interpolate(maps_k[None].float(), size=(fh, fw), mode="bilinear",
                            align_corners=True)[0]
        cx0, cy0 = max(fx0, x0), max(fy0, y0)
        cx1, cy1 = min(fx0 + fw, x0 + w), min(fy0 + fh, y0 + h)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        canvas[:, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] += \
            big[:, cy0 - fy0:cy1 - fy0, cx0 - fx0:cx1 - fx0]
    canvas /= len(per_scale)
    peak, idx = canvas.reshape(canvas.shape[0], -1).max(dim=1)
    xs, ys = (idx % w).cpu().numpy(), (idx // w).cpu().numpy()
    joints = np.stack([xs + x0 + 0.5, ys + y0 + 0.5], axis=1).astype(np.float64)
    return joints, peak.cpu().numpy()


def flip_back(heatmaps: torch.Tensor, flip_index: list[int]) -> torch.Tensor:
    """Heatmaps of a mirrored image -> heatmaps of the original (mirror, swap left/right)."""
    return heatmaps.flip(-1)[:, flip_index]


@torch.no_grad()
def heatmaps_for(model, images: torch.Tensor, runtime: Runtime, flip: bool,
                 flip_index: list[int]) -> torch.Tensor:
    with runtime.autocast():
        out = model(images)[-1].float()
        if flip:
            out = (out + flip_back(model(images.flip(-1))[-1].float(), flip_index)) / 2
    return out


@torch.no_grad()
def predict(model, dataset: PoseDataset, runtime: Runtime, batch: int = 8, flip: bool = False,
            scales: tuple[float, ...] = (1.0,), workers: int = 0, label: str = "predict",
            interactive: bool | None = None, limit: int = 0) -> Predictions:
    """Run ``model`` over ``dataset`` (no augmentation) and return image-space predictions.

    One scale (1): pose-hg-train's decode of the last stack (argmax and a quarter pixel toward
    the higher neighbour, mapped back through the crop). Several: PyraNet's multi-scale test,
    each scale's heatmaps fused in the original image (``fuse_in_image``). ``flip`` averages
    each crop's heatmaps with its mirror image's first."""
    scales = tuple(float(s) for s in scales) or (1.0,)
    fused = scales != (1.0,)
    model.eval()
    sampler = EpochSampler(len(dataset), batch, 0, 0, shuffle=False)
    if limit:
        sampler.iters = -(-limit // batch)
    progress = Progress(interactive)
    bar = progress.start(label, sampler.iterations())
    flip_index = dataset.skeleton.flip_index()
    all_preds, all_scores, all_rows = [], [], []
    loaders = []
    for s in scales:  # one loader per scale, hgx's own (its workers' thread and fork set-up)
        view = PoseDataset(dataset.annot, dataset.image_dir, dataset.skeleton, dataset.opts,
                           augment=False, seed=dataset.seed, scale_mult=s)
        loaders.append(make_loader(view, sampler, batch, workers,
                                   runtime.device.type == "cuda"))
    try:
        for i, batches in enumerate(zip(*loaders)):
            per_scale = []
            for batch in batches:
                images, _ = to_device(batch, runtime.device, runtime.channels_last,
                                      dataset.output_res, dataset.opts.hm_sigma, heatmaps=False)
                per_scale.append(heatmaps_for(model, images, runtime, flip, flip_index))
            meta = batches[0].meta
            if fused:
                out = [fuse_in_image([hm[b] for hm in per_scale],
                                     [bt.meta["hm_to_image"][b] for bt in batches],
                                     meta["image_size"][b]) for b in range(len(meta["row"]))]
                all_preds.append(np.stack([p for p, _ in out]))
                all_scores.append(np.stack([sc for _, sc in out]))
            else:
                coords, scores = (t.cpu().numpy() for t in labels.decode(per_scale[0]))
                all_preds.append(np.stack([T.apply(m, c) for m, c in
                                           zip(meta["hm_to_image"], coords)]))
                all_scores.append(scores)
            all_rows.append(meta["row"])
            bar.update(i + 1)
    finally:
        bar.finish()
        progress.close()
    rows = np.concatenate(all_rows)
    order = np.argsort(rows, kind="stable")
    return Predictions(np.concatenate(all_preds)[order], np.concatenate(all_scores)[order],
                       rows[order])


def write_h5(path: Path, pred: Predictions, annot, info: dict | None = None) -> None:
    """pose-hg-train's layout: ``preds`` (N,J,2) original-image px, rows in annotation order;
    ``index``/``person`` when the annotations have them; ``info`` (what produced the numbers:
    snapshot, split, flip, scales) as attributes."""
    import io

    import h5py

    from hgx.files import atomic_write

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["preds"] = pred.preds
        f["scores"] = pred.scores
        f["imgname"] = np.array([annot.imgname[r].encode() for r in pred.rows])
        f["center"] = annot.center[pred.rows]
        f["scale"] = annot.scale[pred.rows]
        for key in ("index", "person"):
            if getattr(annot, key, None) is not None:
                f[key] = getattr(annot, key)[pred.rows]
        for key, value in (info or {}).items():
            f.attrs[key] = value
    atomic_write(Path(path), buf.getvalue())

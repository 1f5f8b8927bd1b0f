"""Predictions on a whole split: heatmaps -> coordinates in original image pixels, in the order
of the split's annotation file. Flip testing and multi-scale testing (PyraNet-style) optional.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hgx.data import labels
from hgx.data import transforms as T
from hgx.data.batch import collate, to_device
from hgx.data.dataset import EpochSampler, PoseDataset
from hgx.engine.device import Runtime
from hgx.engine.progress import Progress


@dataclass
class Predictions:
    preds: np.ndarray     # (N, J, 2) original image px
    scores: np.ndarray    # (N, J) heatmap peak values
    rows: np.ndarray      # (N,) annotation rows, 0..N-1 in file order


def to_reference_frame(heatmaps: torch.Tensor, factor: float) -> torch.Tensor:
    """Resample heatmaps of a box ``factor`` times the reference box into the reference box."""
    if factor == 1.0:
        return heatmaps
    b = heatmaps.shape[0]
    theta = torch.tensor([[1 / factor, 0, 0], [0, 1 / factor, 0]], dtype=heatmaps.dtype,
                         device=heatmaps.device).expand(b, 2, 3)
    grid = F.affine_grid(theta, list(heatmaps.shape), align_corners=False)
    return F.grid_sample(heatmaps, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


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
    """Run ``model`` over ``dataset`` (no augmentation) and return image-space predictions."""
    scales = (1.0, *[s for s in scales if s != 1.0])  # 1.0 first: the reference frame
    model.eval()
    sampler = EpochSampler(len(dataset), batch, 0, 0, shuffle=False)
    if limit:
        sampler.iters = -(-limit // batch)
    progress = Progress(interactive)
    bar = progress.start(label, sampler.iterations())
    flip_index = dataset.skeleton.flip_index()
    all_preds, all_scores, all_rows = [], [], []
    loaders = []
    if workers > 0:
        from hgx.data.loader import fork_safe

        fork_safe()
    for s in scales:
        view = PoseDataset(dataset.annot, dataset.image_dir, dataset.skeleton, dataset.opts,
                           augment=False, seed=dataset.seed, scale_mult=s)
        loaders.append(torch.utils.data.DataLoader(
            view, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate,
            pin_memory=runtime.device.type == "cuda"))
    try:
        for i, batches in enumerate(zip(*loaders)):
            acc = None
            for s, batch in zip(scales, batches):
                images, _ = to_device(batch, runtime.device, runtime.channels_last,
                                      dataset.output_res, dataset.opts.hm_sigma, heatmaps=False)
                hm = to_reference_frame(heatmaps_for(model, images, runtime, flip, flip_index),
                                        s)
                acc = hm if acc is None else acc + hm
            coords, scores = (t.cpu().numpy() for t in labels.decode(acc / len(scales)))
            meta = batches[0].meta  # the reference (first) scale's crop maps
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

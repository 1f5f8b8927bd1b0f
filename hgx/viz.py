"""Pictures of an experiment's predictions: skeletons on validation crops, and heatmaps.

The experiment's model (``options.yaml``'s architecture, a snapshot's weights) runs on CPU on
unaugmented crops of a split (``input_res`` px, as the network sees them); the last stack's
heatmaps are decoded (argmax + quarter-pixel shift) and scaled to crop pixels by
``input_res / output_res``. Ground truth is drawn where the annotation has the joint.

Colours: one per limb, in three families: the person's left limbs blues, right limbs
reds/oranges, centre (spine, head) greens. Prediction: solid lines and filled dots; ground
truth: thin white dashed lines with hollow dots, under the prediction.

Nothing is written into the experiment: the picture goes to ``out`` (by default
``./<name>-samples.png`` / ``./<name>-heatmaps.png``), and a path inside the experiment is
refused.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hgx.errors import HgxError, UsageError

__all__ = ["draw_samples", "draw_heatmaps", "limb_colors", "Predicted", "predict_crops"]

FAMILIES = {"l": "Blues", "r": "Oranges", "c": "Greens"}


def limb_colors(limbs) -> list[tuple]:
    """An RGBA colour per limb: shades of blue (left), orange-red (right), green (centre),
    darker along each side's limbs so neighbouring limbs differ."""
    from matplotlib import colormaps

    by_side: dict[str, list[int]] = {}
    for i, (_, _, side) in enumerate(limbs):
        by_side.setdefault(side, []).append(i)
    colors: list[tuple] = [(0, 0, 0, 1)] * len(limbs)
    for side, idx in by_side.items():
        cmap = colormaps[FAMILIES.get(side, "Greys")]
        shades = np.linspace(0.5, 0.95, len(idx)) if len(idx) > 1 else [0.75]
        for i, s in zip(idx, shades):
            colors[i] = cmap(float(s))
    return colors


def joint_colors(skeleton) -> list[tuple]:
    """A colour per joint: its side's family (l_/r_ prefix), else the centre's."""
    from matplotlib import colormaps

    out = []
    for name in skeleton.joints:
        side = "l" if name.startswith("l_") else "r" if name.startswith("r_") else "c"
        out.append(colormaps[FAMILIES[side]](0.8))
    return out


# -- running the model --------------------------------------------------------------------------
@dataclass
class Predicted:
    images: np.ndarray        # (N, H, W, 3) float [0,1], the crops
    heatmaps: np.ndarray      # (N, J, h, w), last stack
    pred: np.ndarray          # (N, J, 2) crop px
    scores: np.ndarray        # (N, J) heatmap peaks
    truth: np.ndarray         # (N, J, 2) crop px
    known: np.ndarray         # (N, J) bool: the annotation has this joint
    pckh: list[tuple[int, int] | None]  # per crop: (joints within 0.5 head, joints known)
    rows: list[int]
    skeleton: object
    snapshot: Path
    name: str


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


def _experiment(exp_path):
    from hgx.experiment import Experiment

    path = Path(exp_path)
    if not (path / "options.yaml").is_file():
        raise HgxError(f"{path} is not an hgx experiment directory (no options.yaml)")
    return Experiment(path)


def predict_crops(exp_path, rows: list[int] | None = None, n: int = 8,
                  snapshot: str = "best", split: str = "valid", log=None) -> Predicted:
    """Run the experiment's model on ``rows`` of ``split`` (default: ``n`` rows spread over
    it), on CPU, without augmentation or flip testing."""
    import torch

    from hgx import checkpoint
    from hgx import options as hopts
    from hgx.data import open_split, skeleton_for
    from hgx.data import transforms as T
    from hgx.models import build_model

    exp = _experiment(exp_path)
    opts = hopts.Options(**exp.options())
    snap, data = checkpoint.select(exp, snapshot, warn=log or _stderr, best_falls_back=True)
    skeleton = skeleton_for(opts, log=log or _stderr)
    model = build_model(opts, skeleton.num_joints)
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as err:
        raise HgxError(f"{snap} does not fit the model of {exp.name}'s options.yaml "
                       f"({str(err).splitlines()[0]})") from None
    model.eval()
    ds = open_split(opts, split, log=log or _stderr)
    if len(ds) == 0:
        raise HgxError(f"the {split} split of {exp.name}'s dataset is empty")
    if rows is None:
        if n < 1:
            raise UsageError(f"--samples: expected at least 1, got {n}")
        rows = sorted(set(np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)))
    bad = [r for r in rows if not 0 <= r < len(ds)]
    if bad:
        raise UsageError(f"sample {bad[0]} is out of range: the {split} split has {len(ds)} "
                         f"people (0..{len(ds) - 1})")
    items = [ds.example((int(r), 0, 0)) for r in rows]
    images = np.stack([it[0] for it in items])
    with torch.no_grad():
        heatmaps = np.concatenate([model(torch.from_numpy(images[i:i + 8]))[-1].float().numpy()
                                   for i in range(0, len(images), 8)])
    coords, scores = T.decode(heatmaps)
    ratio = opts.input_res / opts.output_res
    pred = coords * ratio
    annot = ds.annot
    truth, known, pckh = [], [], []
    for r, it in zip(rows, items):
        center, scale = ds.box(r)
        m_in = T.crop_matrix(center, scale * ds.scale_mult, 0.0, opts.input_res)
        truth.append(T.apply(m_in, annot.part[r]))
        known.append(annot.present[r].copy())
    truth, known = np.stack(truth), np.stack(known)
    for k, (r, it) in enumerate(zip(rows, items)):
        head = annot.normalize[r]
        if not (np.isfinite(head) and head > 0) or not known[k].any():
            pckh.append(None)
            continue
        to_image = it[2]["hm_to_image"]
        img_pred = T.apply(to_image, coords[k])
        dist = np.linalg.norm(img_pred - annot.part[r], axis=-1) / head
        ok = known[k]
        pckh.append((int((dist[ok] <= 0.5).sum()), int(ok.sum())))
    return Predicted(images.transpose(0, 2, 3, 1), heatmaps, pred, scores, truth, known, pckh,
                     [int(r) for r in rows], skeleton, snap, exp.name)


# -- drawing ------------------------------------------------------------------------------------
def _check_out(out, exp_path, default_name: str) -> Path:
    from hgx.compare import check_out

    _experiment(exp_path)
    out = Path(default_name) if out is None else Path(out)
    return check_out(out, [Path(exp_path)], default=f"./{default_name}")


def _draw_skeleton(ax, pts, known, skeleton, colors, truth: bool, lw: float) -> None:
    for (a, b, _), color in zip(skeleton.limbs, colors):
        if not (known[a] and known[b]):
            continue
        xs, ys = [pts[a, 0], pts[b, 0]], [pts[a, 1], pts[b, 1]]
        if truth:
            ax.plot(xs, ys, color="white", linewidth=lw * 0.6, linestyle=(0, (2, 1.5)),
                    alpha=0.9, solid_capstyle="round", zorder=2)
        else:
            ax.plot(xs, ys, color="black", linewidth=lw + 1.2, alpha=0.35,
                    solid_capstyle="round", zorder=3)
            ax.plot(xs, ys, color=color, linewidth=lw, solid_capstyle="round", zorder=4)
    jc = joint_colors(skeleton)
    for j in range(len(pts)):
        if not known[j]:
            continue
        if truth:
            ax.plot(pts[j, 0], pts[j, 1], "o", markersize=lw * 1.3, markerfacecolor="none",
                    markeredgecolor="white", markeredgewidth=0.8, zorder=2)
        else:
            ax.plot(pts[j, 0], pts[j, 1], "o", markersize=lw * 1.2, markerfacecolor=jc[j],
                    markeredgecolor="black", markeredgewidth=0.5, zorder=5)


def _legend_handles(skeleton):
    from matplotlib.lines import Line2D

    fam = {}
    for (_, _, side), color in zip(skeleton.limbs, limb_colors(skeleton.limbs)):
        fam.setdefault(side, color)
    names = {"l": "left (prediction)", "r": "right (prediction)", "c": "centre (prediction)"}
    out = [Line2D([], [], color=fam[s], linewidth=2.5, label=names[s])
           for s in ("l", "r", "c") if s in fam]
    out.append(Line2D([], [], color="0.4", linewidth=1.2, linestyle=(0, (2, 1.5)),
                      marker="o", markerfacecolor="none", label="ground truth"))
    return out


def draw_samples(exp_path, n: int = 8, out=None, snapshot: str = "best",
                 split: str = "valid", *, rows: list[int] | None = None,
                 truth: bool = True, log=None) -> Path:
    """Predicted skeletons (and ground truth when the annotation has it) on ``n`` crops of
    ``split`` spread over it, as a PNG/SVG/PDF grid at ``out`` (default
    ``./<name>-samples.png``). Returns the path written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hgx.compare import save_figure

    exp_path = Path(exp_path)
    target = _check_out(out, exp_path, f"{exp_path.name}-samples.png")
    p = predict_crops(exp_path, rows=rows, n=n, snapshot=snapshot, split=split, log=log)
    count = len(p.rows)
    ncols = min(count, 4 if count <= 8 else 6 if count > 16 else 4)
    nrows = math.ceil(count / ncols)
    cell = 2.6
    fig = Figure(figsize=(cell * ncols, cell * nrows + 0.75))
    FigureCanvasAgg(fig)
    top = 1 - 0.45 / (cell * nrows + 0.75)
    bottom = 0.3 / (cell * nrows + 0.75)
    axes = fig.subplots(nrows, ncols, squeeze=False,
                        gridspec_kw=dict(left=0.01, right=0.99, top=top, bottom=bottom,
                                         wspace=0.04, hspace=0.16))
    colors = limb_colors(p.skeleton.limbs)
    res = p.images.shape[1]
    lw = max(1.2, 2.2 * cell / 2.6)
    for k in range(nrows * ncols):
        ax = axes[k // ncols][k % ncols]
        ax.set_axis_off()
        if k >= count:
            continue
        ax.imshow(p.images[k], extent=(0, res, res, 0), interpolation="bilinear")
        if truth and p.known[k].any():
            _draw_skeleton(ax, p.truth[k], p.known[k], p.skeleton, colors, True, lw)
        _draw_skeleton(ax, p.pred[k], np.ones(len(p.pred[k]), bool), p.skeleton, colors,
                       False, lw)
        ax.set_xlim(0, res)
        ax.set_ylim(res, 0)
        score = p.pckh[k]
        label = f"{split} #{p.rows[k]}" + (f"  PCKh {score[0]}/{score[1]}" if score else "")
        ax.set_title(label, fontsize=8, pad=2)
    fig.text(0.01, 1 - 0.12 / (cell * nrows + 0.75),
             f"{p.name} · {p.snapshot.name} · {count} {split} crops", fontsize=10,
             ha="left", va="top")
    fig.legend(handles=_legend_handles(p.skeleton), loc="lower center", ncols=4, fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 0.0), borderaxespad=0.1)
    return save_figure(fig, target)


def draw_heatmaps(exp_path, out=None, index: int = 0, snapshot: str = "best",
                  split: str = "valid", *, log=None) -> Path:
    """One crop's heatmaps (row ``index`` of ``split``), one panel per joint over the dimmed
    crop, after a panel of the crop with its predicted skeleton; PNG/SVG/PDF at ``out``
    (default ``./<name>-heatmaps.png``). Returns the path written."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hgx.compare import save_figure

    exp_path = Path(exp_path)
    target = _check_out(out, exp_path, f"{exp_path.name}-heatmaps.png")
    p = predict_crops(exp_path, rows=[index], snapshot=snapshot, split=split, log=log)
    sk = p.skeleton
    panels = sk.num_joints + 1
    ncols = 6 if panels > 12 else 4
    nrows = math.ceil(panels / ncols)
    cell = 2.2
    height = cell * nrows + 0.5
    fig = Figure(figsize=(cell * ncols, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False,
                        gridspec_kw=dict(left=0.01, right=0.99, top=1 - 0.45 / height,
                                         bottom=0.02, wspace=0.04, hspace=0.18))
    image = p.images[0]
    res = image.shape[0]
    grey = image.mean(axis=2)
    hm = p.heatmaps[0]
    vmax = max(float(hm.max()), 1e-6)
    colors = limb_colors(sk.limbs)
    for k in range(nrows * ncols):
        ax = axes[k // ncols][k % ncols]
        ax.set_axis_off()
        if k == 0:
            ax.imshow(image, extent=(0, res, res, 0))
            if p.known[0].any():
                _draw_skeleton(ax, p.truth[0], p.known[0], sk, colors, True, 1.6)
            _draw_skeleton(ax, p.pred[0], np.ones(sk.num_joints, bool), sk, colors, False, 1.6)
            ax.set_xlim(0, res)
            ax.set_ylim(res, 0)
            ax.set_title("prediction", fontsize=8, pad=2)
            continue
        j = k - 1
        if j >= sk.num_joints:
            continue
        ax.imshow(grey, cmap="gray", extent=(0, res, res, 0), vmin=0, vmax=1.6)
        level = np.clip(hm[j] / vmax, 0, 1)
        overlay = colormaps["inferno"](0.25 + 0.75 * level)
        overlay[..., 3] = 0.85 * level  # low values let the crop show through
        ax.imshow(overlay, extent=(0, res, res, 0), interpolation="bilinear")
        for color, width in (("black", 3.2), ("white", 1.6)):  # the peak, visible on any map
            ax.plot(p.pred[0, j, 0], p.pred[0, j, 1], "+", color=color, markersize=10,
                    markeredgewidth=width)
        ax.set_xlim(0, res)
        ax.set_ylim(res, 0)
        ax.set_title(f"{sk.joints[j]}  {p.scores[0, j]:.2f}", fontsize=8, pad=2)
    fig.text(0.01, 1 - 0.1 / height, f"{p.name} · {p.snapshot.name} · {split} #{p.rows[0]} · "
             f"heatmaps of the last stack (peak value after the name; colour scale shared)",
             fontsize=9, ha="left", va="top")
    return save_figure(fig, target)

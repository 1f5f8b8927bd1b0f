"""Evaluation of pose predictions: MPII PCKh (papers' and official conventions), torso PCK for
FLIC/LSP, file loading, result tables and curves.

    >>> from hgx.eval import evaluate, format_table, plot_curves
    >>> result = evaluate("preds.h5", "detections_our_format.mat")   # or annot/valid.h5
    >>> result["Mean"], result["official"]["Total"]

See :mod:`hgx.eval.pck` for the exact definitions of every column.
"""
from .evaluate import evaluate
from .io import GroundTruth, load_gt, load_preds
from .pck import normalized_distances, pck, pckh
from .plot import format_table, plot_curves

__all__ = [
    "GroundTruth",
    "evaluate",
    "format_table",
    "load_gt",
    "load_preds",
    "normalized_distances",
    "pck",
    "pckh",
    "plot_curves",
]

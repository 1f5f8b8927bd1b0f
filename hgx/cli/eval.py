"""`hgx eval` and `hgx finalize`: PCKh tables and final predictions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from hgx.cli.app import ExpDir, app, console
from hgx.errors import UsageError


def _scales(text: Optional[str]) -> tuple[float, ...]:
    """--scales: numbers, or `pyranet` for PyraNet's six (0.8 ... 1.3, evalPyra.lua:22)."""
    if not text:
        return (1.0,)
    if text.strip().lower() == "pyranet":
        from hgx.engine.predict import PYRANET_SCALES

        return PYRANET_SCALES
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise UsageError(f"--scales: expected numbers such as 1 0.75 1.25, got {text!r}") from None
    if not values or min(values) <= 0:
        raise UsageError(f"--scales: expected positive numbers, got {text!r}")
    return values


def _data_overrides(dataset, data_dir) -> dict:
    from hgx import options as hopts

    raw = {"dataset": dataset, "data_dir": data_dir}
    return {k: hopts.coerce(k, v) for k, v in raw.items() if v is not None}


@app.command("eval")
def eval_cmd(
    names: Optional[List[str]] = typer.Argument(None, help="Experiments to evaluate."),
    preds: Optional[List[str]] = typer.Option(None, "--preds", help="Prediction file(s) "
                                              "(h5 or .mat, preds (N,J,2) or (2,J,N))."),
    gt: Optional[str] = typer.Option(None, "--gt", help="Ground truth for --preds: an "
                                     "annot .h5 (valid.h5 layout) or detections_our_format"
                                     ".mat (default ./data/mpii/annot/valid.h5)."),
    split: str = typer.Option("valid", "--split", help="Split to run experiments on."),
    snapshot: str = typer.Option("best", "--snapshot", help="best, last or an epoch."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Average with the mirrored "
                              "image's heatmaps, as pose-hg-train's validation and final "
                              "predictions do."),
    scales: Optional[str] = typer.Option(None, "--scales", help="Test scales, e.g. pyranet "
                                         "(0.8 0.9 1 1.1 1.2 1.3, PyraNet's) or "
                                         "1 0.75 1.25 (heatmaps averaged)."),
    load_model: Optional[str] = typer.Option(None, "--load-model",
                                             help="Evaluate these weights instead."),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    limit: int = typer.Option(0, "--limit", help="Only the first N people (0 = all)."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write the PCKh-vs-threshold "
                                       "figure (PNG, SVG or PDF)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    exp_dir: Optional[str] = ExpDir,
):
    """Per-joint PCKh@0.5 (MPII) or PCK@0.2 (FLIC) of experiments or prediction files."""
    from hgx.experiment import Experiment, exp_root

    names, preds = list(names or []), list(preds or [])
    if not names and not preds and not load_model:
        raise UsageError("give experiment NAMEs, --preds FILE or --load-model PATH")
    results: dict[str, dict] = {}
    if preds:
        from hgx.eval import evaluate

        gt_path = gt or "data/mpii/annot/valid.h5"
        if not Path(gt_path).is_file():
            raise UsageError(f"ground truth {gt_path} not found; pass --gt FILE (an annot "
                             ".h5 or detections_our_format.mat)")
        for p in preds:
            results[p] = evaluate(p, gt_path)
    if names or load_model:
        from hgx.engine import finalize as fin
        from hgx.eval.score import score

        over = _data_overrides(dataset, data_dir)
        root = exp_root(exp_dir)
        targets = [(n, Experiment.open(root, n)) for n in names] or [(load_model, None)]
        for label, exp in targets:
            loaded = fin.load_model_for(exp, snapshot, load_model or "", over)
            pred, ds = fin.run(loaded, split, flip, _scales(scales), limit=limit)
            if limit:
                ds.annot = _head(ds.annot, len(pred.rows))
            results[label] = score(pred.preds, ds)
            results[label]["produced_by"] = fin.provenance(loaded, split, flip,
                                                           _scales(scales))
    if plot:
        from hgx.eval import plot_curves

        plot_curves(results, plot)
    if as_json:
        out = next(iter(results.values())) if len(results) == 1 else results
        print(json.dumps(out, indent=1))
    else:
        from hgx.engine.finalize import describe
        from hgx.eval import format_table

        for label, result in results.items():
            console.print(f"[bold]{label}[/]  ({result.get('count')} people)")
            if "produced_by" in result:
                console.print(f"from {describe(result['produced_by'])}")
            console.print(format_table(result))
    if plot:
        console.print(f"wrote {plot}")


@app.command("finalize")
def finalize_cmd(
    name: Optional[str] = typer.Argument(None, help="Experiment (or use --load-model)."),
    split: str = typer.Option("test", "--split", help="test (the MPII submission) or "
                              "valid (scored by `hgx eval --preds`)."),
    snapshot: str = typer.Option("best", "--snapshot", help="best, last or an epoch."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Average with the mirrored "
                              "image's heatmaps (pose-hg-train's -finalPredictions always "
                              "does)."),
    scales: Optional[str] = typer.Option(None, "--scales", help="Test scales (several: "
                                         "fused in the image as PyraNet's evalPyra.lua; "
                                         "pyranet = its 0.8 ... 1.3)."),
    mpii_release: Optional[str] = typer.Option(
        None, "--mpii-release", help="MPII's mpii_human_pose_v1_u12_1.mat: also write "
        "pred_keypoints_mpii.mat, the MPII test server's submission."),
    load_model: Optional[str] = typer.Option(None, "--load-model",
                                             help="Weights to use without an experiment."),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir"),
    out: Optional[str] = typer.Option(None, "--out", help="Output .h5 (default "
                                      "exp/NAME/final_preds.h5, valid_preds.h5 for "
                                      "--split valid, or ./final_preds.h5)."),
    exp_dir: Optional[str] = ExpDir,
):
    """Predictions on a whole split in pose-hg-train's final_preds.h5 layout, and with
    --mpii-release the MPII test server's pred_keypoints_mpii.mat."""
    from hgx.engine import finalize as fin
    from hgx.experiment import Experiment, exp_root

    exp = Experiment.open(exp_root(exp_dir), name) if name else None
    if exp is None and not load_model:
        raise UsageError("give an experiment NAME or --load-model PATH")
    stem = "final_preds.h5" if split == "test" else f"{split}_preds.h5"
    target = Path(out) if out else (exp.path / stem if exp else Path(stem))
    if target.suffix != ".h5":
        raise UsageError(f"--out {target}: expected a .h5 file name")
    if mpii_release is not None:
        if split != "test":
            raise UsageError("--mpii-release writes the test server's submission: it needs "
                             "--split test")
        if not Path(mpii_release).is_file():
            raise UsageError(f"--mpii-release {mpii_release}: file not found; pass MPII's "
                             "mpii_human_pose_v1_u12_1.mat")
    loaded = fin.load_model_for(exp, snapshot, load_model or "",
                                _data_overrides(dataset, data_dir))
    pred, ds = fin.run(loaded, split, flip, _scales(scales))
    info = fin.provenance(loaded, split, flip, _scales(scales))
    written = fin.write_final(target, pred, ds, info,
                              Path(mpii_release) if mpii_release else None)
    console.print(f"wrote {len(pred.rows)} people's predictions from {fin.describe(info)} "
                  "to " + " and ".join(str(p) for p in written))
    if split != "test":
        console.print(f"score them: hgx eval --preds {written[0]} --gt {ds.annot.path}")
    elif mpii_release is None:
        again = f"hgx finalize {name}" if name else "hgx finalize --load-model ..."
        console.print("no MPII submission written: add --mpii-release "
                      f"mpii_human_pose_v1_u12_1.mat (`{again} --mpii-release FILE`) to "
                      f"write {target.parent / 'pred_keypoints_mpii.mat'}")


def _head(annot, n: int):
    """The first ``n`` rows of an annotation set (for --limit)."""
    from dataclasses import replace

    cut = (lambda a: None if a is None else a[:n])  # noqa: E731
    return replace(annot, center=annot.center[:n], scale=annot.scale[:n], part=annot.part[:n],
                   visible=annot.visible[:n], normalize=annot.normalize[:n],
                   imgname=annot.imgname[:n], index=cut(annot.index), person=cut(annot.person))

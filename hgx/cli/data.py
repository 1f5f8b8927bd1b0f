"""`hgx data synth|cache|prepare ...`: make and convert datasets."""
from __future__ import annotations

from typing import Optional

import typer

from hgx import options as hopts
from hgx.cli.app import console, data_app, prepare_app


@data_app.command("synth")
def data_synth(directory: str = typer.Argument(..., help="Output directory (new or empty)."),
               seed: int = typer.Option(0, "--seed"),
               size: str = typer.Option("1280x720", "--size", help="Image size WxH."),
               train: int = typer.Option(1000, "--train", min=1),
               valid: int = typer.Option(200, "--valid", min=1),
               test: int = typer.Option(200, "--test", min=1)):
    """Generate the synthetic-people dataset in the MPII layout (images/, annot/*.h5)."""
    from hgx.data.synth import generate

    w, h = hopts.parse_size(size, "--size")
    with console.status("generating") as status:
        info = generate(directory, seed=seed, size=(w, h), n_train=train, n_valid=valid,
                        n_test=test, progress=lambda d, t: status.update(f"generating {d}/{t}"))
    console.print(f"wrote {info['images']} images and annot/{{train,valid,test}}.h5 "
                  f"({info['train']}/{info['valid']}/{info['test']} people) to {info['dir']}")


@data_app.command("cache")
def data_cache(data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Dataset "
                                                      "directory (default: --dataset's)."),
               dataset: str = typer.Option("synthetic", "--dataset"),
               input_res: int = typer.Option(256, "--input-res", min=16),
               scale_aug: float = typer.Option(0.25, "--scale-aug", min=0),
               splits: str = typer.Option("train,valid", "--splits")):
    """Store each person's region once, so epochs never decode whole photographs
    (train with --crop-cache)."""
    from hgx.data import data_dir as find_data
    from hgx.data.cache import build

    opts = hopts.resolve(None, None, {k: hopts.coerce(k, v) for k, v in
                                      {"data_dir": data_dir, "dataset": dataset,
                                       "input_res": input_res, "scale_aug": scale_aug}.items()
                                      if v is not None})
    root = find_data(opts)
    with console.status("caching") as status:
        out = build(root, opts, tuple(s for s in splits.split(",") if s),
                    progress=lambda sp, d, t: status.update(f"caching {sp} {d}/{t}"))
    console.print(f"wrote the crop cache {out}; train with --crop-cache --data-dir {root}")


def _prepared(summary: dict) -> None:
    splits = ", ".join(f"{k} {v}" for k, v in summary.get("splits", {}).items())
    skipped = {k: v for k, v in summary.get("skipped", {}).items() if v}
    console.print(f"wrote {summary.get('out')}/annot: {splits}"
                  + (f"; skipped {skipped}" if skipped else ""))
    console.print(f"train on it: hgx new NAME --dataset {summary.get('dataset')} --data-dir "
                  f"{summary.get('out')}")


@prepare_app.command("mpii")
def prepare_mpii_cmd(mat: str = typer.Option(..., "--mat", help="mpii_human_pose_v1_u12_1.mat"),
                     images: Optional[str] = typer.Option(None, "--images", help="Image folder."),
                     out: str = typer.Option("data/mpii", "--out"),
                     valid_h5: Optional[str] = typer.Option(None, "--valid-h5", help="Take "
                                                            "the validation split from this "
                                                            "valid.h5 (default: Tompson's, "
                                                            "packaged)")):
    """MPII: the official release -> train/valid (Tompson's split)/test, float joints kept."""
    from hgx.data.prepare import prepare_mpii

    _prepared(prepare_mpii(mat, out, images_dir=images, valid_h5=valid_h5))


@prepare_app.command("lsp")
def prepare_lsp_cmd(joints: str = typer.Option(..., "--joints", help="joints.mat of LSP or "
                                               "LSP-extended."),
                    images: str = typer.Option(..., "--images"),
                    out: str = typer.Option("data/lsp", "--out"),
                    extended: bool = typer.Option(False, "--extended", help="--joints is "
                                                  "LSP-extended's."),
                    extended_joints: Optional[str] = typer.Option(None, "--extended-joints",
                                                                  help="Add LSP-extended's "
                                                                  "10000 to training."),
                    extended_images: Optional[str] = typer.Option(None, "--extended-images"),
                    observer_joints: Optional[str] = typer.Option(
                        None, "--observer-joints", help="The observer-centric labels of LSP's "
                        "2000 images (eval_pose's gt/lsp-joints-OC.mat): `hgx eval` then "
                        "reports person- and observer-centric PCK.")):
    """LSP / LSP-extended: joints.mat -> train (1-1000, + LSPET) and valid (1001-2000)."""
    from hgx.data.prepare import prepare_lsp

    _prepared(prepare_lsp(joints, out, images, extended=extended, extended_mat=extended_joints,
                          extended_images=extended_images, observer_mat=observer_joints))


@prepare_app.command("coco")
def prepare_coco_cmd(json_path: str = typer.Option(..., "--json", help="person_keypoints_"
                                                   "train2017.json"),
                     images: str = typer.Option(..., "--images"),
                     out: str = typer.Option("data/coco", "--out"),
                     valid_json: Optional[str] = typer.Option(None, "--valid-json"),
                     valid_images: Optional[str] = typer.Option(None, "--valid-images"),
                     min_keypoints: int = typer.Option(1, "--min-keypoints", min=1)):
    """COCO single person: one crop per annotated (non-crowd) person, 17 joints."""
    from hgx.data.prepare import prepare_coco

    _prepared(prepare_coco(json_path, out, images, min_keypoints, valid_json=valid_json,
                           valid_images=valid_images))


@prepare_app.command("mpii-lsp")
def prepare_mix_cmd(mpii: str = typer.Option("data/mpii", "--mpii"),
                    lsp: str = typer.Option("data/lsp", "--lsp"),
                    out: str = typer.Option("data/mpii-lsp", "--out")):
    """PyraNet's mpii-lsp mixture from the two prepared folders (LSP in MPII's 16 joints)."""
    from hgx.data.prepare import mix_mpii_lsp

    _prepared(mix_mpii_lsp(mpii, lsp, out))

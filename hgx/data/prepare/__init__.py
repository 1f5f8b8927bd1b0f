"""Converters from public pose datasets into pose-hg-train's annotation layout, one module per
dataset (``mpii``, ``lsp``, ``coco``, ``mixture``, ``custom``; ``common`` what they share).

Each converter reads a dataset's own annotation file and writes, under ``out_dir``::

    annot/train.h5, annot/valid.h5 [, annot/test.h5]   the layout of hgx.data.formats (MPII's
    annot/{split}_images.txt                           valid.h5 keys, self-describing attrs)
    images -> the --images folder                      a symlink: images are never copied
    prepare.json                                       the summary the function returns

and returns a summary dict: ``{"dataset", "out", "splits": {split: rows}, "skipped": {split:
{reason: count}}, "images": {prefix: folder}, "notes": [...]}``. Problems the user can fix
(missing file, missing key, wrong array shape) raise HgxError naming the file and what is wrong.

Conventions, and where they come from:

* MPII (``prepare_mpii``): the release's raw ``objpos`` and ``scale`` are stored as the crop box,
  adjusted once as pose-hg-train does (centre down 15 s, side x 1.25; ``formats.crop_box``,
  umich-vl/pose-hg-train src/util/dataset/mpii.lua:92-94), so the files equal pose-hg-train's
  ``annot/*.h5``; people without them are skipped (pose-hg-train src/misc/convert_annot.py:27-28). Validation =
  Tompson's (index, person) pairs in ``valid.h5`` order; training = the other annotated people
  of training images that hold no validation person (gen_mpii.m's ``loc2`` test: this gives
  pose-hg-train's 22246, whose ``train_images.txt`` shares no image with ``valid_images.txt``);
  test = people of test images with objpos and scale. ``is_visible`` 0 or '0' -> 0, other
  values -> 1, and a point whose ``is_visible`` is absent or empty counts as visible: CPM's
  genJSON.m and gen_mpii.m do so, and pose-hg-train's ``valid.h5`` agrees (every annotated
  upper neck and head top has ``visible = 1``, against about 75% of the other joints).
  ``normalize`` = 0.6 x head-box diagonal (in ``valid.h5`` 200*scale is exactly 10 x
  normalize: the stored crop box is 6 head-box diagonals, MPII's raw scale 4.8 / 200). Joint
  coordinates are kept as the release's floats (pose-hg-train's files hold integers).
* LSP (``prepare_lsp``): the original ``joints.mat`` is 3 x 14 x 2000 with row 3 = 1 for
  *occluded* (gen_lsp.m stores ``1 - joints(3,:,:)`` as visibility); LSP-extended's is
  14 x 3 x 10000 with column 3 = 1 for *visible* (gen_lsp.m uses it as is). The layout is told
  by the shape. Split: LSP images 1-1000 train, 1001-2000 valid (the standard test half);
  LSP-extended all train. The crop box frames an LSP person as pose-hg-train frames an average
  MPII person: side = LSP_SCALE_FACTOR x max(joint-box width, height), centre = joint-box
  centre moved down by LSP_CENTER_DROP x side. Both constants are medians over the 2016 fully
  annotated people of MPII's valid.h5, whose stored box is the crop (formats): crop side /
  joint-box side = 1.4296, crop centre below the joint-box centre by 0.035 x side
  (``tests/test_prepare.py`` re-derives them). Before hgx read boxes as stored, it multiplied
  this box by 1.25 and moved it down 15 s again (LSP crops 1.79 x the joint box). PyraNet frames
  LSP differently (datasets/lsp.lua:67-68: CPM's MPII-like ``scale_provided`` x 368/256 at the
  image centre, bearpaw/pytorch-pose miscs/gen_lsp.m:89-97,151-203); its mixture is below.
* COCO (``prepare_coco``): one row per person with iscrowd 0 and at least ``min_keypoints``
  labelled keypoints. Centre = bbox centre, scale = max(bbox w, bbox h) x COCO_SCALE_FACTOR
  (1.25) / 200: HRNet's crop for a square input (leoxiaobin/deep-high-resolution-net.pytorch
  lib/dataset/coco.py:214-229: the box widened to the aspect ratio, x 1.25, no shift). v = 2 visible, v = 1 occluded (coordinates kept, visible 0),
  v = 0 not labelled -> (0, 0).
* Torso-normalised sets (LSP, COCO) store ``normalize`` = the distance of the skeleton's two
  torso joints (LSP: l-shoulder <-> r-hip, bearpaw/eval_pose utils/eval_pck.m:36), NaN when
  either is missing; ``torsoangle`` uses the hips' and shoulders' midpoints there.
"""
from __future__ import annotations

from hgx.data.prepare.coco import COCO_SCALE_FACTOR, prepare_coco
from hgx.data.prepare.custom import describe_custom
from hgx.data.prepare.lsp import LSP_CENTER_DROP, LSP_SCALE_FACTOR, prepare_lsp
from hgx.data.prepare.mixture import lsp_to_mpii, mix_mpii_lsp
from hgx.data.prepare.mpii import load_valid_pairs, prepare_mpii

__all__ = ["prepare_mpii", "prepare_lsp", "prepare_coco", "mix_mpii_lsp", "describe_custom",
           "load_valid_pairs", "lsp_to_mpii", "LSP_SCALE_FACTOR", "LSP_CENTER_DROP",
           "COCO_SCALE_FACTOR"]

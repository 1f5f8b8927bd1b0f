"""Joint definitions of every supported dataset, in one place.

Each skeleton gives joint names (in annotation order), left/right flip pairs, the limbs drawn
in pictures (with a side: 'l', 'r' or 'c'), and how PCK is normalised for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Skeleton:
    name: str
    joints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    limbs: tuple[tuple[int, int, str], ...]
    # 'head' (PCKh: annotation `normalize`), or 'torso' (PCK: annotation `normalize` where the
    # file has it, else the distance of the two joints below)
    pck_norm: str = "head"
    torso: tuple[int, int] | None = None
    # joints used by pose-hg-train's heatmap accuracy metric (its `accIdxs`), 0-based
    acc_joints: tuple[int, ...] = field(default=())

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def flip_index(self) -> list[int]:
        """Permutation that maps a joint to its mirror image (identity for centre joints)."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, joint: str) -> int:
        return self.joints.index(joint)


MPII = Skeleton(
    name="mpii",
    joints=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
        "l_elbow", "l_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    limbs=(
        (0, 1, "r"), (1, 2, "r"), (2, 6, "r"), (3, 6, "l"), (3, 4, "l"), (4, 5, "l"),
        (6, 7, "c"), (7, 8, "c"), (8, 9, "c"), (10, 11, "r"), (11, 12, "r"), (12, 7, "r"),
        (13, 7, "l"), (13, 14, "l"), (14, 15, "l"),
    ),
    pck_norm="head",
    # pose-hg-train src/util/dataset/mpii.lua: accIdxs = {1,2,3,4,5,6,11,12,15,16} (1-based)
    acc_joints=(0, 1, 2, 3, 4, 5, 10, 11, 14, 15),
)

FLIC = Skeleton(
    name="flic",
    joints=(
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist", "l_hip",
        "r_hip", "l_eye", "r_eye", "nose",
    ),
    flip_pairs=((0, 3), (1, 4), (2, 5), (6, 7), (8, 9)),
    limbs=(
        (0, 1, "l"), (1, 2, "l"), (3, 4, "r"), (4, 5, "r"), (0, 3, "c"), (0, 6, "l"),
        (3, 7, "r"), (6, 7, "c"), (8, 10, "l"), (9, 10, "r"),
    ),
    pck_norm="torso",
    # PCK unit: the annotation file's `normalize`, as umich-vl/pose-hg-train src/pypose/eval.py:42-47
    # divides by it (pose-hg-train's FLIC files: the person-centric r-shoulder to l-hip distance,
    # so in the observer-centric valid.h5 it is NOT the distance of these two joints for the 48
    # people seen from behind). This pair is the fallback for files without `normalize`.
    torso=(3, 6),
    # elbows and wrists, the FLIC columns; pose-hg-train ships no FLIC dataset file (no flic.lua
    # exists in any commit), so this accuracy subset is hgx's choice
    acc_joints=(1, 2, 4, 5),
)

LSP = Skeleton(
    name="lsp",
    joints=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
        "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    limbs=(
        (0, 1, "r"), (1, 2, "r"), (3, 4, "l"), (4, 5, "l"), (2, 3, "c"), (6, 7, "r"),
        (7, 8, "r"), (9, 10, "l"), (10, 11, "l"), (8, 12, "r"), (9, 12, "l"), (12, 13, "c"),
    ),
    pck_norm="torso",
    # "torso height: ||left_shoulder - right hip||" (bearpaw/eval_pose utils/eval_pck.m:4,36:
    # LSP joints 10 and 3, 1-based)
    torso=(9, 2),
    acc_joints=(0, 1, 2, 3, 4, 5, 6, 7, 10, 11),
)

COCO = Skeleton(
    name="coco",
    joints=(
        "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
        "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
        "r_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    limbs=(
        (15, 13, "l"), (13, 11, "l"), (16, 14, "r"), (14, 12, "r"), (11, 12, "c"),
        (5, 11, "l"), (6, 12, "r"), (5, 6, "c"), (5, 7, "l"), (6, 8, "r"), (7, 9, "l"),
        (8, 10, "r"), (1, 2, "c"), (0, 1, "l"), (0, 2, "r"), (1, 3, "l"), (2, 4, "r"),
    ),
    pck_norm="torso",
    torso=(6, 11),
    acc_joints=tuple(range(17)),
)

SKELETONS = {s.name: s for s in (MPII, FLIC, LSP, COCO)}


def get_skeleton(name: str) -> Skeleton:
    return SKELETONS[name]

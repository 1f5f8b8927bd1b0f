"""Synthetic people written in the real MPII annotation layout (pose-hg-train's ``annot/*.h5``).

``generate(out_dir)`` draws articulated figures on cluttered backgrounds and writes::

    out_dir/images/000001.jpg ...
    out_dir/annot/{train,valid,test}.h5          same keys, shapes and dtypes as MPII's valid.h5
    out_dir/annot/{train,valid,test}_images.txt  the image name of every person row
    out_dir/synth.json                           the summary, written last

so every consumer of MPII (loader, cropping, PCKh evaluation, pictures) can be exercised without
the real images. ``ensure_synthetic(...)`` keeps one such dataset per parameter set in a cache.

How a person is made (all lengths in units of the standing height H, so ``scale = H / 200``):

1. a *body*: proportions, limb widths and colours (skin, shirt, trousers, hair, shoes);
2. a *pose*: torso lean, head tilt, arm and leg angles drawn from a few modes (hanging, out,
   up, waving, hands on hips, crossed; standing, wide, walking, sitting, squatting, random),
   plus out-of-plane foreshortening of some segments;
3. the 16 MPII joints are computed in a body frame (pelvis at the origin, y down, the person's
   right at -x as when facing the camera), mirrored when the person faces away, then rotated,
   scaled and placed in the image;
4. the parts are drawn far side first. Left and right can be told apart as in real people: a
   face (eyes, nose, mouth) when facing the camera, the back of the head (hair) when facing
   away, and the person's right limbs and right half of the torso are always a darker shade.

A joint is visible when it is inside the image and not covered by another part (found with a
label image drawn alongside the picture). Joints outside the image keep their coordinates with
``visible = 0``; for some cut-off people they are stored as missing (0, 0), as MPII does.

Everything is deterministic: image ``i`` of split ``k`` uses ``np.random.default_rng([seed, k,
i])`` only, so changing ``n_train`` does not change the valid or test pictures.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import h5py
import numpy as np

from hgx.data.formats import crop_box
from hgx.errors import HgxError

VERSION = 2  # 2: center/scale stored as the crop box (hgx.data.formats); 1 held raw objpos
SPLITS = ("train", "valid", "test")
NUM_JOINTS = 16
JPEG_QUALITY = 90
TWO_PEOPLE_P = 0.2  # share of images with two people
CUT_P = 0.15  # share of people allowed to reach past the image border
MISSING_P = 0.4  # share of those whose outside joints are stored as missing (0, 0)
SUMMARY_FILE = "synth.json"
HEAD_FRACTION = 0.85  # drawn head (chin to top) / (upper neck to head top); = head box side

# MPII joint indices (hgx.data.joints.MPII.joints order)
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE, PELVIS, THORAX = range(8)
NECK, HEAD_TOP, R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = range(8, 16)
RIGHT, LEFT = -1, 1  # side sign: x direction of that side in the (camera-facing) body frame

ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def synth_cache_dir(seed: int, size: tuple[int, int], n_train: int, n_valid: int,
                    n_test: int) -> Path:
    """Cache folder of one synthetic dataset: ``<cache>/synthetic/s{seed}-{w}x{h}-...-v2``.

    ``<cache>`` is ``$HGX_CACHE_DIR`` when set, else ``~/.cache/hgx``.
    """
    root = os.environ.get("HGX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hgx")
    w, h = size
    name = f"s{seed}-{w}x{h}-{n_train}-{n_valid}-{n_test}-v{VERSION}"
    return Path(root) / "synthetic" / name


def ensure_synthetic(seed: int, size: tuple[int, int], n_train: int, n_valid: int, n_test: int,
                     progress: ProgressFn | None = None) -> Path:
    """Return the cache folder of this dataset, generating it first if it is not complete.

    Generation goes to ``<dir>.tmp-<pid>`` beside it and is renamed into place at the end, so a
    killed run never leaves a half dataset under the final name. When another process finished
    the same dataset meanwhile, theirs is used.
    """
    final = synth_cache_dir(seed, size, n_train, n_valid, n_test)
    if _is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(final)
    if final.exists():  # not complete: not made by this code (ours appear complete at once)
        shutil.rmtree(final)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        generate(tmp, seed=seed, size=size, n_train=n_train, n_valid=n_valid, n_test=n_test,
                 progress=progress)
        try:
            os.replace(tmp, final)
        except OSError:
            if not _is_complete(final):  # someone else's rename should be the only reason
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def generate(out_dir, seed: int = 0, size: tuple[int, int] = (1280, 720), n_train: int = 1000,
             n_valid: int = 200, n_test: int = 200, progress: ProgressFn | None = None) -> dict:
    """Write a synthetic MPII-layout dataset of ``n_train/n_valid/n_test`` people into out_dir.

    ``size`` is (width, height) of every image. About one image in five holds two people, so
    there are fewer images than people. ``progress(done, total)`` is called as images are
    written. Returns ``{"dir", "train", "valid", "test", "images", "size", "seed"}``.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HgxError(f"synthetic data: {out} already exists and is not an empty directory; "
                       "choose an empty directory")
    w, h = int(size[0]), int(size[1])
    if w < 32 or h < 32:
        raise HgxError(f"synthetic data: image size {w}x{h} is too small; use at least 32x32")
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    for split, n in counts.items():
        if n < 0:
            raise HgxError(f"synthetic data: n_{split} must be >= 0, not {n}")

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annot").mkdir(exist_ok=True)
    tasks = _plan_tasks(seed, (w, h), counts, out / "images")
    results = _run_tasks(tasks, progress)

    for split_id, split in enumerate(SPLITS):
        rows = [row for task, res in zip(tasks, results) if task.split_id == split_id
                for row in res]
        _write_split(out / "annot", split, rows, name_len=len(tasks[0].name) if tasks else 10)

    summary = {"dir": str(out), "train": n_train, "valid": n_valid, "test": n_test,
               "images": len(tasks), "size": [w, h], "seed": seed}
    record = {k: v for k, v in summary.items() if k != "dir"}  # the folder may be renamed
    (out / SUMMARY_FILE).write_text(json.dumps({**record, "version": VERSION}) + "\n")
    return summary


# --------------------------------------------------------------------------------------------
# Planning and running the per-image work
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Task:
    """One image to draw: everything a worker process needs."""
    seed: int
    split_id: int
    local_index: int  # image number within the split: its random stream
    global_index: int  # image number over all splits: `index` and the file name
    n_people: int
    size: tuple[int, int]
    name: str
    path: str


def _image_rng(seed: int, split_id: int, local_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, split_id, local_index])


def _plan_tasks(seed: int, size: tuple[int, int], counts: dict, image_dir: Path) -> list[_Task]:
    """Decide the images of every split (1 or 2 people each) and their names.

    The people count of an image is the first draw of that image's own stream, so the plan of
    one split does not depend on the others.
    """
    plans = []
    for split_id, split in enumerate(SPLITS):
        left, i = counts[split], 0
        while left > 0:
            two = _image_rng(seed, split_id, i).random() < TWO_PEOPLE_P
            k = min(left, 2 if two else 1)
            plans.append((split_id, i, k))
            left -= k
            i += 1
    digits = max(6, len(str(len(plans))))
    tasks = []
    for g, (split_id, i, k) in enumerate(plans):
        name = f"{g + 1:0{digits}d}.jpg"
        tasks.append(_Task(seed, split_id, i, g, k, size, name, str(image_dir / name)))
    return tasks


def _run_tasks(tasks: list[_Task], progress: ProgressFn | None) -> list[list[dict]]:
    """Draw every image on two threads, keeping task order.

    Threads rather than processes: cv2 and numpy release the GIL for the heavy work (two
    threads measured as fast as two processes), and forking a process whose cv2 thread pool
    is running can deadlock the child.
    """
    total = len(tasks)
    if progress:
        progress(0, total)
    workers = min(2, os.cpu_count() or 1)
    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, res in enumerate(pool.map(_render_task, tasks), 1):
            results.append(res)
            if progress:
                progress(done, total)
    return results


def _render_task(task: _Task) -> list[dict]:
    """Draw one image, write its JPEG and return one annotation row per person."""
    rng = _image_rng(task.seed, task.split_id, task.local_index)
    rng.random()  # the people-count draw of _plan_tasks
    img, rows = render_image(rng, task.size, task.n_people)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise HgxError(f"synthetic data: could not encode {task.path}")
    Path(task.path).write_bytes(buf.tobytes())
    for row in rows:
        row["imgname"] = task.name
        row["index"] = task.global_index
    return rows


# --------------------------------------------------------------------------------------------
# One image
# --------------------------------------------------------------------------------------------

def render_image(rng: np.random.Generator, size: tuple[int, int], n_people: int):
    """Draw a cluttered background with ``n_people`` figures: (BGR uint8 image, rows).

    Each row holds center, scale, part, visible, normalize, torsoangle and person.
    """
    w, h = size
    img = _background(rng, w, h)
    labels = np.zeros((h, w), np.uint8)  # 0 = background, 1 + 32*person + part, 255 = occluder
    people = _place_people(rng, w, h, n_people)
    for p, person in enumerate(people):
        _draw_person(img, labels, person, label_base=1 + 32 * p)
    for _ in range(int(rng.choice(3, p=[0.7, 0.2, 0.1]))):
        _foreground_occluder(rng, img, labels, people)
    rows = [_annotation(person, p, labels, w, h, rng) for p, person in enumerate(people)]
    _finish(rng, img)
    return img, rows


# --------------------------------------------------------------------------------------------
# Background clutter
# --------------------------------------------------------------------------------------------

def _random_color(rng, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    c = rng.integers(lo, hi, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def _background(rng, w: int, h: int) -> np.ndarray:
    """Gradient + low-frequency and fine noise, a floor line, then random clutter."""
    corners = rng.integers(0, 256, size=(2, 2, 3)).astype(np.float32)
    img = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.6:  # a wall / floor split
        y = int(rng.uniform(0.4, 0.85) * h)
        img[y:] = img[y:] * rng.uniform(0.5, 1.0) + rng.uniform(-40, 40, size=3)
    bh, bw, amp = max(2, h // 40), max(2, w // 40), rng.uniform(8, 30)
    blobs = rng.normal(0, amp, size=(bh, bw, 1)) + rng.normal(0, amp * 0.35, size=(bh, bw, 3))
    img += cv2.resize(blobs.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, rng.uniform(3, 12), size=(h // 2 + 1, w // 2 + 1, 1)).astype(np.float32)
    img += cv2.resize(grain, (w, h), interpolation=cv2.INTER_NEAREST)[:, :, None]
    img = np.clip(img, 0, 255).astype(np.uint8)

    scale = min(w, h)
    for _ in range(int(rng.integers(12, 35))):
        _clutter_shape(rng, img, w, h, scale)
    for _ in range(int(rng.integers(0, 4))):
        _textured_patch(rng, img, w, h, scale)
    if rng.random() < 0.45:
        for _ in range(int(rng.integers(1, 5))):
            _distractor_limb(rng, img, w, h, scale)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return img


def _clutter_shape(rng, img, w, h, scale) -> None:
    kind = rng.integers(0, 5)
    color = _random_color(rng)
    x, y = int(rng.integers(-w // 8, w)), int(rng.integers(-h // 8, h))
    size = int(rng.uniform(0.03, 0.35) * scale) + 2
    thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 6))
    if kind == 0:
        x2, y2 = x + size, y + int(size * rng.uniform(0.3, 2.5))
        cv2.rectangle(img, (x, y), (x2, y2), color, thick)
    elif kind == 1:
        cv2.circle(img, (x, y), size // 2, color, thick, cv2.LINE_AA)
    elif kind == 2:
        x2, y2 = x + int(rng.normal(0, size * 2)), y + int(rng.normal(0, size * 2))
        cv2.line(img, (x, y), (x2, y2), color, int(rng.integers(1, 8)), cv2.LINE_AA)
    elif kind == 3:
        axes = (size // 2, int(size * rng.uniform(0.15, 0.8)))
        cv2.ellipse(img, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, color, thick,
                    cv2.LINE_AA)
    else:
        pts = np.array([x, y]) + rng.normal(0, size / 2, size=(int(rng.integers(3, 7)), 2))
        cv2.fillPoly(img, [pts.astype(np.int32)], color, cv2.LINE_AA)


def _textured_patch(rng, img, w, h, scale) -> None:
    """A rectangle of stripes, checkers or noise, blended over the background."""
    pw = int(rng.uniform(0.08, 0.4) * scale) + 4
    ph = int(rng.uniform(0.08, 0.4) * scale) + 4
    x, y = int(rng.integers(0, max(1, w - pw))), int(rng.integers(0, max(1, h - ph)))
    pw, ph = min(pw, w - x), min(ph, h - y)
    yy, xx = np.mgrid[0:ph, 0:pw]
    period = rng.uniform(3, 20)
    kind = rng.integers(0, 3)
    if kind == 0:
        ang = rng.uniform(0, math.pi)
        t = (np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * 2 * math.pi / period) > 0)
    elif kind == 1:
        t = ((xx // period).astype(int) + (yy // period).astype(int)) % 2 == 0
    else:
        t = rng.random((ph, pw)) > 0.5
    a, b = np.array(_random_color(rng)), np.array(_random_color(rng))
    patch = np.where(t[:, :, None], a, b).astype(np.float32)
    alpha = rng.uniform(0.5, 1.0)
    roi = img[y:y + ph, x:x + pw]
    roi[:] = (alpha * patch + (1 - alpha) * roi).astype(np.uint8)


def _distractor_limb(rng, img, w, h, scale) -> None:
    """A limb-like bar (skin or clothing coloured capsule), possibly with a bend."""
    color = _skin_color(rng) if rng.random() < 0.5 else _cloth_color(rng)
    p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    length = rng.uniform(0.08, 0.3) * scale
    radius = max(2.0, length * rng.uniform(0.1, 0.25))
    ang = rng.uniform(0, 2 * math.pi)
    p1 = p0 + length * np.array([math.cos(ang), math.sin(ang)])
    _capsule(img, None, p0, p1, radius, radius * 0.8, color, 0, outline=True)
    if rng.random() < 0.5:
        ang += rng.uniform(-2, 2)
        p2 = p1 + length * 0.9 * np.array([math.cos(ang), math.sin(ang)])
        _capsule(img, None, p1, p2, radius * 0.8, radius * 0.7, color, 0, outline=True)


def _foreground_occluder(rng, img, labels, people) -> None:
    """A small object in front of a person (hides some joints)."""
    person = people[int(rng.integers(0, len(people)))]
    j = person.joints[int(rng.integers(0, NUM_JOINTS))]
    size = person.height_px * rng.uniform(0.06, 0.16)
    c = j + rng.normal(0, size * 0.7, size=2)
    pts = c + rng.uniform(-1, 1, size=(4, 2)) * size
    pts = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    _poly(img, labels, pts, _random_color(rng), 255)


def _finish(rng, img) -> None:
    """Whole-image brightness/contrast jitter and occasional blur, in place."""
    if rng.random() < 0.5:
        alpha, beta = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        cv2.convertScaleAbs(img, img, alpha, beta)
    if rng.random() < 0.25:
        cv2.GaussianBlur(img, (3, 3), 0, dst=img)


# --------------------------------------------------------------------------------------------
# Drawing primitives (picture and label image get the same shapes)
# --------------------------------------------------------------------------------------------

_SHIFT = 4  # sub-pixel bits of cv2 coordinates
_ONE = 1 << _SHIFT


def _fx(p) -> tuple[int, int]:
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


def _darker(color, f: float) -> tuple[int, int, int]:
    return tuple(int(c * f) for c in color)


def _capsule(img, labels, p0, p1, r0, r1, color, label, outline: bool = True) -> None:
    """A tapered bar with round ends from p0 (radius r0) to p1 (radius r1)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9)
    quad = np.array([p0 + n * r0, p1 + n * r1, p1 - n * r1, p0 - n * r0])
    shapes = [(quad, None), (p0, r0), (p1, r1)]
    if outline:
        edge = max(1.0, 0.12 * max(r0, r1))
        dark = _darker(color, 0.55)
        quad_o = np.array([p0 + n * (r0 + edge), p1 + n * (r1 + edge),
                           p1 - n * (r1 + edge), p0 - n * (r0 + edge)])
        _fill(img, [(quad_o, None), (p0, r0 + edge), (p1, r1 + edge)], dark, cv2.LINE_AA)
    _fill(img, shapes, color, cv2.LINE_AA)
    if labels is not None:
        _fill(labels, shapes, label, cv2.LINE_8)


def _fill(canvas, shapes, color, line_type) -> None:
    for shape, radius in shapes:
        if radius is None:
            pts = np.round(shape * _ONE).astype(np.int32)
            cv2.fillConvexPoly(canvas, pts, color, line_type, _SHIFT)
        else:
            cv2.circle(canvas, _fx(shape), int(round(radius * _ONE)), color, -1, line_type,
                       _SHIFT)


def _poly(img, labels, pts, color, label, outline: bool = True) -> None:
    pts = np.round(np.asarray(pts, float) * _ONE).astype(np.int32)
    cv2.fillPoly(img, [pts], color, cv2.LINE_AA, _SHIFT)
    if outline:
        cv2.polylines(img, [pts], True, _darker(color, 0.55), 1, cv2.LINE_AA, _SHIFT)
    if labels is not None:
        cv2.fillPoly(labels, [pts], label, cv2.LINE_8, _SHIFT)


def _ellipse(img, labels, center, half_len, half_wid, angle_deg, color, label) -> None:
    """A filled ellipse; ``half_len`` along the direction ``angle_deg`` (cv2's angle)."""
    c = _fx(center)
    axes = (int(round(half_len * _ONE)), int(round(half_wid * _ONE)))
    cv2.ellipse(img, c, axes, angle_deg, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)
    if labels is not None:
        cv2.ellipse(labels, c, axes, angle_deg, 0, 360, label, -1, cv2.LINE_8, _SHIFT)


# --------------------------------------------------------------------------------------------
# The person model: body, pose, joints
# --------------------------------------------------------------------------------------------

_SKIN_RGB = [(255, 224, 196), (241, 194, 158), (224, 172, 135), (198, 134, 95), (161, 102, 64),
             (120, 76, 45), (87, 54, 33), (234, 192, 160)]


def _skin_color(rng) -> tuple[int, int, int]:
    r, g, b = _SKIN_RGB[int(rng.integers(0, len(_SKIN_RGB)))]
    j = rng.normal(0, 8, size=3)
    return tuple(int(np.clip(v + d, 0, 255)) for v, d in zip((b, g, r), j))  # BGR


def _cloth_color(rng) -> tuple[int, int, int]:
    """A clothing colour bright enough for the right-side shading to show."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(90, 256)]]],
                   np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


@dataclass
class Body:
    """Proportions (units of standing height), widths (radii) and colours of one person."""
    torso: float
    neck: float
    head: float  # upper neck to head top
    shoulder_half: float
    hip_half: float
    upper_arm: float
    forearm: float
    thigh: float
    shank: float
    width: float  # multiplies every limb radius
    skin: tuple
    shirt: tuple
    sleeves: str  # 'long', 'short', 'none'
    trousers: tuple
    shorts: bool
    hair: tuple
    shoes: tuple


def sample_body(rng) -> Body:
    """Random proportions (each within 5 % of a typical adult's), build and clothes."""
    def j() -> float:
        return rng.uniform(0.95, 1.05)

    turn = rng.uniform(0.72, 1.0)  # body turned a little: narrower shoulders and hips
    return Body(
        torso=0.29 * j(), neck=0.03 * j(), head=0.145 * j(),
        shoulder_half=0.1 * turn * j(), hip_half=0.06 * turn * j(),
        upper_arm=0.17 * j(), forearm=0.145 * j(), thigh=0.245 * j(), shank=0.245 * j(),
        width=rng.uniform(0.8, 1.25),
        skin=_skin_color(rng), shirt=_cloth_color(rng),
        sleeves=str(rng.choice(["long", "short", "none"], p=[0.45, 0.4, 0.15])),
        trousers=_cloth_color(rng), shorts=bool(rng.random() < 0.25),
        hair=_random_color(rng, 10, 120) if rng.random() < 0.85 else _random_color(rng, 150, 230),
        shoes=_random_color(rng, 10, 90),
    )


@dataclass
class Pose:
    """Angles in degrees, lengths as multipliers (foreshortening) of the body's lengths."""
    lean: float  # torso from vertical, + towards +x
    head_tilt: float
    arms: dict  # side -> (upper-arm outward angle, elbow flex, upper factor, fore factor)
    legs: dict  # side -> (thigh outward angle, knee flex, thigh factor, shank factor)
    torso_factor: float


def _foreshorten(rng, p: float = 0.15, lo: float = 0.5) -> float:
    return float(rng.uniform(lo, 0.9)) if rng.random() < p else float(rng.uniform(0.93, 1.0))


_ARM_MODES = ("down", "out", "up", "wave", "hip", "crossed", "random")
_ARM_P = (0.3, 0.14, 0.13, 0.1, 0.1, 0.08, 0.15)
_ARM_SOLO = [m for m in _ARM_MODES if m != "crossed"]  # modes of one arm on its own
_ARM_SOLO_P = np.array([p for m, p in zip(_ARM_MODES, _ARM_P) if m != "crossed"])
_ARM_SOLO_P /= _ARM_SOLO_P.sum()
_LEG_MODES = ("stand", "wide", "walk", "sit", "squat", "random")
_LEG_P = (0.35, 0.15, 0.15, 0.13, 0.1, 0.12)


def _arm_angles(rng, mode: str) -> tuple[float, float]:
    """(upper-arm outward angle from hanging down, elbow flex; + = outward / upwards)."""
    u = rng.uniform
    if mode == "down":
        return u(3, 22), u(-10, 25)
    if mode == "out":
        return u(55, 105), u(-35, 35)
    if mode == "up":
        return u(120, 175), u(-30, 25)
    if mode == "wave":
        return u(65, 115), u(55, 120)
    if mode == "hip":
        return u(25, 45), u(-130, -95)
    if mode == "crossed":
        return u(-8, 12), u(-150, -105)
    return u(-35, 180), u(-140, 140)


def _leg_angles(rng, mode: str, first: bool) -> tuple[float, float, float, float]:
    """(thigh outward angle, knee flex, thigh factor, shank factor) of one leg."""
    u = rng.uniform
    if mode == "stand":
        return u(-2, 10), u(-8, 4), _foreshorten(rng, 0.05), 1.0
    if mode == "wide":
        return u(12, 30), u(-15, 5), _foreshorten(rng, 0.1), 1.0
    if mode == "walk":
        if first:
            return u(-12, 4), u(-5, 8), u(0.85, 1.0), 1.0
        return u(5, 22), u(-40, -5), u(0.65, 0.95), u(0.85, 1.0)
    if mode == "sit":
        a = u(8, 45)
        return a, -a + u(-10, 12), u(0.25, 0.55), u(0.9, 1.0)
    if mode == "squat":
        return u(35, 70), u(-115, -55), u(0.6, 0.95), u(0.8, 1.0)
    return u(-20, 85), u(-120, 60), _foreshorten(rng, 0.3), _foreshorten(rng, 0.2)


def sample_pose(rng) -> Pose:
    """A random pose: both arms in one mode (always when crossed) or each in its own, both
    legs in one mode, mostly upright torso."""
    if rng.random() < 0.15:
        lean = rng.uniform(-30, 30)
    else:
        lean = float(np.clip(rng.normal(0, 5), -15, 15))
    arm_mode = rng.choice(_ARM_MODES, p=_ARM_P)
    symmetric = arm_mode == "crossed" or rng.random() < 0.45
    arms = {}
    for side in (RIGHT, LEFT):
        mode = arm_mode if symmetric else rng.choice(_ARM_SOLO, p=_ARM_SOLO_P)
        a, f = _arm_angles(rng, str(mode))
        arms[side] = (a, f, _foreshorten(rng), _foreshorten(rng))
    leg_mode = str(rng.choice(_LEG_MODES, p=_LEG_P))
    first = RIGHT if rng.random() < 0.5 else LEFT
    legs = {side: _leg_angles(rng, leg_mode, side == first) for side in (RIGHT, LEFT)}
    return Pose(lean=float(lean), head_tilt=float(np.clip(rng.normal(0, 8), -25, 25)),
                arms=arms, legs=legs, torso_factor=_foreshorten(rng, 0.1, 0.75))


def _dir(deg: float) -> np.ndarray:
    """Unit vector at ``deg`` from straight down (y down), positive towards +x."""
    r = math.radians(deg)
    return np.array([math.sin(r), math.cos(r)])


def body_points(body: Body, pose: Pose) -> dict:
    """Joints (16, 2) and drawing points in the camera-facing body frame (units of height).

    Pelvis at the origin, y down, the person's right side at -x.
    """
    J = np.zeros((NUM_JOINTS, 2))
    up = -_dir(-pose.lean)  # pelvis -> thorax direction
    across = np.array([-up[1], up[0]])  # towards +x, perpendicular to the spine
    J[PELVIS] = (0.0, 0.0)
    J[THORAX] = up * body.torso * pose.torso_factor
    head_up = -_dir(-pose.lean - pose.head_tilt)
    J[NECK] = J[THORAX] + up * body.neck
    J[HEAD_TOP] = J[NECK] + head_up * body.head
    extra = {}
    for side, (shoulder, elbow, wrist) in ((RIGHT, (R_SHOULDER, R_ELBOW, R_WRIST)),
                                           (LEFT, (L_SHOULDER, L_ELBOW, L_WRIST))):
        a, f, fu, ff = pose.arms[side]
        J[shoulder] = J[THORAX] + across * side * body.shoulder_half - up * 0.01
        J[elbow] = J[shoulder] + _dir(-pose.lean + side * a) * body.upper_arm * fu
        fore = -pose.lean + side * (a + f)
        J[wrist] = J[elbow] + _dir(fore) * body.forearm * ff
        extra[("hand", side)] = J[wrist] + _dir(fore) * 0.045 * ff
    for side, (hip, knee, ankle) in ((RIGHT, (R_HIP, R_KNEE, R_ANKLE)),
                                     (LEFT, (L_HIP, L_KNEE, L_ANKLE))):
        a, k, ft, fs = pose.legs[side]
        tilt = -0.3 * pose.lean  # the pelvis follows the torso a little
        J[hip] = across * side * body.hip_half
        J[knee] = J[hip] + _dir(tilt + side * a) * body.thigh * ft
        shank = tilt + side * (a + k)
        J[ankle] = J[knee] + _dir(shank) * body.shank * fs
        extra[("toe", side)] = J[ankle] + _dir(shank + side * 35) * 0.06
    extra["up"], extra["across"], extra["head_up"] = up, across, head_up
    return {"joints": J, **extra}


# --------------------------------------------------------------------------------------------
# Placing people in the image
# --------------------------------------------------------------------------------------------

@dataclass
class Person:
    """One posed person in image coordinates."""
    body: Body
    pose: Pose
    facing: bool  # True: faces the camera (the person's right is on the image's left)
    far_side: int  # RIGHT or LEFT: drawn first
    height_px: float
    angle: float  # in-plane rotation, degrees
    origin: np.ndarray  # pelvis in image px
    frame: dict  # body_points(): joints and drawing points in the body frame
    joints: np.ndarray  # (16, 2) image px
    center: np.ndarray  # MPII objpos
    missing: bool  # store joints outside the image as (0, 0)

    def to_image(self, p) -> np.ndarray:
        return self.origin + self._linear(p)

    def _linear(self, p) -> np.ndarray:
        p = np.asarray(p, float) * self.height_px
        if not self.facing:
            p = p * np.array([-1.0, 1.0])
        r = math.radians(self.angle)
        rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
        return p @ rot.T


def sample_person(rng, height_px: float) -> Person:
    """A posed person with its pelvis at (0, 0); ``_place_people`` moves it."""
    body, pose = sample_body(rng), sample_pose(rng)
    if rng.random() < 0.72:
        angle = float(np.clip(rng.normal(0, 6), -15, 15))
    else:
        angle = float(rng.uniform(-40, 40))
    person = Person(body=body, pose=pose, facing=bool(rng.random() < 0.6),
                    far_side=RIGHT if rng.random() < 0.5 else LEFT, height_px=height_px,
                    angle=angle, origin=np.zeros(2), frame=body_points(body, pose),
                    joints=np.zeros((NUM_JOINTS, 2)), center=np.zeros(2), missing=False)
    _move(person, (0.0, 0.0))
    return person


def _extent(person: Person) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1) of what is drawn of a person, in image px."""
    pts = person.frame
    extra = [v for k, v in pts.items() if isinstance(k, tuple)]  # hands and toes
    p = person.to_image(np.vstack([pts["joints"], *extra]))
    pad = 0.06 * person.height_px
    return np.array([p[:, 0].min() - pad, p[:, 1].min() - pad,
                     p[:, 0].max() + pad, p[:, 1].max() + pad])


def _overlap(a, b) -> float:
    """Intersection area over the smaller box's area."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / small


def _move(person: Person, origin) -> None:
    """Put the person's pelvis at ``origin`` (image px) and recompute its joints."""
    person.origin = np.asarray(origin, float)
    person.joints = person.to_image(person.frame["joints"])


def _random_origin(rng, person: Person, w: int, h: int, cut: bool) -> np.ndarray:
    """A pelvis position keeping the figure inside the image, or, when ``cut``, reaching
    15-45 % of its size past one border (mostly the bottom one, as in photos)."""
    x0, y0, x1, y1 = _extent(person) - np.tile(person.origin, 2)
    lo = np.array([-x0, -y0])
    hi = np.array([w - x1, h - y1])
    out = np.empty(2)
    for k in range(2):
        if lo[k] <= hi[k]:
            out[k] = rng.uniform(lo[k], hi[k])
        else:  # larger than the image: centre it
            out[k] = (lo[k] + hi[k]) / 2
    if cut:
        over = rng.uniform(0.15, 0.45) * np.array([x1 - x0, y1 - y0])
        edge = rng.choice(4, p=[0.55, 0.15, 0.15, 0.15])  # bottom, top, left, right
        if edge == 0:
            out[1] = hi[1] + over[1]
        elif edge == 1:
            out[1] = lo[1] - over[1]
        elif edge == 2:
            out[0] = lo[0] - over[0]
        else:
            out[0] = hi[0] + over[0]
    return out


def _place_people(rng, w: int, h: int, n_people: int) -> list[Person]:
    """Sample and place ``n_people`` people that do not overlap much."""
    people: list[Person] = []
    hi = 0.9 if n_people == 1 else 0.7
    for _ in range(n_people):
        height = rng.uniform(0.35, hi) * h
        person = sample_person(rng, height)
        person.missing = bool(rng.random() < MISSING_P)
        cut = bool(rng.random() < CUT_P)
        for attempt in range(60):
            if attempt and attempt % 10 == 0:  # crowded: make this person smaller
                person.height_px *= 0.85
            _move(person, _random_origin(rng, person, w, h, cut))
            box = _extent(person)
            if all(_overlap(box, _extent(q)) < 0.12 for q in people):
                break
        people.append(person)
    for person in people:
        person.center = _objpos(rng, person)
    return people


def _objpos(rng, person: Person) -> np.ndarray:
    """MPII-style centre: near the pelvis, moved just enough that pose-hg-train's crop box
    (side 250·scale around (cx, cy + 15·scale)) holds every joint."""
    H = person.height_px
    c = person.joints[PELVIS] + rng.normal(0, 0.015 * H, size=2)
    half = 0.625 * H - 0.02 * H  # 1.25·200·scale / 2, less a margin
    shift = np.array([0.0, 0.075 * H])  # the 15·scale pose-hg-train adds to y
    lo = person.joints.max(0) - half - shift
    hi = person.joints.min(0) + half - shift
    for k in range(2):
        c[k] = np.clip(c[k], lo[k], hi[k]) if lo[k] <= hi[k] else (lo[k] + hi[k]) / 2
    return c


# --------------------------------------------------------------------------------------------
# Drawing a person
# --------------------------------------------------------------------------------------------

# part ids of the label image (+ 32 * person + 1); the right/left versions differ by 8
_TORSO, _PANTS, _NECK, _HEAD = 0, 1, 2, 3
_UPPER_ARM, _FOREARM, _HAND, _THIGH, _SHANK, _FOOT = 4, 5, 6, 7, 8, 9  # + 10 for the left side
_SIDE_OFFSET = 10
_RIGHT_SHADE = 0.68  # the person's right side is always darker


def _part_id(part: int, side: int) -> int:
    return part + (_SIDE_OFFSET if side == LEFT else 0)


def _draw_person(img, labels, person: Person, label_base: int) -> None:
    """Draw the figure far side first; the label image gets a part id per pixel."""
    b, pts = person.body, person.frame
    H = person.height_px
    P = lambda p: person.to_image(p)  # noqa: E731
    near = -person.far_side
    r = b.width * H

    def shade(color, side):
        return _darker(color, _RIGHT_SHADE) if side == RIGHT else color

    def leg(side):
        hip, knee, ankle = (R_HIP, R_KNEE, R_ANKLE) if side == RIGHT else (L_HIP, L_KNEE, L_ANKLE)
        J = person.joints
        lower = b.skin if b.shorts else b.trousers
        _capsule(img, labels, J[ankle], P(pts[("toe", side)]), 0.022 * r, 0.02 * r,
                 shade(b.shoes, side), label_base + _part_id(_FOOT, side))
        _capsule(img, labels, J[knee], J[ankle], 0.034 * r, 0.024 * r, shade(lower, side),
                 label_base + _part_id(_SHANK, side))
        _capsule(img, labels, J[hip], J[knee], 0.046 * r, 0.036 * r, shade(b.trousers, side),
                 label_base + _part_id(_THIGH, side))

    def arm(side):
        sh, el, wr = ((R_SHOULDER, R_ELBOW, R_WRIST) if side == RIGHT
                      else (L_SHOULDER, L_ELBOW, L_WRIST))
        J = person.joints
        upper = b.skin if b.sleeves == "none" else b.shirt
        fore = b.shirt if b.sleeves == "long" else b.skin
        _capsule(img, labels, J[wr], P(pts[("hand", side)]), 0.022 * r, 0.02 * r,
                 shade(b.skin, side), label_base + _part_id(_HAND, side))
        _capsule(img, labels, J[el], J[wr], 0.026 * r, 0.021 * r, shade(fore, side),
                 label_base + _part_id(_FOREARM, side))
        _capsule(img, labels, J[sh], J[el], 0.031 * r, 0.027 * r, shade(upper, side),
                 label_base + _part_id(_UPPER_ARM, side))
        if b.sleeves == "short":  # the sleeve end over the upper arm
            mid = J[sh] + 0.45 * (J[el] - J[sh])
            _capsule(img, labels, J[sh], mid, 0.033 * r, 0.03 * r, shade(b.shirt, side),
                     label_base + _part_id(_UPPER_ARM, side))

    # arms in front of the body (crossed, hands on hips) are hidden when seen from behind
    arms_in_front = {s: person.pose.arms[s][0] + person.pose.arms[s][1] < -45
                     for s in (RIGHT, LEFT)}
    behind = [s for s in (person.far_side, near) if not person.facing and arms_in_front[s]]
    front = [s for s in (person.far_side, near) if s not in behind]

    for side in behind:
        arm(side)
    leg(person.far_side)
    leg(near)
    _capsule(img, labels, person.joints[THORAX], person.joints[NECK], 0.024 * r, 0.022 * r,
             b.skin, label_base + _NECK)
    _draw_torso(img, labels, person, label_base, shade)
    _draw_head(img, labels, person, label_base)
    for side in front:
        arm(side)


def _draw_torso(img, labels, person: Person, label_base: int, shade) -> None:
    """Shirt and trousers as a left and a right half each (the right half darker)."""
    b, pts = person.body, person.frame
    J = pts["joints"]
    up, across = pts["up"], pts["across"]
    waist_h = 0.09
    for side in (RIGHT, LEFT):
        s = across * side
        shoulder_out = J[R_SHOULDER if side == RIGHT else L_SHOULDER] + s * 0.03 * b.width
        top_mid = J[THORAX] + up * 0.015
        waist_mid = up * waist_h
        waist_out = waist_mid + s * (b.hip_half + 0.035 * b.width)
        hip_out = J[R_HIP if side == RIGHT else L_HIP] + s * 0.04 * b.width + up * 0.01
        crotch = -up * 0.04
        shirt = [top_mid, shoulder_out + up * 0.015, waist_out, waist_mid]
        pants = [waist_mid, waist_out, hip_out, crotch]
        _poly(img, labels, person.to_image(np.array(shirt)), shade(b.shirt, side),
              label_base + _TORSO)
        _poly(img, labels, person.to_image(np.array(pants)), shade(b.trousers, side),
              label_base + _PANTS)


def _draw_head(img, labels, person: Person, label_base: int) -> None:
    """Head ellipse; a face when facing the camera, the back of the hair otherwise."""
    b = person.body
    neck, top = person.joints[NECK], person.joints[HEAD_TOP]
    axis = top - neck
    length = np.hypot(*axis)
    u = axis / (length + 1e-9)  # towards the head top, image px
    v = np.array([-u[1], u[0]])
    angle = math.degrees(math.atan2(u[1], u[0]))
    head_len = HEAD_FRACTION * length  # chin a little above the upper neck
    c = top - u * head_len / 2
    half_w = 0.39 * head_len
    label = label_base + _HEAD
    _ellipse(img, labels, c, head_len / 2 + 1, half_w + 1, angle, _darker(b.hair, 0.6), label)
    _ellipse(img, labels, c, head_len / 2, half_w, angle, b.hair, label)
    if person.facing:
        face_c = c - u * 0.09 * head_len
        _ellipse(img, None, face_c, head_len * 0.41, half_w * 0.93, angle, b.skin, 0)
        eye_c = c - u * 0.02 * head_len
        eye_r = max(0.7, 0.055 * head_len)
        for s in (-1, 1):
            e = eye_c + v * s * 0.16 * head_len
            cv2.circle(img, _fx(e), int(eye_r * _ONE), (245, 245, 245), -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, _fx(e), int(eye_r * 0.6 * _ONE), (30, 20, 20), -1, cv2.LINE_AA,
                       _SHIFT)
        nose = [eye_c - u * 0.04 * head_len, eye_c - u * 0.17 * head_len]
        dark = _darker(b.skin, 0.6)
        thick = max(1, int(0.025 * head_len))
        cv2.line(img, _fx(nose[0]), _fx(nose[1]), dark, thick, cv2.LINE_AA, _SHIFT)
        mouth = eye_c - u * 0.29 * head_len
        cv2.line(img, _fx(mouth - v * 0.1 * head_len), _fx(mouth + v * 0.1 * head_len),
                 (60, 40, 150), thick, cv2.LINE_AA, _SHIFT)
    else:  # ears at the sides of the back of the head
        for s in (-1, 1):
            ear = c + v * s * half_w * 0.95 - u * 0.05 * head_len
            cv2.circle(img, _fx(ear), int(0.08 * head_len * _ONE), b.skin, -1, cv2.LINE_AA,
                       _SHIFT)
        _ellipse(img, None, c + u * 0.03 * head_len, head_len / 2 * 0.95, half_w * 0.95, angle,
                 b.hair, 0)


# --------------------------------------------------------------------------------------------
# Annotation of a drawn person
# --------------------------------------------------------------------------------------------

# the parts a joint sits on: a label there means the joint is seen
_OWNERS = {
    R_ANKLE: [(_SHANK, RIGHT), (_FOOT, RIGHT)], R_KNEE: [(_THIGH, RIGHT), (_SHANK, RIGHT)],
    R_HIP: [(_THIGH, RIGHT), _PANTS, _TORSO], L_HIP: [(_THIGH, LEFT), _PANTS, _TORSO],
    L_KNEE: [(_THIGH, LEFT), (_SHANK, LEFT)], L_ANKLE: [(_SHANK, LEFT), (_FOOT, LEFT)],
    PELVIS: [_PANTS, _TORSO, (_THIGH, RIGHT), (_THIGH, LEFT)],
    THORAX: [_TORSO, _NECK], NECK: [_NECK, _HEAD, _TORSO], HEAD_TOP: [_HEAD],
    R_WRIST: [(_FOREARM, RIGHT), (_HAND, RIGHT)], R_ELBOW: [(_UPPER_ARM, RIGHT), (_FOREARM, RIGHT)],
    R_SHOULDER: [(_UPPER_ARM, RIGHT), _TORSO], L_SHOULDER: [(_UPPER_ARM, LEFT), _TORSO],
    L_ELBOW: [(_UPPER_ARM, LEFT), (_FOREARM, LEFT)], L_WRIST: [(_FOREARM, LEFT), (_HAND, LEFT)],
}


def _owner_labels(joint: int, label_base: int) -> set[int]:
    out = {0}
    for o in _OWNERS[joint]:
        out.add(label_base + (_part_id(*o) if isinstance(o, tuple) else o))
    return out


def _annotation(person: Person, index: int, labels, w: int, h: int, rng) -> dict:
    """The MPII row of a drawn person (pose-hg-train's annotation fields)."""
    label_base = 1 + 32 * index
    part = person.joints.copy()
    visible = np.zeros(NUM_JOINTS)
    for j, (x, y) in enumerate(part):
        inside = 0 <= x <= w - 1 and 0 <= y <= h - 1
        if inside:
            seen = labels[int(round(y)), int(round(x))] in _owner_labels(j, label_base)
            visible[j] = 1.0 if seen else 0.0
        elif person.missing:
            part[j] = (0.0, 0.0)
    H = person.height_px
    d = person.joints[THORAX] - person.joints[PELVIS]
    torso = math.degrees(math.atan2(d[0], -d[1]))
    if torso < -90:  # MPII's range is [-90, 270)
        torso += 360
    box = head_box(person)
    # the person's MPII-style raw objpos and scale enter here: stored as the crop box, adjusted
    # once as pose-hg-train's mpii.lua:92-94 does (hgx.data.formats)
    center, scale = crop_box(person.center, H / 200.0)
    return {
        "center": center,
        "scale": scale,
        "part": part,
        "visible": visible,
        "normalize": 0.6 * float(np.hypot(*(box[2:] - box[:2]))),
        "torsoangle": torso,
        "person": index,
    }


def head_box(person: Person) -> np.ndarray:
    """The square head box (x1, y1, x2, y2) whose diagonal × 0.6 is ``normalize``."""
    neck, top = person.joints[NECK], person.joints[HEAD_TOP]
    side = HEAD_FRACTION * np.hypot(*(top - neck))  # the drawn head's length
    c = top + (neck - top) * HEAD_FRACTION / 2  # the drawn head's centre
    return np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2])


# --------------------------------------------------------------------------------------------
# Writing the annotation files
# --------------------------------------------------------------------------------------------

def _write_split(annot_dir: Path, split: str, rows: list[dict], name_len: int) -> None:
    """``{split}.h5`` in pose-hg-train's layout and ``{split}_images.txt``."""
    n = len(rows)
    test = split == "test"
    arrays = {
        "center": np.array([r["center"] for r in rows], np.float64).reshape(n, 2),
        "imgname": np.array([r["imgname"].encode() for r in rows], dtype=f"S{name_len}"),
        "index": np.array([r["index"] for r in rows], np.float64),
        "normalize": np.array([r["normalize"] for r in rows], np.float64),
        "part": np.array([r["part"] for r in rows], np.float64).reshape(n, NUM_JOINTS, 2),
        "person": np.array([r["person"] for r in rows], np.float64),
        "scale": np.array([r["scale"] for r in rows], np.float64),
        "torsoangle": np.array([r["torsoangle"] for r in rows], np.float64),
        "visible": np.array([r["visible"] for r in rows], np.float64).reshape(n, NUM_JOINTS),
    }
    if test:  # like MPII's test set: people located and sized, no joints
        arrays["part"][:] = 0.0
        arrays["visible"][:] = 0.0
        arrays["torsoangle"][:] = 0.0
    with h5py.File(annot_dir / f"{split}.h5", "w") as f:
        f.attrs["name"] = "mpii"
        for key, arr in arrays.items():
            f.create_dataset(key, data=arr, track_times=False)
    names = "".join(r["imgname"] + "\n" for r in rows)
    (annot_dir / f"{split}_images.txt").write_text(names)


# --------------------------------------------------------------------------------------------
# Cache bookkeeping
# --------------------------------------------------------------------------------------------

def _is_complete(path: Path) -> bool:
    """A generated folder is complete once its summary (written last) is there."""
    if not (path / SUMMARY_FILE).is_file():
        return False
    return all((path / "annot" / f"{s}.h5").is_file() for s in SPLITS)


def _remove_stale_temp_dirs(final: Path) -> None:
    """Delete ``<final>.tmp-<pid>`` folders whose process no longer runs."""
    for tmp in final.parent.glob(f"{final.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass  # exists but not ours to signal: leave it

"""One image: a cluttered background, one or two people placed without much overlap (some cut by
the border), occluders, and each drawn person's annotation read back from the label image.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from hgx.data.formats import crop_box
from hgx.data.synth.body import (
    HEAD_FRACTION,
    HEAD_TOP,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    LEFT,
    NECK,
    NUM_JOINTS,
    PELVIS,
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    RIGHT,
    THORAX,
    Person,
    _cloth_color,
    _move,
    _random_color,
    _skin_color,
    sample_person,
)
from hgx.data.synth.draw import (
    _FOOT,
    _FOREARM,
    _HAND,
    _HEAD,
    _NECK,
    _PANTS,
    _SHANK,
    _THIGH,
    _TORSO,
    _UPPER_ARM,
    _capsule,
    _draw_person,
    _part_id,
    _poly,
)

CUT_P = 0.15  # share of people allowed to reach past the image border
MISSING_P = 0.4  # share of those whose outside joints are stored as missing (0, 0)

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

"""Drawing: the primitives (the picture and the label image get the same shapes, with sub-pixel
coordinates) and a whole person, far side first, the right side always darker.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

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
    R_ANKLE,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    RIGHT,
    THORAX,
    Person,
)

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

"""The person model of the synthetic set: body proportions and clothes, the pose (arm and leg
modes), the 16 MPII joints in a camera-facing body frame, and a person placed in an image.
All lengths are in units of the standing height H (``scale = H / 200``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

NUM_JOINTS = 16

HEAD_FRACTION = 0.85  # drawn head (chin to top) / (upper neck to head top); = head box side

# MPII joint indices (hgx.data.joints.MPII.joints order)
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE, PELVIS, THORAX = range(8)
NECK, HEAD_TOP, R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = range(8, 16)
RIGHT, LEFT = -1, 1  # side sign: x direction of that side in the (camera-facing) body frame

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


def _random_color(rng, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    c = rng.integers(lo, hi, size=3)
    return int(c[0]), int(c[1]), int(c[2])


def _move(person: Person, origin) -> None:
    """Put the person's pelvis at ``origin`` (image px) and recompute its joints."""
    person.origin = np.asarray(origin, float)
    person.joints = person.to_image(person.frame["joints"])

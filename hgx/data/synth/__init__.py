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

from hgx.data.synth.body import (
                                 L_HIP,
                                 L_SHOULDER,
                                 NUM_JOINTS,
                                 R_HIP,
                                 R_SHOULDER,
                                 Person,
                                 sample_person,
)
from hgx.data.synth.scene import head_box, render_image
from hgx.data.synth.writer import (
                                 SUMMARY_FILE,
                                 VERSION,
                                 _plan_tasks,
                                 _render_task,
                                 ensure_synthetic,
                                 generate,
                                 synth_cache_dir,
)

__all__ = ["NUM_JOINTS", "Person", "SUMMARY_FILE", "VERSION", "ensure_synthetic", "generate",
           "head_box", "render_image", "sample_person", "synth_cache_dir", "L_HIP",
           "L_SHOULDER", "R_HIP", "R_SHOULDER", "_plan_tasks", "_render_task"]

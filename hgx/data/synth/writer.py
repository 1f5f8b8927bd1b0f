"""Writing a synthetic dataset: the cache folder, planning and running the per-image work in
parallel (deterministic for a seed), the annotation files in pose-hg-train's layout, and the
bookkeeping that keeps a killed generation from leaving a half dataset.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import h5py
import numpy as np

from hgx.data.synth.body import NUM_JOINTS
from hgx.data.synth.scene import render_image
from hgx.errors import HgxError

VERSION = 2  # 2: center/scale stored as the crop box (hgx.data.formats); 1 held raw objpos
SPLITS = ("train", "valid", "test")

JPEG_QUALITY = 90
TWO_PEOPLE_P = 0.2  # share of images with two people

SUMMARY_FILE = "synth.json"

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

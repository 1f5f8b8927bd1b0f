"""Validation as pose-hg-train's train.lua does it, for the training loop and for anything
else that must report the same numbers as ``valid.log`` (``hgx prune``: right after pruning,
and its sensitivity scan).
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from hgx.data import labels, open_split
from hgx.data import transforms as T
from hgx.data.batch import to_device
from hgx.data.dataset import EpochSampler
from hgx.data.loader import make_loader
from hgx.eval.score import validation_pck


def heatmap_loss(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE on every stack's heatmaps, summed over stacks (intermediate supervision), in fp32."""
    return sum(F.mse_loss(o.float(), target) for o in outputs)


def valid_chunk(opts) -> int:
    """Samples per validation forward pass: whole --valid-batch-size batches, about as many
    samples as a training batch."""
    group = opts.valid_batch_size
    return group * max(1, opts.batch_size // group)


def validation_data(opts, workers: int, pin: bool, log=None):
    """(valid split, its sampler, its loader) exactly as the training loop validates."""
    valid_set = open_split(opts, "valid", augment=False, **({"log": log} if log else {}))
    sampler = EpochSampler(len(valid_set), opts.valid_batch_size, opts.valid_iters, opts.seed,
                           shuffle=False)
    # validation batches of --valid-batch-size, several per forward pass (eval mode: the
    # outputs do not depend on the batch); the metrics still average per batch
    loader = make_loader(valid_set, sampler, valid_chunk(opts), workers, pin)
    return valid_set, sampler, loader


@torch.no_grad()
def validate(model, opts, runtime, valid_set, loader, sampler, epoch: int, progress) -> dict:
    """pose-hg-train's validation (src/train.lua:44-73): the loss of the plain output, then
    the output averaged with the mirrored image's (``--valid-flip``) for the accuracy and
    the predictions; the loss and the accuracy averaged per batch of --valid-batch-size,
    then over batches. Several such batches go through the network at once."""
    from hgx.engine.predict import flip_back

    skeleton = valid_set.skeleton
    model.eval()
    sampler.set_epoch(epoch)
    start = time.time()
    group = opts.valid_batch_size
    losses, accs = [], []
    rows, preds = [], []
    flip_index = skeleton.flip_index()
    bar = progress.start("  valid", sampler.iterations(), 0)
    done = 0
    for batch in loader:
        images, heatmaps = to_device(batch, runtime.device, runtime.channels_last,
                                     opts.output_res, opts.hm_sigma)
        with runtime.autocast():
            outputs = model(images)
            mirrored = model(images.flip(-1))[-1] if opts.valid_flip else None
        out = outputs[-1].float()
        if mirrored is not None:
            out = (out + flip_back(mirrored.float(), flip_index)) / 2
        for a in range(0, len(images), group):
            b = slice(a, a + group)
            losses.append(heatmap_loss([o[b] for o in outputs], heatmaps[b]))
            accs.append(labels.heatmap_accuracy(out[b], heatmaps[b], skeleton.acc_joints))
        coords = labels.decode(out)[0].cpu().numpy().astype(np.float64)
        preds.append(np.stack([T.apply(m, c) for m, c in
                               zip(batch.meta["hm_to_image"], coords)]))
        rows.append(batch.meta["row"])
        done += -(-len(images) // group)
        bar.update(done)
    bar.finish()
    loss = torch.stack(losses).double().mean().item() if losses else float("nan")
    acc = torch.stack(accs) if accs else torch.zeros(0, dtype=torch.float64)
    acc = acc[torch.isfinite(acc)]
    pckh = validation_pck(np.concatenate(preds), valid_set.annot, np.concatenate(rows),
                          skeleton)
    return {"epoch": epoch, "loss": loss,
            "acc": acc.mean().item() if len(acc) else float("nan"), "pckh": pckh,
            "seconds": time.time() - start}

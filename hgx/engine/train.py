"""The training loop: epochs of RMSprop steps on every stack's heatmaps, validation, snapshots.

``train(exp, opts, start)`` runs from a start state (fresh, a snapshot, or a branch point) to
``opts.epochs`` and keeps the experiment directory up to date: logs, state.json, snapshots.
"""
from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass, field

import torch

from hgx import checkpoint
from hgx.data import labels, open_split
from hgx.data.batch import to_device as batch_to_device
from hgx.data.dataset import EpochSampler
from hgx.data.loader import keep_big_blocks, make_loader
from hgx.engine.device import loader_workers, setup_runtime
from hgx.engine.distributed import from_env
from hgx.engine.progress import Progress
from hgx.engine.state import StartState, rng_state, seed_everything, set_rng_state
from hgx.engine.validate import heatmap_loss, validate, validation_data
from hgx.experiment import Experiment
from hgx.models import build_model

# Steps between the host's reads of the loss and accuracy (and the ranks' agreement on stopping
# and snapshots). On CPU every read is free; on CUDA each one drains the GPU's queue of work.
SYNC_EVERY = {"cpu": 1, "cuda": 16}


class NonFinite(Exception):
    """The weights or the loss stopped being finite."""


@dataclass
class Outcome:
    epochs_done: int
    stopped: str = "finished"          # finished | max_iters | interrupted | nan
    best_acc: float | None = None
    last_valid: dict = field(default_factory=dict)
    seconds: float = 0.0


def make_optimizer(opts, params):
    if opts.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=opts.lr, alpha=opts.alpha, eps=opts.epsilon,
                                   momentum=opts.momentum, weight_decay=opts.weight_decay)
    if opts.optimizer == "adam":
        return torch.optim.Adam(params, lr=opts.lr, eps=opts.epsilon,
                                weight_decay=opts.weight_decay)
    return torch.optim.SGD(params, lr=opts.lr, momentum=opts.momentum,
                           weight_decay=opts.weight_decay)


def lr_at(opts, epoch: int) -> float:
    """Step schedule: the lr of (1-based) ``epoch`` after the --schedule milestones before it."""
    return opts.lr * opts.gamma ** sum(1 for m in opts.schedule if m < epoch)


class Trainer:
    def __init__(self, exp: Experiment, opts, start: StartState, log=print,
                 interactive: bool | None = None):
        self.exp, self.opts, self.start = exp, opts, start
        self.dist = from_env()
        self.log = log if self.dist.is_main else (lambda *a, **k: None)
        log = self.log
        self.runtime = setup_runtime(opts, self.dist.local_rank)
        self.threads = None  # --threads 0 on the CPU: torch's threads follow the free cores
        if self.runtime.device.type == "cpu" and not opts.threads:
            from hgx.engine.cpushare import ThreadPolicy

            self.threads = ThreadPolicy(log)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.workers = loader_workers(opts.workers, self.runtime.device, local)
        if self.workers == 0:
            keep_big_blocks()
        self.train_set = open_split(opts, "train", augment=True, log=log)
        # the valid split, its sampler and loader, exactly as hgx.engine.validate defines them
        self.valid_set, self.valid_sampler, self.valid_loader = validation_data(
            opts, self.workers, self.runtime.device.type == "cuda", log)
        self.skeleton = self.train_set.skeleton
        seed_everything(opts.seed)
        model = build_model(opts, self.skeleton.num_joints)
        if start.model is not None:
            from hgx.models.loading import check_compatible

            check_compatible(model, start.model, "the snapshot")
            model.load_state_dict(start.model)
        self.model = self.runtime.prepare(model)
        self.module = self.model  # the bare network (for validation and snapshots)
        if self.dist.enabled:
            if opts.sync_bn:
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
                self.module = self.model
            ids = [self.dist.local_rank] if self.runtime.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.model = self.runtime.compiled(self.model, opts.compile)
        self.optimizer = make_optimizer(opts, self.model.parameters())
        if start.optimizer is not None:
            try:
                self.optimizer.load_state_dict(start.optimizer)
            except (ValueError, KeyError):
                log("warning: the snapshot's optimizer state does not fit --optimizer "
                    f"{opts.optimizer}; starting it fresh")
        self.adv = None  # Hg-SAGAN's discriminator and its k_t, with --adversarial
        if opts.adversarial:
            from hgx.engine.adversarial import Adversarial

            self.adv = Adversarial(opts, self.skeleton.num_joints, self.runtime, self.dist,
                                   start.adversarial)
        set_rng_state(start.rng)
        self.train_sampler = EpochSampler(len(self.train_set), opts.batch_size, opts.train_iters,
                                          opts.seed, shuffle=True, rank=self.dist.rank,
                                          world=self.dist.world)
        pin = self.runtime.device.type == "cuda"
        self.train_loader = make_loader(self.train_set, self.train_sampler, opts.batch_size,
                                        self.workers, pin)
        self.progress = Progress(interactive if self.dist.is_main else False,
                                 every=30.0 if self.dist.is_main else float("inf"))
        self.interrupt: int | None = None
        self.global_step = start.global_step
        self.best_acc, self.best_epoch = start.best_acc, start.best_epoch
        self.sums: dict = {}
        self.valid_seconds = 0.0  # the last validation's duration, for the run's ETA

    def run_eta(self, epoch: int, it: int, n_iters: int, sums: dict) -> float:
        """Seconds left in the whole run: this epoch's steps, the later epochs' steps at the
        current rate, and a validation per epoch as long as the last one."""
        per_step = sums["seconds"] / max(1, sums["n"])
        epochs_left = self.opts.epochs - epoch
        steps = (n_iters - it) + epochs_left * n_iters
        return steps * per_step + (epochs_left + 1) * self.valid_seconds

    def to_device(self, batch):
        """The compact batch -> (images, heatmaps) made on the training device."""
        return batch_to_device(batch, self.runtime.device, self.runtime.channels_last,
                               self.opts.output_res, self.opts.hm_sigma)

    # -- signals --------------------------------------------------------------------------------
    def _on_signal(self, signum, _frame):
        if self.interrupt is not None and not self.dist.enabled:  # a second Ctrl-C: give up
            raise KeyboardInterrupt
        self.interrupt = signum
        self.log(f"\n{signal.Signals(signum).name}: finishing this step and writing a snapshot...")

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> Outcome:
        opts, t0 = self.opts, time.time()
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        epoch, first_iter = self.start.epoch + 1, self.start.iteration
        outcome = Outcome(epochs_done=self.start.epoch, best_acc=self.best_acc)
        try:
            while epoch <= opts.epochs:
                stopped = self.train_epoch(epoch, first_iter)
                if stopped:
                    outcome.stopped = stopped
                    break
                if self.dist.is_main:
                    outcome.last_valid = self.validate(epoch)
                    self.valid_seconds = outcome.last_valid["seconds"]
                self.dist.barrier()
                outcome.epochs_done = epoch
                self.end_of_epoch(epoch, outcome.last_valid)
                outcome.best_acc = self.best_acc
                if self.interrupt is not None:
                    outcome.stopped = "interrupted"
                    break
                epoch, first_iter = epoch + 1, 0
        except NonFinite:
            outcome.stopped = "nan"
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.progress.close()
        outcome.seconds = time.time() - t0
        return outcome

    def train_epoch(self, epoch: int, first_iter: int) -> str | None:
        opts, model = self.opts, self.model
        lr = lr_at(opts, epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        model.train()
        n_iters = self.train_sampler.iterations()
        first_iter = min(first_iter, n_iters)  # --train-iters may have been lowered meanwhile
        self.train_sampler.set_epoch(epoch, first_iter)
        fresh = {"loss": 0.0, "acc": 0.0, "n": 0, "acc_n": 0, "seconds": 0.0}
        sums = self.sums = dict(self.start.partial or fresh) if first_iter else fresh
        start, last_ckpt = time.time() - sums["seconds"], time.time()
        bar = self.progress.start(f"epoch {epoch}/{opts.epochs}", n_iters, first_iter)
        it = first_iter
        every = SYNC_EVERY.get(self.runtime.device.type, 1)
        pending: list[torch.Tensor] = []  # per step: loss, accuracy, accuracy defined (device)
        for batch in self.train_loader:
            images, heatmaps = self.to_device(batch)
            with self.runtime.autocast():
                outputs = model(images)
            loss = heatmap_loss(outputs, heatmaps)
            total = loss
            if self.adv is not None:  # D's step first, then the generator's (Hg-SAGAN)
                extra, numbers = self.adv.d_step(images, heatmaps, outputs[-1])
                total = loss + extra
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            with torch.no_grad():  # pose-hg-train train.lua:73 on the last stack
                acc = labels.heatmap_accuracy(outputs[-1].detach(), heatmaps,
                                              self.skeleton.acc_joints)
                ok = torch.isfinite(acc)
                row = [loss.detach().to(torch.float64), torch.where(ok, acc, 0.0),
                       ok.to(torch.float64)]
                if self.adv is not None:
                    k_t = self.adv.update_k(numbers)
                    row += [numbers[0].to(torch.float64), k_t.to(torch.float64)]
                pending.append(torch.stack(row))
            it += 1
            self.global_step += 1
            at_max = bool(opts.max_iters) and self.global_step >= opts.max_iters
            if not (it % every == 0 or it == n_iters or at_max):
                continue
            # The host reads the device's numbers here only, once every ``every`` steps. Ranks
            # all-reduce them with two flags in one message, so every rank sees the same numbers
            # and takes the same decisions (stop, snapshot) at the same step.
            want_ckpt = bool(opts.checkpoint_minutes) and \
                time.time() - last_ckpt >= opts.checkpoint_minutes * 60
            flags = torch.zeros((1, len(pending[0])), dtype=torch.float64,
                                device=pending[0].device)
            flags[0, 0] = 1.0 if self.interrupt is not None else 0.0
            flags[0, 1] = 1.0 if want_ckpt and self.dist.is_main else 0.0
            rows = self.dist.agree(torch.cat([torch.stack(pending), flags])).tolist()
            steps, (stop, ckpt) = rows[:-1], rows[-1][:2]
            for k, (g_loss, g_acc, g_acc_n, *adv) in enumerate(steps):
                if not math.isfinite(g_loss):
                    kept = self.exp.state().get("last_snapshot")
                    after = (f"the last good snapshot ({kept}) is kept: `hgx continue "
                             f"{self.exp.name} --lr <lower>` resumes from it") if kept else \
                        "no snapshot had been written yet"
                    self.log(f"error: the loss became {g_loss} at epoch {epoch} iteration "
                             f"{it - len(steps) + k + 1}; stopping; {after}")
                    return "nan"
                sums["loss"] += g_loss / self.dist.world
                sums["n"] += 1
                if adv:  # D's loss (mean of the epoch) and k_t (its latest value)
                    sums["d_loss"] = sums.get("d_loss", 0.0) + adv[0] / self.dist.world
                    sums["k_t"] = adv[1] / self.dist.world
                if g_acc_n:
                    sums["acc"] += g_acc / g_acc_n
                    sums["acc_n"] += 1
            pending.clear()
            if self.threads is not None:
                self.threads.maybe_adjust()
            sums["seconds"] = time.time() - start
            images_done = sums["n"] * opts.batch_size * self.dist.world
            bar.update(it, loss=sums["loss"] / sums["n"],
                       acc=sums["acc"] / max(1, sums["acc_n"]),
                       ips=images_done / max(sums["seconds"], 1e-9),
                       run_eta=self.run_eta(epoch, it, n_iters, sums))
            if at_max and it < n_iters:
                self.snapshot(epoch - 1, it)
                self.log(f"stopped at --max-iters {opts.max_iters} (epoch {epoch}, iteration {it})")
                return "max_iters"
            if stop and it < n_iters:
                self.interrupt = self.interrupt or signal.SIGTERM
                self.snapshot(epoch - 1, it)
                return "interrupted"
            if ckpt and it < n_iters:
                self.snapshot(epoch - 1, it)
                last_ckpt = time.time()
        bar.finish()
        seconds = sums["seconds"]
        row = {"epoch": epoch, "iters": sums["n"],
               "loss": sums["loss"] / max(1, sums["n"]),
               "acc": sums["acc"] / sums["acc_n"] if sums["acc_n"] else float("nan"),
               "lr": lr, "seconds": seconds,
               "img_per_s": sums["n"] * opts.batch_size * self.dist.world / max(seconds, 1e-9)}
        if self.adv is not None:
            row["d_loss"] = sums.get("d_loss", float("nan")) / max(1, sums["n"])
            row["k_t"] = sums.get("k_t", float(self.adv.k_t.item()))
        self._train_row = row
        return None

    def validate(self, epoch: int) -> dict:
        """pose-hg-train's validation of this epoch (``hgx.engine.validate``)."""
        return validate(self.module, self.opts, self.runtime, self.valid_set,
                        self.valid_loader, self.valid_sampler, epoch, self.progress)

    # -- bookkeeping ----------------------------------------------------------------------------
    def end_of_epoch(self, epoch: int, valid: dict) -> None:
        exp, opts = self.exp, self.opts
        is_best = False
        if self.dist.is_main:
            acc = valid["acc"]
            is_best = acc == acc and (self.best_acc is None or acc > self.best_acc)
            if is_best:
                self.best_acc, self.best_epoch = acc, epoch
            # Logs first, then the snapshot, then the pointer: a crash in between leaves rows
            # that the next continue drops (they are past the snapshot it resumes from).
            exp.append_log("train", self._train_row)
            exp.append_log("valid", valid)
        self.snapshot(epoch, 0, is_best=is_best)
        if self.dist.is_main:
            tr = self._train_row
            self.log(f"epoch {epoch}/{opts.epochs}  train loss {tr['loss']:.6f} acc "
                     f"{tr['acc']:.3f}  |  valid loss {valid['loss']:.6f} acc {valid['acc']:.3f} "
                     f"PCKh {valid['pckh']:.1f}  |  {tr['img_per_s']:.1f} img/s, "
                     f"{tr['seconds']:.0f}s" + ("  (best)" if is_best else ""))

    def snapshot(self, epochs_done: int, iteration: int, is_best: bool = False) -> None:
        """Write a snapshot (rank 0), then move the pointer, then prune what is not kept."""
        exp, opts = self.exp, self.opts
        if not all(torch.isfinite(p).all() for p in self.model.parameters()):
            self.log("error: the weights are no longer finite; not writing a snapshot (the "
                     "last good one is kept)")
            raise NonFinite()
        if not self.dist.is_main:
            self.dist.barrier()
            return
        path = exp.snapshot_path(epochs_done + (1 if iteration else 0), iteration)
        checkpoint.save(path, {
            "model": self.runtime.state_dict(self.module),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epochs_done, "iteration": iteration, "global_step": self.global_step,
            "options": _opts_dict(opts), "rng": rng_state(),
            "best_acc": self.best_acc, "best_epoch": self.best_epoch,
            "precision": self.runtime.precision,
            "partial": dict(self.sums) if iteration else None,
            "adversarial": self.adv.state() if self.adv is not None else None,
        })
        state = exp.state()
        rel = str(path.relative_to(exp.path))
        if is_best:
            best = exp.snapshots / "best.pt"
            tmp = exp.snapshots / f".best.pt.tmp-{os.getpid()}"
            if tmp.exists():
                tmp.unlink()
            os.link(path, tmp)
            os.replace(tmp, best)
            state.update(best_snapshot=str(best.relative_to(exp.path)),
                         best_acc=self.best_acc, best_epoch=self.best_epoch)
        state.update(epochs_done=epochs_done, iteration=iteration,
                     global_step=self.global_step, last_snapshot=rel,
                     finished=epochs_done >= opts.epochs and iteration == 0,
                     precision=self.runtime.precision, processes=self.dist.world)
        exp.write_state(state)
        self.prune(keep=path)
        self.dist.barrier()

    def prune(self, keep) -> None:
        """Remove snapshots no longer needed: keep the latest, every --snapshot epochs, best."""
        every = self.opts.snapshot
        for p in self.exp.snapshot_files():
            if p == keep:
                continue
            epoch = self.exp.epoch_end(p)
            if not (epoch is not None and every and epoch % every == 0):
                p.unlink(missing_ok=True)


def _opts_dict(opts) -> dict:
    from hgx.options import as_dict

    return as_dict(opts)

"""Hg-SAGAN's adversarial training (idotc/Hg-SAGAN train.lua:99-193, model.lua): a BEGAN-style
discriminator D learns to reconstruct ground-truth heatmaps and to fail on the generator's,
the generator (the stacked hourglass) is pushed towards heatmaps D reconstructs well.

One training step, in Hg-SAGAN's order:

1. D on the truth: L_real = mse(D(x, y), y), with x the image at heatmap resolution (a box
   average, Torch's image.scale 256 -> 64, train.lua:111-112) and y the target heatmaps;
2. the generator's forward (the caller's);
3. D on the prediction: L_fake = mse(D(x, ŷ), ŷ), ŷ = the LAST stack's heatmaps taken as a
   constant (train.lua:144, 152-153); D's loss L_D = L_real - k_t * L_fake, one Adam step
   (lr --lr-d, decayed as Torch's optim.adam: lr / (1 + t * --lr-decay-d), betas (0.9, 0.999),
   eps --epsilon-d; model.lua:9-16), D's lr never follows --schedule;
4. the generator's loss: every stack's MSE + lambda_G * L_fake, the adversarial gradient
   reaching only the last stack and only through D's heatmap channels (train.lua:164-172);
   hgx takes that gradient from the same pre-update D whose L_fake it is (Hg-SAGAN's
   updateGradInput runs after D's step on activations from before it, a mix PyTorch cannot
   reproduce; the values it uses are the pre-update D's);
5. k_t <- clip(k_t + lambda_k * (gamma_gd * L_real - L_fake), 0, 1) (train.lua:187-191).

D's BatchNorm sees the true and the predicted heatmaps as separate batches, as in the Lua
code. With several processes, D's gradients and the two losses are averaged over the ranks,
so every rank takes the same step and the same k_t.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hgx.models.discriminator import Discriminator


class Adversarial:
    def __init__(self, opts, joints: int, runtime, dist, state: dict | None = None):
        self.opts, self.runtime, self.dist = opts, runtime, dist
        self.factor = opts.input_res // opts.output_res
        model = Discriminator(joints, opts.features, opts.depth, opts.d_modules)
        if state is not None:
            model.load_state_dict(state["model"])
        self.model = runtime.prepare(model).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=opts.lr_d,
                                          betas=(0.9, 0.999), eps=opts.epsilon_d)
        self.steps = 0
        k_t = opts.init_kt
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.steps, k_t = int(state["steps"]), float(state["k_t"])
        self.k_t = torch.tensor(k_t, dtype=torch.float32, device=runtime.device)

    def d_step(self, images: torch.Tensor, heatmaps: torch.Tensor,
               last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1 and 3: D's update. Returns (the generator's adversarial term, whose
        gradient w.r.t. ``last`` is lambda_G * dL_fake/dŷ; the step's numbers (L_D, L_real,
        L_fake) as a device tensor)."""
        opts = self.opts
        small = F.avg_pool2d(images.float(), self.factor)
        self.optimizer.zero_grad(set_to_none=True)
        with self.runtime.autocast():
            d_real = self.model(small, heatmaps)
        loss_real = F.mse_loss(d_real.float(), heatmaps)
        yhat = last.detach().float().requires_grad_(True)
        with self.runtime.autocast():
            d_fake = self.model(small, yhat)
        loss_fake = F.mse_loss(d_fake.float(), yhat.detach())
        toward, = torch.autograd.grad(loss_fake, yhat, retain_graph=True)
        loss_d = loss_real - self.k_t * loss_fake
        loss_d.backward(inputs=list(self.model.parameters()))
        if self.dist.enabled:  # one all-reduce of all D's gradients, not one per tensor
            grads = [p.grad for p in self.model.parameters()]
            flat = self.dist.agree(torch.cat([g.reshape(-1) for g in grads]))
            flat.div_(self.dist.world)
            for g, part in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(part.view_as(g))
        self.steps += 1
        for group in self.optimizer.param_groups:  # torch/optim adam.lua:54
            group["lr"] = opts.lr_d / (1 + (self.steps - 1) * opts.lr_decay_d)
        self.optimizer.step()
        adversarial = opts.lambda_g * (toward.detach() * last.float()).sum()
        numbers = torch.stack([loss_d.detach(), loss_real.detach(), loss_fake.detach()])
        return adversarial, numbers

    def update_k(self, numbers: torch.Tensor) -> torch.Tensor:
        """Step 5, on the device (no host sync); ranks agree on the losses first. Returns
        k_t (after the update)."""
        if self.dist.enabled:
            numbers = self.dist.agree(numbers.clone()) / self.dist.world
        balance = self.opts.gamma_gd * numbers[1] - numbers[2]
        self.k_t = (self.k_t + self.opts.lambda_k * balance).clamp(0.0, 1.0)
        return self.k_t

    def state(self) -> dict:
        """What a snapshot keeps of D: its weights, its optimizer, its step count and k_t."""
        return {"model": self.runtime.state_dict(self.model),
                "optimizer": self.optimizer.state_dict(), "steps": self.steps,
                "k_t": float(self.k_t.item())}

"""Hg-SAGAN's adversarial training: the discriminator's shape, the step's gradients, k_t, and
the workflow (logs, snapshots, branch, compare)."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, tree_hashes
from hgx.files import read_tsv
from hgx.models.discriminator import Discriminator
from hgx.models.hourglass import count_parameters

ADV = [*TINY, "--adversarial", "--train-iters", "8"]


def test_discriminator_parameters_are_hg_sagans():
    """idotc/Hg-SAGAN models/discriminator.lua with 16 joints, 256 features, one module: the
    stem 354,560, four SARM_A 429,056 each, nine residuals 214,528 each, the tail's 1x1s
    284,944 (counted from the Lua layers, weights + biases + BN gamma/beta)."""
    assert count_parameters(Discriminator(16, 256, 4, 1)) == 4_286_480


def test_discriminator_reads_every_sample_on_its_own():
    d = Discriminator(3, 16, 2, 1).eval()
    x, h = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        both = d(x, h)
        one = d(x[1:2], h[1:2])
    assert both.shape == (3, 3, 16, 16)
    torch.testing.assert_close(both[1:2], one, rtol=1e-4, atol=1e-5)  # no batch mixing


def test_k_t_update_and_clip():
    from types import SimpleNamespace

    from hgx.engine.adversarial import Adversarial

    adv = Adversarial.__new__(Adversarial)
    adv.opts = SimpleNamespace(gamma_gd=0.5, lambda_k=0.001)
    adv.dist = SimpleNamespace(enabled=False)
    adv.k_t = torch.tensor(0.5)
    k = adv.update_k(torch.tensor([0.0, 0.2, 0.05]))  # balance 0.5 * 0.2 - 0.05 = 0.05
    assert float(k) == pytest.approx(0.5 + 0.001 * 0.05)
    adv.k_t = torch.tensor(0.0)
    assert float(adv.update_k(torch.tensor([0.0, 0.1, 0.9]))) == 0.0   # clipped at 0
    adv.k_t = torch.tensor(1.0)
    assert float(adv.update_k(torch.tensor([0.0, 9.0, 0.0]))) == 1.0   # clipped at 1


def test_the_generator_gets_lambda_g_times_d_fake_gradient_on_the_last_stack():
    """The adversarial term's gradient w.r.t. the last stack's heatmaps is lambda_G *
    dL_fake/dŷ of the pre-update D, and nothing reaches D's image input or earlier stacks."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from hgx import options as hopts
    from hgx.engine.adversarial import Adversarial
    from hgx.engine.device import Runtime

    opts = hopts.resolve(None, None, {"input_res": 64, "output_res": 16, "features": 16,
                                      "depth": 2, "lambda_g": 0.3})
    runtime = Runtime(torch.device("cpu"), "fp32", False)
    torch.manual_seed(0)
    adv = Adversarial(opts, 3, runtime, SimpleNamespace(enabled=False))
    before = {k: v.clone() for k, v in adv.model.state_dict().items()}
    images, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 16, 16)
    stacks = torch.rand(2, 2, 3, 16, 16, requires_grad=True)
    extra, numbers = adv.d_step(images, target, stacks[-1])
    extra.backward()
    # the same gradient by hand, from a D with the pre-update weights
    d = Discriminator(3, 16, 2, 1)
    d.load_state_dict(before)
    yhat = stacks[-1].detach().clone().requires_grad_(True)
    _ = F.mse_loss(d(F.avg_pool2d(images, 4), target), target)  # the real pass's BN update
    loss_fake = F.mse_loss(d(F.avg_pool2d(images, 4), yhat), yhat.detach())
    loss_fake.backward()
    torch.testing.assert_close(stacks.grad[-1], 0.3 * yhat.grad, rtol=1e-4, atol=1e-7)
    assert stacks.grad[0].abs().max() == 0
    assert float(numbers[2]) == pytest.approx(loss_fake.item(), rel=1e-5)
    assert any(not torch.equal(before[k], v) for k, v in adv.model.state_dict().items())


def test_adversarial_run_logs_d_loss_and_k_t_and_its_loss_falls(hgx):
    code, out = hgx("new", "a", *ADV, "--epochs", "3", "--init-kt", "0.2", "--lambda-k",
                    "0.05")
    assert code == 0, out
    rows = read_tsv(hgx.root / "a" / "train.log")
    assert all("d_loss" in r and "k_t" in r for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert all(0.0 <= r["k_t"] <= 1.0 for r in rows) and rows[-1]["k_t"] != 0.2
    snap = torch.load(hgx.root / "a" / "snapshots" / "epoch-0003.pt", weights_only=True)
    assert set(snap["adversarial"]) == {"model", "optimizer", "steps", "k_t"}
    assert snap["adversarial"]["steps"] == 24
    assert snap["adversarial"]["k_t"] == pytest.approx(rows[-1]["k_t"], abs=1e-6)
    code, out = hgx("compare", "a", "--metric", "train_k_t", "--metric", "train_d_loss", "--out",
                    str(hgx.root.parent / "c.png"), "--json")
    assert code == 0, out
    assert (hgx.root.parent / "c.png").stat().st_size > 0


def test_branch_of_an_adversarial_run_keeps_the_parent_and_its_discriminator(hgx):
    assert hgx("new", "a", *ADV, "--epochs", "2")[0] == 0
    before = tree_hashes(hgx.root / "a")
    parent = torch.load(hgx.root / "a" / "snapshots" / "epoch-0002.pt", weights_only=True)
    code, out = hgx("branch", "a", "b", "--epochs", "3", "--lr", "1e-4")
    assert code == 0, out
    assert tree_hashes(hgx.root / "a") == before
    child = torch.load(hgx.root / "b" / "snapshots" / "epoch-0003.pt", weights_only=True)
    assert child["adversarial"]["steps"] == parent["adversarial"]["steps"] + 8  # D went on
    state = json.loads((hgx.root / "b" / "state.json").read_text())
    assert state["epochs_done"] == 3

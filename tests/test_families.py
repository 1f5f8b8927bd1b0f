"""hg-prm (PyraNet) and hg-atten (Hg-SAGAN) are built as their Lua sources build them, their
sizes are pinned by counts derived by hand from that code, and they go through every hgx
workflow: training, continue (bit-identical after kill -9), --load-model, eval, finalize and
show."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
import yaml

from conftest import TINY, tree_hashes
from hgx import options as hopts
from hgx.files import read_tsv

PRM = [*TINY, "--arch", "hg-prm", "--base-width", "4", "--cardinality", "2"]
ATTEN = [*TINY, "--arch", "hg-atten"]
FAMILY_ARGS = {"hg-prm": PRM, "hg-atten": ATTEN}
# a key only that family's snapshots have
FAMILY_KEY = {"hg-prm": "stem.3.levels.1.weight", "hg-atten": "heads.1.0.query.weight"}


# --------------------------------------------------------------------------------------------
# Parameter counts, derived by hand from the Lua (conv weight + bias, BN scale + shift)


def conv(i, o, k=1):
    return i * o * k * k + o


def bn(c):
    return 2 * c


def residual(i, o, conv_skip=False):
    """PyraNet's and Hg-SAGAN's models/layers/Residual.lua:7-40: convBlock, skip BN-ReLU-conv."""
    h = o // 2
    skip = bn(i) + conv(i, o) if conv_skip or i != o else 0
    return bn(i) + conv(i, h) + bn(h) + conv(h, h, 3) + bn(h) + conv(h, o) + skip


def prm(i, o, b, c, preact=True, conv_skip=False):
    """PyraNet models/layers/PRM.lua: the main branch (:13-23), the pyramid branch with its own
    BN (:44-61), BN + conv after the sum (:71-74), the skip (:78-94)."""
    h, d = o // 2, o // b
    pre = bn(i) if preact else 0
    main = pre + conv(i, h) + bn(h) + conv(h, h, 3)
    pyramid = pre + conv(i, d) + bn(d) + c * conv(d, d, 3) + bn(d) + conv(d, h)
    skip = bn(i) + conv(i, o) if conv_skip or i != o else 0
    return main + pyramid + bn(h) + conv(h, o) + skip


def prm_hourglass(n, f, b, c):
    """hg-prm.lua:10-35 with nModules 1: PRM for up1 when n >= 2, for the rest when n >= 3."""
    def down(skip=False):
        return prm(f, f, b, c, conv_skip=skip) if n >= 3 else residual(f, f, skip)

    up = prm(f, f, b, c) if n >= 2 else residual(f, f)
    low2 = prm_hourglass(n - 1, f, b, c) if n > 1 else down()
    return up + down() + low2 + down(True)


def pyranet(stacks, b, c, f=256, joints=16):
    """hg-prm.lua:48-89."""
    stem = conv(3, 64, 7) + bn(64) + prm(64, 128, b, c, preact=False) + prm(128, 128, b, c) \
        + prm(128, f, b, c)
    head = bn(f) + conv(f, f) + bn(f) + conv(f, joints)
    return stem + stacks * (prm_hourglass(4, f, b, c) + head) \
        + (stacks - 1) * (conv(f, f) + conv(joints, f))


def sagan(stacks, r=1, f=256, joints=16):
    """hg-atten.lua:47-95 with SARM_B.lua: 13r residuals per hourglass, r after it, lin;
    stack 1 a 1x1 head, stacks 2.. SARM_B (convBlock of width f/2, a bare 1x1 skip, Q/K/V 1x1
    convs f -> joints) then a 1x1 joints -> joints."""
    stem = conv(3, 64, 7) + bn(64) + residual(64, 128) + residual(128, 128) + residual(128, f)
    stack = 14 * r * residual(f, f) + conv(f, f) + bn(f)
    m = f // 2
    sarm_b = bn(f) + conv(f, m) + bn(m) + conv(m, m, 3) + bn(m) + conv(m, joints) \
        + conv(f, joints) + 3 * conv(f, joints)
    heads = conv(f, joints) + (stacks - 1) * (sarm_b + conv(joints, joints))
    return stem + stacks * stack + heads + (stacks - 1) * (conv(f, f) + conv(joints, f))


# the presets' shapes: (preset, hand-derived count, its expression)
PINNED = [("mpii-prm2", 7_286_464, pyranet(2, 9, 4)),
          ("mpii-prm8", 54_272_576, pyranet(8, 6, 30)),
          ("mpii-sagan", 6_766_960, sagan(2))]


@pytest.mark.parametrize("preset,count,by_hand", PINNED, ids=[p[0] for p in PINNED])
def test_parameter_counts_of_the_presets(preset, count, by_hand):
    from hgx.models import build_model, count_parameters

    opts = hopts.resolve(hopts.load_preset(preset))
    with torch.device("meta"):
        model = build_model(hopts.Options(**dict(hopts.as_dict(opts), init="pytorch")), 16)
    assert by_hand == count
    assert count_parameters(model) == count


def test_parameter_counts_of_other_shapes():
    """The 8-stack PyraNet of the 2-stack script's B and C (28.13 M, the size quoted for
    PyraNet) and the README's 4-stack nResidual 2 Hg-SAGAN."""
    from hgx.models import build_arch, count_parameters

    common = dict(features=256, joints=16, depth=4, mid=None, stem="original")
    with torch.device("meta"):
        p8 = build_arch(dict(common, arch="hg-prm", stacks=8, modules=1, base_width=9,
                             cardinality=4))
        s4 = build_arch(dict(common, arch="hg-atten", stacks=4, modules=2))
    assert count_parameters(p8) == pyranet(8, 9, 4) == 28_131_832
    assert count_parameters(s4) == sagan(4, r=2) == 25_460_784


# --------------------------------------------------------------------------------------------
# The modules


def tiny(arch, **more):
    from hgx.models import build_arch

    base = dict(arch=arch, stacks=2, features=16, modules=1, joints=16, depth=2, mid=None,
                stem="original")
    if arch == "hg-prm":
        base.update(base_width=4, cardinality=2)
    return build_arch({**base, **more})


@pytest.mark.parametrize("arch", ["hg-prm", "hg-atten"])
def test_forward_contract_and_samples_are_independent_in_eval(arch):
    torch.manual_seed(0)
    model = tiny(arch).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        alone = model(x[1:2])
    assert out.shape == (2, 3, 16, 16, 16)  # (stacks, batch, joints, H/4, W/4)
    # Hg-SAGAN's nn.View(opt.batchSize, ...) would mix samples when the batch differs
    torch.testing.assert_close(alone[:, 0], out[:, 1], rtol=1e-4, atol=1e-4)


def test_pooling_regions_follow_the_runs_generator_and_are_fixed_in_eval():
    from hgx.engine.state import rng_state, seed_everything, set_rng_state

    torch.manual_seed(0)
    model = tiny("hg-prm").train()
    x = torch.randn(2, 3, 64, 64)
    seed_everything(3)
    saved = rng_state()
    with torch.no_grad():
        first = model(x)
        again = model(x)
        set_rng_state(saved)
        torch.rand(1000)  # torch's global generator moves (as a DataLoader moves it) ...
        replay = model(x)  # ... the pooling regions do not
    assert not torch.equal(first, again)  # new regions at every training forward
    assert torch.equal(first, replay)
    later = rng_state()["fmp"]  # snapshot-safe: a uint8 tensor per device type drawn on
    assert set(later) == {"cpu"} and later["cpu"].dtype == torch.uint8
    model.eval()
    with torch.no_grad():
        e1 = model(x)
        torch.rand(1000)
        seed_everything(4)  # neither generator matters in eval
        e2 = model(x)
    assert torch.equal(e1, e2)


def test_pyramid_levels_are_the_sources():
    from hgx.models.prm import PRM, pyramid_ratios

    assert pyramid_ratios(4) == pytest.approx([2 ** -0.25, 2 ** -0.5, 2 ** -0.75, 0.5], abs=1e-15)
    assert pyramid_ratios(30)[-1] < 0.5  # in doubles, as in Lua: floor(64 r_30) = 31
    block = PRM(16, 16, base_width=4, cardinality=4)
    seen = []
    real = torch.nn.functional.fractional_max_pool2d

    def spy(x, *args, output_size=None, **kw):
        seen.append((tuple(x.shape[-2:]), tuple(output_size)))
        return real(x, *args, output_size=output_size, **kw)

    torch.nn.functional.fractional_max_pool2d = spy
    try:
        block(torch.randn(1, 16, 64, 64))
    finally:
        torch.nn.functional.fractional_max_pool2d = real
    # PyraNet spec table: floor(64 r_c) = 53 45 38 32, on D = floor(16/4) = 4 channels
    assert seen == [((64, 64), (s, s)) for s in (53, 45, 38, 32)]
    assert block.pyr_conv1.out_channels == 4 and len(block.levels) == 4


def test_attention_is_a_sigmoid_weighted_sum_over_all_positions():
    """SARM_B: out_j = sum_i v_i sigmoid(q_i . k_j) (no softmax, no scale); SARM_A:
    out_j = sum_i r_i sigmoid(f_i . f_j)."""
    from hgx.models.attention import SARMA, SARMB

    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6)
    b = SARMB(8, 4).eval()
    with torch.no_grad():
        q, k, v = (c(x).flatten(2) for c in (b.query, b.key, b.value))
        expect = torch.einsum("bci,bij->bcj", v, torch.sigmoid(torch.einsum("bdi,bdj->bij", q, k)))
        torch.testing.assert_close(b.attention(x), expect.reshape(2, 4, 5, 6))
        a = SARMA(8, 8).eval()
        from hgx.models.attention import _run_block

        r = (_run_block(a.residual, x) + x).flatten(2)
        f = _run_block(a.features, x).flatten(2)
        expect = torch.einsum("bci,bij->bcj", r, torch.sigmoid(torch.einsum("bdi,bdj->bij", f, f)))
        torch.testing.assert_close(a(x), expect.reshape(2, 8, 5, 6))
    # SARM_A(256, 256) of the discriminator: 2 x Residual(256, 256)'s convBlock (hgsagan spec)
    assert sum(p.numel() for p in SARMA(256, 256).parameters()) == 429_056


def test_attention_products_stay_fp32_under_bf16_autocast():
    """The attention output is a sum of H*W sigmoid-weighted terms: at the preset's 64x64 maps
    an untrained mpii-sagan's is about 4.4e3 at most (mean 1.3e3) against 1.4 for the rest of
    SARM_B, and bf16 products would err by about 1.8 on average (measured once, 256 px input,
    seed 0). So the products run in fp32 whatever the autocast."""
    from hgx.models.attention import SARMB

    block = SARMB(16, 16)
    x = torch.randn(2, 16, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        att = block.attention(x)
        conv = block.query(x)
    assert conv.dtype == torch.bfloat16 and att.dtype == torch.float32


def test_initial_weights():
    """--init torch7: BatchNorm scale ~ U(0,1); multibranch: the PyraNet paper's Eq. 15,
    std = 1 / (0.5 sqrt(C_i n_i + C_o n_o)), C_o = C on the shared 1x1 of a PRM's pyramid and
    C_i = C on the 1x1 after the sum of its levels (PRM.lua:52-53); biases 0."""
    from hgx.models import build_model

    def built(init):
        torch.manual_seed(0)
        opts = hopts.resolve(typed=dict(arch="hg-prm", stacks=1, features=256, depth=1,
                                        input_res=64, output_res=16, base_width=8,
                                        cardinality=4, init=init))
        return build_model(opts, 16)

    bns = [m.weight for m in built("pytorch").modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bool((w == 1).all()) for w in bns)
    scale = torch.cat([m.weight.detach() for m in built("torch7").modules()
                       if isinstance(m, torch.nn.BatchNorm2d)])
    assert 0 <= scale.min() and scale.max() < 1 and abs(scale.mean().item() - 0.5) < 0.02
    r5 = built("multibranch").stem[6]  # PRM 128 -> 256: D = 32, half = 128
    expected = {
        "conv2": 1 / (0.5 * math.sqrt(9 * 128 + 9 * 128)),             # 3x3, one branch each
        "pyr_conv1": 1 / (0.5 * math.sqrt(128 + 4 * 32)),              # feeds C = 4 levels
        "pyr_conv2": 1 / (0.5 * math.sqrt(4 * 32 + 128)),              # reads their sum
    }
    for name, std in expected.items():
        conv_ = getattr(r5, name)
        assert abs(conv_.weight.std().item() / std - 1) < 0.06, name
        assert bool((conv_.bias == 0).all())


# --------------------------------------------------------------------------------------------
# The workflow


@pytest.mark.parametrize("arch", ["hg-prm", "hg-atten"])
def test_each_family_trains_and_its_loss_falls(hgx, arch):
    code, out = hgx("new", "f", *FAMILY_ARGS[arch], "--train-iters", "6", "--epochs", "3")
    assert code == 0, out
    d = hgx.root / "f"
    assert yaml.safe_load((d / "options.yaml").read_text())["arch"] == arch
    losses = [float(r["loss"]) for r in read_tsv(d / "train.log")]
    assert len(losses) == 3 and losses[2] < losses[0], losses
    snap = torch.load(d / "snapshots" / "best.pt", weights_only=True)
    assert FAMILY_KEY[arch] in snap["model"]


def test_an_architecture_option_cannot_change_on_continue(hgx):
    assert hgx("new", "p", *PRM, "--epochs", "1")[0] == 0
    before = tree_hashes(hgx.root / "p")
    for flag, value in (("--arch", "hg-atten"), ("--cardinality", "3"), ("--base-width", "2"),
                        ("--init", "torch7")):
        code, out = hgx("continue", "p", "--epochs", "2", flag, value)
        assert code == 2 and f"{flag} cannot change on continue" in out, out
        assert len(out.strip().splitlines()) == 1
    assert tree_hashes(hgx.root / "p") == before


@pytest.mark.parametrize("arch", ["hg-prm", "hg-atten"])
def test_load_model_eval_finalize_and_show(hgx, arch, tmp_path):
    assert hgx("new", "a", *FAMILY_ARGS[arch], "--epochs", "1")[0] == 0
    best = hgx.root / "a" / "snapshots" / "best.pt"
    # the family and its options come from the snapshot's weights, not from flags
    code, out = hgx("new", "b", *TINY, "--epochs", "1", "--load-model", str(best))
    assert code == 0, out
    opts = yaml.safe_load((hgx.root / "b" / "options.yaml").read_text())
    stored = yaml.safe_load((hgx.root / "a" / "options.yaml").read_text())
    assert {k: opts[k] for k in ("arch", "base_width", "cardinality", "stacks", "features")} \
        == {k: stored[k] for k in ("arch", "base_width", "cardinality", "stacks", "features")}
    before = tree_hashes(hgx.root / "a")
    code, out = hgx("eval", "a", "--json")
    assert code == 0 and "Mean" in json.loads(hgx.stdout), out
    first = json.loads(hgx.stdout)
    code, out = hgx("eval", "a", "--json")
    assert json.loads(hgx.stdout) == first  # evaluation is deterministic
    from hgx.data.synth import synth_cache_dir

    data = synth_cache_dir(0, (160, 120), 24, 8, 4)
    code, out = hgx("eval", "--load-model", str(best), "--data-dir", str(data), "--json")
    assert code == 0 and "Mean" in json.loads(hgx.stdout), out
    code, out = hgx("finalize", "--load-model", str(best), "--data-dir", str(data), "--out",
                    str(tmp_path / "loaded.h5"))
    assert code == 0, out
    assert tree_hashes(hgx.root / "a") == before
    code, out = hgx("finalize", "a")
    assert code == 0 and (hgx.root / "a" / "final_preds.h5").is_file(), out
    code, out = hgx("show", "a", "--samples", "2", "--out", str(tmp_path / "s.png"))
    assert code == 0, out
    code, out = hgx("show", "a", "--heatmaps", "--out", str(tmp_path / "h.png"))
    assert code == 0 and (tmp_path / "h.png").stat().st_size > 0, out


def test_kill_9_during_hg_prm_training_then_continue_is_bit_identical(hgx):
    """The fractional max-pools' regions are part of the run's state: after kill -9s (inside
    epochs too: a snapshot every ~30 ms) and continues, the weights, the optimizer and the
    logs are those of an uninterrupted run."""
    from test_crash import LONG, _cli, _final

    run = [*LONG, "--arch", "hg-prm", "--base-width", "4", "--cardinality", "2"]
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    root = hgx.root
    p = _cli(root, "new", "clean", *run)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    kills, started = 0, False
    for delay in np.random.default_rng(7).uniform(2.0, 4.0, size=4):
        args = ["continue", "killed"] if started else ["new", "killed", *run]
        proc = _cli(root, *args)
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=60)
        started = (root / "killed" / "options.yaml").exists()
    proc = _cli(root, *(["continue", "killed"] if started else ["new", "killed", *run]))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert kills >= 2, "the run finished before it could be killed: lengthen it"
    model_a, optim_a, train_a, valid_a = _final(root, "clean")
    model_b, optim_b, train_b, valid_b = _final(root, "killed")
    assert "stem.3.levels.0.weight" in model_a
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert train_a == train_b and valid_a == valid_b
    sq_a = [s["square_avg"] for s in optim_a["state"].values()]
    sq_b = [s["square_avg"] for s in optim_b["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(sq_a, sq_b))

"""RetouchFormer as a LightningModule (src/models/retouchformer.py): mean teacher, optimizer separation,
ablation switches, the paper recipe's weights check and a tiny overfit (L_con^x2y falls, mask Soft-IoU rises).
(Its networks: tests/models/components/test_selective_attention.py, test_vector_quantizer.py.)"""

import copy

import pytest
import torch
import torch.nn.functional as F

from facezoo.metrics import SoftIoU
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, WeightsNotFoundError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated

RF = ["model=retouchformer", "split.gamma=0.5"]


def _build(tmp_path, data_dir, *overrides):
    cfg = compose_config(overrides=[*TINY, *RF, *overrides], output_dir=tmp_path, data_dir=data_dir)
    return instantiate(cfg.model, "model"), instantiate(cfg.datamodule, "datamodule")


def _params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_restore_gives_image_and_soft_mask(tmp_path, data_dir):
    model, _ = _build(tmp_path, data_dir)
    out = model.restore(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out["image"].shape == (2, 3, 64, 64) and out["mask"].shape == (2, 1, 64, 64)
    assert 0 <= out["mask"].min() and out["mask"].max() <= 1
    with pytest.raises(ConfigError, match="divisible by 16, got 40x64"):
        model.restore(torch.zeros(1, 3, 40, 64))
    with pytest.raises(ConfigError, match="model.output='pixels'"):
        _build(tmp_path, data_dir, "model.output=pixels")


def test_mean_teacher_update_is_exact_and_gets_no_gradient(tmp_path, data_dir):
    model, dm = _build(tmp_path, data_dir, "model.mu=0.9")
    batch = first_batch(dm)
    teacher_before = copy.deepcopy(model.mask_teacher.module.state_dict())
    fit_repeated(model, batch, 1)
    student = model.mask_net.state_dict()
    for name, value in model.mask_teacher.module.state_dict().items():
        torch.testing.assert_close(
            value, 0.9 * teacher_before[name] + 0.1 * student[name], rtol=1e-5, atol=1e-6
        )
    assert any(not torch.equal(teacher_before[n], student[n]) for n in student)
    assert all(not p.requires_grad and p.grad is None for p in model.mask_teacher.parameters())


def test_each_optimizer_updates_only_its_networks(tmp_path, data_dir):
    model, dm = _build(tmp_path, data_dir)
    batch = first_batch(dm)
    owners = {
        group: {f"{name}." for name, child in model.named_children() if any(child is net for net in nets)}
        for group, nets in model.optimizer_groups().items()
    }
    calls, step = [], model.step

    def spy(optimizers, loss, clip=None):
        before = _params(model)
        step(optimizers, loss, clip)
        calls.append({n for n, p in model.named_parameters() if not torch.equal(before[n], p)})

    model.step = spy
    fit_repeated(model, batch, 1)
    assert len(calls) == 3  # mask, prior + generator, discriminator
    expected = [owners["mask"], owners["prior"] | owners["generator"], owners["discriminator"]]
    for changed, prefixes in zip(calls, expected, strict=True):
        assert changed and all(n.startswith(tuple(prefixes)) for n in changed), (prefixes, changed)
    for prefix in owners["prior"] | owners["generator"]:  # the joint step moves every network it owns
        assert any(n.startswith(prefix) for n in calls[1]), prefix
    assert not any(n.startswith("mask_teacher.") for c in calls for n in c)


def test_ablation_switches_change_what_they_claim(tmp_path, data_dir):
    x, r = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    full, dm = _build(tmp_path, data_dir)
    torch.testing.assert_close(full.mask_input(x, r), torch.cat([x, r], 1))
    no_prior, _ = _build(tmp_path, data_dir, "model.use_prior=false")  # Table 2, w/o P
    torch.testing.assert_close(no_prior.mask_input(x, r), torch.cat([x, x], 1))

    sps, _ = _build(tmp_path, data_dir, "model.tokens.levels=[3]")  # w/ SPS: one token scale
    assert full.tokens(full.encoder(x)).shape[1] == 4 and sps.tokens(sps.encoder(x)).shape[1] == 1

    gsa, _ = _build(tmp_path, data_dir, "model.transformer.mode=global")  # w/ GSA: mask-free attention
    tokens, clean = torch.randn(1, 4, 32, 8, 8), torch.zeros(1, 1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(full.transformer(tokens, clean), tokens)  # no imperfection: nothing changes
        assert not torch.allclose(gsa.transformer(tokens, clean), tokens)

    batch = first_batch(dm)  # w/o X_u: the unpaired parts of the batch are ignored
    seen = {}
    for name, overrides in {"with": [], "without": ["model.use_unpaired=false"]}.items():
        model, _ = _build(tmp_path, data_dir, *overrides)
        sizes = []
        model.discriminator.register_forward_hook(
            lambda m, args, out, sizes=sizes: sizes.append(args[0].shape[0])
        )
        fit_repeated(model, batch, 1)
        seen[name] = sizes
    n_paired, n_all = batch["paired"]["raw"].shape[0], 2 * batch["paired"]["raw"].shape[0]
    assert seen["with"][-1] == 2 * n_all and seen["without"][-1] == 2 * n_paired


def test_paper_recipe_refuses_to_start_without_vgg19(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(tmp_path / "empty"))
    cfg = compose_config(overrides=["experiment=retouchformer_ffhqr"], output_dir=tmp_path)
    assert cfg.datamodule.image_size == 512 and cfg.iterations == cfg.model.iterations == 300000
    with pytest.raises(WeightsNotFoundError, match="vgg19-dcbb9e9d.pth"):
        instantiate(cfg.model, "model")


def test_tiny_overfit_lowers_x2y_and_raises_mask_soft_iou(tmp_path, data_dir):
    lr = [f"model.optimizers.{group}.lr=1e-3" for group in ("prior", "mask", "generator", "discriminator")]
    model, dm = _build(tmp_path, data_dir, "model.mu=0.5", *lr)  # output: synthesis
    batch = first_batch(dm)
    raw, retouched, true_mask = (batch["paired"][k] for k in ("raw", "retouched", "mask"))

    def measure():
        out = model.restore(raw)
        iou = SoftIoU()
        iou.update(out["mask"], true_mask)
        return F.l1_loss(out["image"], retouched).item(), iou.compute().item()

    (l1_before, iou_before) = measure()
    fit_repeated(model, batch, 60)
    (l1_after, iou_after) = measure()
    assert l1_after < 0.8 * l1_before, (l1_before, l1_after)
    assert iou_after > iou_before + 0.1, (iou_before, iou_after)


def _first_mask_loss(model, batch) -> float:
    """The loss of the first optimizer step of one training step: the mask step (L_H̄ + L_H)."""
    step, seen = model.step, []

    def spy(opts, loss, clip=None):
        seen.append(loss.item())
        step(opts, loss, clip)

    model.step = spy
    fit_repeated(model, batch, 1)
    return seen[0]


def test_teacher_negatives_adds_the_other_half_of_the_consistency(tmp_path, data_dir):
    """With teacher_negatives the unpaired mask term also pulls the student down where the teacher is low."""
    losses = {}
    for flag in (False, True):
        torch.manual_seed(0)
        model, dm = _build(tmp_path, data_dir, f"model.teacher_negatives={flag}")
        losses[flag] = _first_mask_loss(model, first_batch(dm))
    assert losses[True] > losses[False] > 0


def test_each_optimizer_group_has_its_own_learning_rate_and_cosine_schedule(tmp_path, data_dir):
    model, _ = _build(tmp_path, data_dir, "model.optimizers.mask.lr=8e-4", "iterations=10")
    optimizers, schedulers = model.configure_optimizers()
    lrs = dict(zip(model.optimizer_groups(), (o.param_groups[0]["lr"] for o in optimizers), strict=True))
    assert lrs["mask"] == pytest.approx(4 * lrs["prior"])
    assert lrs["prior"] == lrs["generator"] == lrs["discriminator"] == pytest.approx(2e-4)
    assert schedulers[1].base_lrs == [lrs["mask"]]  # the cosine decay starts from the group's rate
    assert all(s.T_max == 10 for s in schedulers)  # over the run's iterations


def test_conf_threshold_limits_the_paired_confidence_term_to_clear_imperfections(tmp_path, data_dir):
    """1{φ>τ}: τ = 0 (the paper) pushes every changed pixel up, τ = 0.5 only the clearly changed ones, and
    τ = 1 none (the paired confidence term vanishes); the rest of the mask loss is the same."""
    losses = {}
    for tau in (0.0, 0.5, 1.0):
        torch.manual_seed(0)
        model, dm = _build(tmp_path, data_dir, f"model.conf_threshold={tau}", "model.use_unpaired=false")
        batch = first_batch(dm)
        losses[tau] = _first_mask_loss(model, batch)
        phi = model.phi(batch["paired"]["raw"], batch["paired"]["retouched"])
        assert ((phi > 0) & (phi <= 0.5)).any() and (phi > 0.5).any()
    assert losses[0.0] > losses[0.5] > losses[1.0] > 0

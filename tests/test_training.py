"""The training stack in one process: ImageClassifier, schedules, fine-tuning, pretrained timm weights."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
import timm
import torch
from lightning.pytorch.callbacks import Timer
from safetensors.torch import save_file
from torch.utils.data import DataLoader, TensorDataset

from bridge.errors import ConfigError
from bridge.lit import BackboneFreeze, GradientFlowMonitor, ImageClassifier, NonFiniteLossError
from bridge.lit.schedule import build_schedule, cosine


class TinyData(L.LightningDataModule):
    """Separable random images: class c has mean c, so any model learns them in a few steps."""

    def __init__(self, num_classes: int = 3, size: int = 32, chans: int = 3, n: int = 96, nan_from_batch=None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        labels = torch.arange(n) % num_classes
        images = torch.randn(n, chans, size, size, generator=g) * 0.3 + labels[:, None, None, None].float()
        self.train_set = TensorDataset(images, labels)
        if nan_from_batch is not None:  # batches are 16 images, in order
            images = images.clone().index_fill_(0, torch.arange(16 * nan_from_batch, n), float("nan"))
            self.train_set = TensorDataset(images, labels)
        self.num_classes = num_classes

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=16, shuffle=False)

    def val_dataloader(self):
        return DataLoader(self.train_set, batch_size=32)


def adamw(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=3e-3)


def trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, max_epochs=1,
    )  # fmt: skip
    return L.Trainer(**{**defaults, **kwargs})


def test_classifier_learns_and_reports_top1_top5(tmp_path):
    module = ImageClassifier("resnet20", num_classes=3, optimizer=adamw)
    t = trainer(tmp_path, max_epochs=4)
    t.fit(module, TinyData())
    metrics = t.callback_metrics
    assert metrics["val/acc"] > 0.9, f"resnet20 failed to separate three shifted Gaussians: {metrics}"
    assert metrics["val/acc_top3"] == 1.0  # top-k is capped at num_classes


def test_multistep_schedule_with_warmup_follows_the_paper_recipe():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = build_schedule(opt, "multistep", total_steps=100, warmup_steps=10, milestones=[50, 75], gamma=0.1)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.01)  # warm-up starts at lr / 10
    assert lrs[10] == pytest.approx(0.1) and lrs[49] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.01) and lrs[75] == pytest.approx(0.001)


def test_budget_cosine_follows_steps_like_torchs_and_ends_with_the_time_budget():
    spent = 0.0
    param = torch.nn.Parameter(torch.zeros(1))
    ours, reference = torch.optim.SGD([param], lr=0.1), torch.optim.SGD([param], lr=0.1)
    schedule = build_schedule(ours, "cosine_budget", total_steps=100, time_spent=lambda: spent)
    torch_cosine = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=100)
    for _ in range(30):
        assert ours.param_groups[0]["lr"] == pytest.approx(reference.param_groups[0]["lr"])
        schedule.step()
        torch_cosine.step()
    spent = 0.5  # half the time gone after 30 of 100 steps: the clock sets the pace
    schedule.step()
    assert ours.param_groups[0]["lr"] == pytest.approx(0.05)
    spent = 1.0
    schedule.step()
    assert ours.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_an_unknown_schedule_is_refused_with_the_choices_named():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match="constant, cosine, cosine_budget or multistep, got 'cosine-budget'"):
        build_schedule(optimizer, "cosine-budget", total_steps=100)


class StepClock(Timer):
    """Lightning's Timer on a clock that moves 0.1 s per training step, so a 1-second budget is 10 steps."""

    def __init__(self) -> None:
        super().__init__(duration={"seconds": 1}, interval="step")
        self.steps = 0

    def time_elapsed(self, stage: str = "train") -> float:
        return 0.1 * self.steps

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        self.steps += 1
        super().on_train_batch_end(trainer, *args, **kwargs)


def test_a_run_stopped_by_its_time_budget_ends_annealed(tmp_path):
    """max_steps far out of reach: only the clock can bring the cosine down, and it does, in step with it."""
    lrs = []

    class RecordLR(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    module = ImageClassifier("lenet5", num_classes=3, in_chans=3, optimizer=adamw, lr_schedule="cosine_budget")
    t = trainer(tmp_path, max_epochs=-1, max_steps=10**6, limit_val_batches=0, callbacks=[StepClock(), RecordLR()])
    t.fit(module, TinyData())
    assert t.global_step == 10
    # The schedule steps before the clock reads the step's end: the learning rate of step i follows step i - 1.
    expected = [3e-3] + [3e-3 * cosine(0.1 * (i - 1)) for i in range(1, 10)]
    assert lrs == pytest.approx(expected)
    assert t.optimizers[0].param_groups[0]["lr"] < 0.03 * 3e-3


def test_backbone_lr_scale_gives_the_backbone_its_own_learning_rate(tmp_path):
    module = ImageClassifier("resnet20", num_classes=3, backbone_lr_scale=0.1, lr_schedule="constant")
    t = trainer(tmp_path, max_steps=1)
    t.fit(module, TinyData())
    backbone, head = t.optimizers[0].param_groups
    assert backbone["lr"] == pytest.approx(head["lr"] * 0.1)
    assert {id(p) for p in head["params"]} == {id(module.model.fc.weight), id(module.model.fc.bias)}


def test_backbone_freeze_trains_only_the_head_then_everything(tmp_path):
    module = ImageClassifier("resnet20", num_classes=3, lr_schedule="constant", optimizer=adamw)
    start = {k: v.clone() for k, v in module.model.state_dict().items()}
    t = trainer(tmp_path, callbacks=[BackboneFreeze(unfreeze_at_epoch=1)], limit_val_batches=0)
    t.fit(module, TinyData())
    after_one = module.model.state_dict()
    assert not torch.equal(after_one["fc.weight"], start["fc.weight"])
    for key in ("conv1.weight", "layer2.0.branch.conv1.weight", "bn1.running_mean"):
        assert torch.equal(after_one[key], start[key]), f"{key} changed while the backbone was frozen"
    t = trainer(tmp_path, callbacks=[BackboneFreeze(unfreeze_at_epoch=1)], limit_val_batches=0, max_epochs=2)
    t.fit(module, TinyData(), ckpt_path=None)
    assert not torch.equal(module.model.state_dict()["conv1.weight"], start["conv1.weight"])


def test_freeze_bn_keeps_batchnorm_statistics_and_affine_weights(tmp_path):
    module = ImageClassifier("resnet20", num_classes=3, freeze_bn=True, optimizer=adamw)
    bn, conv = module.model.bn1, module.model.conv1
    mean, weight, conv_weight = bn.running_mean.clone(), bn.weight.clone(), conv.weight.clone()
    trainer(tmp_path).fit(module, TinyData())
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.weight, weight)
    assert not torch.equal(conv.weight, conv_weight)  # the convolutions still train


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=0, save_last=True, every_n_train_steps=1)
    module = ImageClassifier("resnet20", num_classes=3)
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        trainer(tmp_path, callbacks=[ckpt], enable_checkpointing=True).fit(module, TinyData(nan_from_batch=3))
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_labels_beyond_num_classes_are_refused_before_training(tmp_path):
    module = ImageClassifier("resnet20", num_classes=2)
    with pytest.raises(ValueError, match="num_classes: 3"):
        trainer(tmp_path).fit(module, TinyData(num_classes=3))


# -- pretrained timm weights, offline -------------------------------------------------------------------


def _timm_weights(tmp_path, name="resnet18"):
    source = timm.create_model(name, pretrained=False)
    with torch.no_grad():
        for p in source.parameters():
            p.normal_(0, 0.02)
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    return source, path


def test_timm_model_starts_from_exactly_the_given_file(tmp_path):
    source, path = _timm_weights(tmp_path)
    module = ImageClassifier("timm:resnet18", num_classes=5, pretrained=True, pretrained_file=str(path))
    ours = module.model.model.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(ours[key], value), key
    assert ours["fc.weight"].shape == (5, 512)  # the head is replaced for num_classes


def test_zoo_model_takes_the_same_file_through_import_weights(tmp_path):
    source, path = _timm_weights(tmp_path)
    module = ImageClassifier("resnet18", num_classes=5, pretrained_file=str(path))
    assert torch.equal(module.model.layer3[1].branch.conv2.weight, source.layer3[1].conv2.weight)
    assert torch.equal(module.model.layer2[0].shortcut[0].weight, source.layer2[0].downsample[0].weight)


def test_timm_weights_come_from_the_local_hugging_face_cache_offline(tmp_path, monkeypatch):
    source, path = _timm_weights(tmp_path)
    repo = timm.create_model("resnet18").pretrained_cfg["hf_hub_id"]  # e.g. timm/resnet18.a1_in1k
    cache = tmp_path / "hub"
    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(path.read_bytes())
    (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
    (cache / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    module = ImageClassifier("timm:resnet18", num_classes=1000, pretrained=True)
    assert torch.equal(module.model.model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_missing_pretrained_weights_offline_name_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError) as err:
        ImageClassifier("timm:resnet18", pretrained=True)
    message = str(err.value)
    assert "pretrained_file" in message and "cache" in message and "online" in message


def test_gradient_flow_monitor_logs_every_block(tmp_path):
    module = ImageClassifier("resnet20", num_classes=3, optimizer=adamw)
    t = trainer(tmp_path, callbacks=[GradientFlowMonitor(every_n_steps=1)], max_steps=2, limit_val_batches=0)
    t.fit(module, TinyData())
    logged = {k: v for k, v in t.callback_metrics.items() if k.startswith("grad_norm/")}
    assert len(logged) == 9 and "grad_norm/layer1.0" in logged  # resnet20: 3 stages of 3 blocks
    assert all(v > 0 for v in logged.values())


@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*.yaml")))
def test_every_config_parses_and_names_real_classes(config, capsys):
    from bridge.lit.lightning_cli import BridgeCLI

    path = Path(__file__).parents[1] / "configs" / config
    with pytest.raises(SystemExit) as done:
        BridgeCLI(args=["fit", "--config", str(path), "--print_config"])
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    # the model is one of bridge's LightningModules (the VLA policy's lives in bridge.vla.training)
    assert re.search(r"class_path: bridge\.(lit|vla\.training)\.", printed) and "seed_everything: 0" in printed


def test_last_checkpoint_at_every_n_steps_and_at_every_epoch_end(tmp_path):
    from bridge.lit.callbacks import LastCheckpoint

    saved = []

    class Record(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            saved.append(trainer.global_step)

    module = ImageClassifier("resnet20", num_classes=3, optimizer=adamw)
    last = LastCheckpoint(tmp_path / "ckpt", every_n_train_steps=4)
    trainer(tmp_path, callbacks=[last, Record()], max_epochs=2, limit_val_batches=0).fit(module, TinyData())
    assert saved == [4, 6, 8, 12]  # 6 steps an epoch: steps 4 and 8, the epoch ends 6 and 12 (not twice)
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 12 and last.last_model_path == str(tmp_path / "ckpt" / "last.ckpt")

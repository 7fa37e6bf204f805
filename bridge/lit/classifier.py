"""ImageClassifier: one LightningModule around any zoo or timm model."""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from bridge.errors import BridgeError, ConfigError
from bridge.lit.schedule import build_schedule, time_spent
from bridge.models import create_model, import_weights


class NonFiniteLossError(BridgeError, RuntimeError):
    """The loss became NaN or infinite; training stops before a bad checkpoint can be written."""


def default_optimizer(params) -> torch.optim.Optimizer:
    """SGD with momentum, the ResNet paper's optimiser (lr 0.1, momentum 0.9, weight decay 1e-4)."""
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)


class ImageClassifier(L.LightningModule):
    """Train any ``bridge.create_model`` name (``resnet20``) or ``timm:<name>`` on image classification.

    ``optimizer`` comes from the config (``class_path: torch.optim.AdamW``...). The schedule is stepped per
    iteration: optional linear warm-up, then constant, cosine to zero at ``max_steps`` (``cosine_budget``: at
    ``max_steps`` or ``max_time``, whichever ends training; :mod:`bridge.lit.schedule`), or multistep
    (``milestones`` in iterations, as in the ResNet paper). ``backbone_lr_scale`` multiplies the learning rate of
    everything but the classifier; ``freeze_bn`` keeps BatchNorm statistics and affine weights fixed (small-batch
    fine-tuning).
    """

    # The best checkpoint is chosen on validation loss, not accuracy: on a small validation split (180
    # digits) accuracy moves in steps of 0.6%, so its maximum is often an early lucky epoch.
    monitor = ("val/loss", "min")

    def __init__(
        self,
        model: str = "resnet20",
        num_classes: int = 10,
        in_chans: int = 3,
        model_kwargs: dict | None = None,
        pretrained: bool = False,
        pretrained_file: str | None = None,
        optimizer: OptimizerCallable = default_optimizer,
        lr_schedule: Literal["constant", "cosine", "cosine_budget", "multistep"] = "cosine",
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        warmup_steps: int = 0,
        label_smoothing: float = 0.0,
        backbone_lr_scale: float = 1.0,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:  # one class has nothing to tell apart (and torchmetrics refuses it)
            raise ConfigError(f"num_classes must be 2 or more, got {num_classes}; set model.init_args.num_classes")
        self.save_hyperparameters(ignore=["optimizer"])
        self.optimizer_factory = optimizer
        self.model = build_model(model, num_classes, in_chans, model_kwargs or {}, pretrained, pretrained_file)
        top_k = min(5, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = nn.ModuleDict(
            {stage: MulticlassAccuracy(num_classes, average="micro") for stage in ("val", "test")}
        )
        self.val_acc_topk = nn.ModuleDict(
            {stage: MulticlassAccuracy(num_classes, top_k=top_k, average="micro") for stage in ("val", "test")}
        )

    @property
    def mean(self) -> tuple[float, ...] | None:
        """Normalisation the model was pretrained with (timm's pretrained_cfg), or None for the data default."""
        return getattr(self.model, "mean", None)

    @property
    def std(self) -> tuple[float, ...] | None:
        return getattr(self.model, "std", None)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    # -- parameter groups -------------------------------------------------------------------------------
    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.model.get_submodule(self.model.head_name).parameters())

    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.model.parameters() if id(p) not in head]

    def configure_optimizers(self):
        groups = [{"params": self.backbone_parameters()}, {"params": self.head_parameters()}]
        optimizer = self.optimizer_factory(groups)
        optimizer.param_groups[0]["lr"] *= self.hparams.backbone_lr_scale
        scheduler = build_schedule(
            optimizer,
            self.hparams.lr_schedule,
            total_steps=int(self.trainer.estimated_stepping_batches),
            warmup_steps=self.hparams.warmup_steps,
            milestones=self.hparams.milestones or [],
            gamma=self.hparams.gamma,
            time_spent=lambda: time_spent(self.trainer),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- steps --------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        data_classes = getattr(datamodule, "num_classes", None)
        if data_classes is not None and data_classes > self.hparams.num_classes:
            raise ConfigError(
                f"the data has {data_classes} classes but the model was built for num_classes="
                f"{self.hparams.num_classes}; set model.num_classes: {data_classes}"
            )
        if hasattr(datamodule, "image_size") and hasattr(datamodule, "in_chans"):
            # One image of the data's size, so that Lightning's model summary counts the FLOPs.
            self.example_input_array = torch.zeros(1, datamodule.in_chans, datamodule.image_size, datamodule.image_size)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "stopping before a checkpoint is written, so the last checkpoint holds the last good weights. "
                "Lower the learning rate, add warm-up (warmup_steps) or clip gradients (trainer.gradient_clip_val)."
            )
        self.train_acc(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_eval(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_eval(batch, "test")

    def _shared_eval(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        images, labels = batch
        logits = self(images)
        self.val_acc[stage](logits, labels)
        self.val_acc_topk[stage](logits, labels)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.log(f"{stage}/acc", self.val_acc[stage], prog_bar=True)
        self.log(f"{stage}/acc_top{self.val_acc_topk[stage].top_k}", self.val_acc_topk[stage])

    def predict_step(self, batch, batch_idx: int) -> Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(images).softmax(dim=-1)

    def on_train_epoch_start(self) -> None:
        # Lightning keeps each module's train/eval mode across validation, so once per epoch is enough.
        if self.hparams.freeze_bn:
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
                    module.requires_grad_(False)


def build_model(
    name: str, num_classes: int, in_chans: int, kwargs: dict, pretrained: bool, pretrained_file: str | None
) -> nn.Module:
    """A zoo or timm model; pretrained weights for zoo models come from ``pretrained_file`` via import_weights."""
    if name.startswith("timm:"):
        return create_model(
            name, num_classes=num_classes, in_chans=in_chans, pretrained=pretrained,
            pretrained_file=pretrained_file, **kwargs,
        )  # fmt: skip
    model = create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    if pretrained_file is not None:
        import_weights(model, pretrained_file, drop_head=True)
    elif pretrained:
        raise ConfigError(
            f"bridge's own {name} has no published weights; pass pretrained_file= (a bridge, timm or torchvision "
            f"checkpoint) or use model: timm:{name}"
        )
    return model

"""VLAPolicy: behaviour cloning of the toy VLA policy with the Trainer, logger and checkpoints of classification."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torchmetrics import MeanAbsoluteError
from torchmetrics.classification import MulticlassAccuracy

from bridge.lit.classifier import NonFiniteLossError, build_schedule
from bridge.vla.evaluate import evaluate
from bridge.vla.language import wrap_tokenizer
from bridge.vla.policy import Policy, PolicyConfig, config_mismatch


def default_optimizer(params) -> torch.optim.Optimizer:
    """AdamW at 1e-3: a small Transformer trunk trained from scratch."""
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


class VLAPolicy(L.LightningModule):
    """Train a :class:`~bridge.vla.policy.Policy` on :class:`~bridge.vla.demos.DemoDataModule` demonstrations.

    ``policy`` holds the architecture (:class:`PolicyConfig`). ``encoder_lr_scale`` multiplies the
    encoder's learning rate (0 < scale < 1 for a pretrained encoder; ``policy.freeze_encoder`` freezes
    it). ``rollout_episodes`` > 0 also runs that many closed-loop episodes after each validation epoch and
    logs ``val/success``, which then picks the best checkpoint; otherwise ``val/loss`` does. ``world`` is the
    configuration of the world the policy acts in (``ReachConfig`` fields); ``fit`` fills it from the demo
    set and it is saved with the checkpoint. (Not ``env``: that name is the data module's, and Lightning
    refuses a hyperparameter both hold with different values.)
    """

    def __init__(
        self,
        policy: PolicyConfig | None = None,
        optimizer: OptimizerCallable = default_optimizer,
        encoder_lr_scale: float = 1.0,
        lr_schedule: Literal["constant", "cosine", "multistep"] = "cosine",
        warmup_steps: int = 0,
        rollout_episodes: int = 0,
        world: dict | None = None,
    ) -> None:
        super().__init__()
        config = PolicyConfig(**policy) if isinstance(policy, dict) else policy or PolicyConfig()
        # Plain types only, so checkpoints load with weights_only=True.
        self.save_hyperparameters(
            {
                "policy": asdict(config),
                "encoder_lr_scale": encoder_lr_scale,
                "lr_schedule": lr_schedule,
                "warmup_steps": warmup_steps,
                "rollout_episodes": rollout_episodes,
                "world": world,
            }
        )
        self.optimizer_factory = optimizer
        self.policy = Policy(config)
        self.monitor = ("val/success", "max") if rollout_episodes > 0 else ("val/loss", "min")
        self.token_acc = torch.nn.ModuleDict(
            {stage: MulticlassAccuracy(config.num_bins, average="micro") for stage in ("fit", "val")}
        )
        self.action_mae = torch.nn.ModuleDict({stage: MeanAbsoluteError() for stage in ("fit", "val")})

    @property
    def config(self) -> PolicyConfig:
        return self.policy.config

    # -- data and checkpoints ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage != "fit" or datamodule is None or not hasattr(datamodule, "env_config"):
            return
        env = datamodule.env_config
        if env["image_size"] != self.config.image_size:
            raise ValueError(
                f"the demo set's frames are {env['image_size']}x{env['image_size']} but the policy takes "
                f"image_size={self.config.image_size}; set model.init_args.policy.image_size: {env['image_size']}"
            )
        if datamodule.action_horizon < self.config.chunk_size:
            raise ValueError(
                f"chunk_size={self.config.chunk_size} needs at least that many actions per frame; "
                f"set data.init_args.action_horizon: {self.config.chunk_size}"
            )
        self.policy.set_stats(datamodule.stats)  # a resumed run then restores the same values from its checkpoint
        self.hparams["world"] = env

    def on_fit_start(self) -> None:
        # The tokenizer and text config beside the checkpoints, so AutoTokenizer.from_pretrained(<run>/tokenizer) works.
        if self.trainer.is_global_zero and self.policy.text.trained_tokenizer:
            self.policy.text.save_pretrained(Path(self.trainer.default_root_dir) / "tokenizer")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The architecture under its own key: load_from_checkpoint(**overrides) rewrites "hyper_parameters".
        checkpoint["policy_config"] = asdict(self.config)
        if self.policy.text.trained_tokenizer:
            checkpoint["tokenizer"] = self.policy.text.tokenizer.backend_tokenizer.to_str()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("policy_config") or checkpoint.get("hyper_parameters", {}).get("policy")
        if saved is None:
            raise ValueError("this checkpoint is not a VLAPolicy's (it has no policy configuration)")
        mismatch = config_mismatch(saved, asdict(self.config))
        if mismatch:
            raise ValueError(
                "the checkpoint was trained with another policy configuration:\n  "
                + "\n  ".join(mismatch)
                + "\nUse the checkpoint's configuration (load_policy reads it) or start a new run without ckpt_path."
            )
        if "tokenizer" in checkpoint:
            self.policy.text.tokenizer = wrap_tokenizer(checkpoint["tokenizer"])

    # -- optimisation ---------------------------------------------------------------------------------------
    def configure_optimizers(self):
        encoder = [p for p in self.policy.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in self.policy.encoder.parameters()}
        rest = [p for p in self.policy.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest}] + ([{"params": encoder}] if encoder else [])
        optimizer = self.optimizer_factory(groups)
        if encoder:
            optimizer.param_groups[1]["lr"] *= self.hparams.encoder_lr_scale
        scheduler = build_schedule(
            optimizer, self.hparams.lr_schedule, int(self.trainer.estimated_stepping_batches), self.hparams.warmup_steps
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- steps ------------------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._step(batch, "train")
        if not torch.isfinite(out.loss):
            raise NonFiniteLossError(
                f"the training loss became {out.loss.item()} at step {self.global_step}; lower the learning "
                "rate, add warm-up (warmup_steps) or clip gradients (trainer.gradient_clip_val)"
            )
        return out.loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def _step(self, batch: dict, stage: str):
        out = self.policy.compute_loss(batch)
        size, key = len(batch["task"]), "fit" if stage == "train" else stage  # "train" is taken in a ModuleDict
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=size, sync_dist=stage == "val")
        self.action_mae[key](out.first_action, batch["action"][:, 0].float())
        self.log(f"{stage}/action_mae", self.action_mae[key], batch_size=size)
        if out.logits is not None:
            self.token_acc[key](out.logits, out.labels)
            self.log(f"{stage}/token_acc", self.token_acc[key], prog_bar=stage == "val", batch_size=size)
        return out

    def on_validation_epoch_end(self) -> None:
        if self.hparams.rollout_episodes <= 0 or self.trainer.sanity_checking:
            return
        # Closed loop on fixed evaluation seeds: the number a VLA policy is judged by. Every rank runs the
        # same episodes with the same weights, so no synchronisation is needed.
        results, _ = evaluate(
            self.policy.as_agent(), self.hparams.world, episodes=self.hparams.rollout_episodes, seeds=1,
            conditions=("policy",), progress=False,
        )  # fmt: skip
        self.log("val/success", results["policy"].success_rate, prog_bar=True, sync_dist=True)


def load_policy(path: str | Path, map_location: str = "cpu") -> VLAPolicy:
    """A trained VLAPolicy from its checkpoint (``weights_only=True``), in eval mode, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "policy" not in hparams:
        kind = (
            f"an ImageClassifier checkpoint of {hparams['model']}"
            if "model" in hparams
            else "not a VLAPolicy checkpoint"
        )
        raise ValueError(f"{path} is {kind}; pass the checkpoint of a VLA run (runs/<name>/checkpoints/*.ckpt)")
    return VLAPolicy.load_from_checkpoint(path, map_location=map_location, weights_only=True).eval()

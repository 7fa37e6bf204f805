"""VLAPolicy: behaviour cloning of a VLA policy with the Trainer, logger and checkpoints of classification."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torchmetrics import MeanAbsoluteError
from torchmetrics.classification import MulticlassAccuracy

from bridge.errors import ConfigError
from bridge.lit.classifier import NonFiniteLossError
from bridge.lit.schedule import build_schedule, time_spent
from bridge.vla.demos.datamodule import DemoDataModule
from bridge.vla.evaluation.closed_loop import evaluate
from bridge.vla.policy.configuration import PolicyConfig, config_mismatch
from bridge.vla.policy.language import wrap_tokenizer
from bridge.vla.policy.modeling import Policy
from bridge.vla.worlds import World


def default_optimizer(params) -> torch.optim.Optimizer:
    """AdamW at 1e-3: a small Transformer trunk trained from scratch."""
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


class VLAPolicy(L.LightningModule):
    """Train a :class:`~bridge.vla.policy.modeling.Policy` on :class:`~bridge.vla.demos.DemoDataModule` demonstrations.

    ``policy`` holds the architecture (:class:`PolicyConfig`). ``encoder_lr_scale`` multiplies the encoder's
    learning rate (0 < scale < 1 for a pretrained encoder; ``policy.freeze_encoder`` freezes it). ``lr_schedule:
    cosine_budget`` ends the cosine at ``max_steps`` or ``max_time``, whichever ends training
    (:mod:`bridge.lit.schedule`). ``rollout_episodes`` > 0 also runs that many closed-loop episodes (on the world's
    validation scenes, never the evaluation's) after each validation epoch and logs ``val/success``, which then
    picks the best checkpoint; otherwise ``val/loss`` does. ``fit`` fills ``policy.world_options`` (the options of
    the world ``policy.world`` names) from the demo set, so the checkpoint acts in the world it was trained in.
    ``policy.save_pretrained(folder)`` exports the trained policy for ``bridge.vla.policy.loading.load_policy`` /
    ``Policy.from_pretrained``.
    """

    def __init__(
        self,
        policy: PolicyConfig | None = None,
        optimizer: OptimizerCallable = default_optimizer,
        encoder_lr_scale: float = 1.0,
        lr_schedule: Literal["constant", "cosine", "cosine_budget", "multistep"] = "cosine",
        warmup_steps: int = 0,
        rollout_episodes: int = 0,
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
            }
        )
        self.optimizer_factory = optimizer
        self.policy = Policy(config)
        self.monitor = ("val/success", "max") if rollout_episodes > 0 else ("val/loss", "min")
        c = self.policy.config  # sizes and head resolved from the world
        # Bins: how often the expert's bin is the top one; categorical: how often its action is.
        self.token_acc = torch.nn.ModuleDict(
            {
                stage: MulticlassAccuracy(c.num_bins if c.head == "bins" else c.action_dim, average="micro")
                for stage in ("fit", "val")
            }
        )
        self.action_mae = torch.nn.ModuleDict({stage: MeanAbsoluteError() for stage in ("fit", "val")})
        self.world: World | None = None  # for the validation rollouts, built at their first use
        # One blank frame (or history of frames), state and instruction: Lightning's model summary counts the
        # FLOPs of a forward pass with it.
        frames = (c.n_obs_steps,) if c.n_obs_steps > 1 else ()
        self.example_input_array = (
            torch.zeros(1, *frames, c.image_size, c.image_size, 3, dtype=torch.uint8), torch.zeros(1, c.state_dim),
            [self.policy.text.tokenizer.unk_token],
        )  # fmt: skip

    def forward(self, images: torch.Tensor, states: torch.Tensor, tasks: list[str]) -> torch.Tensor:
        """The policy's head outputs (see :meth:`Policy.forward <bridge.vla.policy.modeling.Policy.forward>`)."""
        return self.policy(images, states, tasks)

    @property
    def config(self) -> PolicyConfig:
        return self.policy.config

    # -- data and checkpoints ------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage != "fit" or not isinstance(datamodule, DemoDataModule):
            return
        self._check_data(datamodule)
        self.policy.set_stats(datamodule.stats)  # a resumed run then restores the same values from its checkpoint
        # The policy records the world it learns from, with the demos' options, so that it is evaluated in it.
        self.policy.config.world_options = dict(datamodule.world.options)
        self.hparams["policy"] = asdict(self.config)

    def _check_data(self, datamodule) -> None:
        """The demo set is of the policy's world, with its frame size and action and state sizes."""
        c, obs, actions = self.config, datamodule.observation, datamodule.action_space
        world, arg = datamodule.world.name, "model.init_args.policy"
        if world != c.world:
            raise ConfigError(
                f"the demo set is of world {world!r} but the policy's is {c.world!r}; set {arg}.world: {world}"
            )
        if obs.image_size != c.image_size:
            raise ConfigError(
                f"the demo set's frames are {obs.image_size}x{obs.image_size} but the policy takes "
                f"image_size={c.image_size}; set {arg}.image_size: {obs.image_size}"
            )
        if (actions.size, obs.state_dim) != (c.action_dim, c.state_dim):
            raise ConfigError(
                f"the demo set has actions of {actions.size} and states of {obs.state_dim} dimensions, the policy "
                f"{c.action_dim} and {c.state_dim}; set {arg}.action_dim: {actions.size} and state_dim: {obs.state_dim}"
            )
        if obs.n_obs_steps != c.n_obs_steps:
            raise ConfigError(
                f"the demo set serves the last {obs.n_obs_steps} frames but the policy takes {c.n_obs_steps}; "
                f"set {arg}.n_obs_steps: {obs.n_obs_steps} (or collect demos with n_obs_steps={c.n_obs_steps})"
            )
        if datamodule.action_horizon < c.chunk_size:
            raise ConfigError(
                f"chunk_size={c.chunk_size} needs at least that many actions per frame; "
                f"set data.init_args.action_horizon: {c.chunk_size}"
            )

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
            raise ConfigError("this checkpoint is not a VLAPolicy's (it has no policy configuration)")
        mismatch = config_mismatch(saved, asdict(self.config))
        if mismatch:
            raise ConfigError(
                "the checkpoint was trained with another policy configuration:\n  "
                + "\n  ".join(mismatch)
                + "\nUse the checkpoint's configuration (bridge.vla.load_policy reads it) or start a new "
                "run without ckpt_path."
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
            optimizer, self.hparams.lr_schedule, int(self.trainer.estimated_stepping_batches),
            self.hparams.warmup_steps, time_spent=lambda: time_spent(self.trainer),
        )  # fmt: skip
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
        categorical = self.config.head == "categorical"
        if not categorical:  # a distance between action indices means nothing
            self.action_mae[key](out.first_action, batch["action"][:, 0].float().contiguous())  # a view, with chunks
            self.log(f"{stage}/action_mae", self.action_mae[key], batch_size=size)
        if out.logits is not None:
            self.token_acc[key](out.logits, out.labels)
            name = "action_acc" if categorical else "token_acc"
            self.log(f"{stage}/{name}", self.token_acc[key], prog_bar=stage == "val", batch_size=size)
        return out

    def on_validation_epoch_end(self) -> None:
        if self.hparams.rollout_episodes <= 0 or self.trainer.sanity_checking:
            return
        # Closed loop, the number a VLA policy is judged by, on fixed validation scenes: best.ckpt is chosen on
        # them, so they are not the scenes `vla eval` reports. Every rank runs the same episodes with the same
        # weights, so no synchronisation is needed.
        if self.world is None:
            self.world = self.config.make_world()
        result, _ = evaluate(
            self.policy.as_agent(), self.world, episodes=self.hparams.rollout_episodes, seeds=1, conditions=("policy",),
            progress=False, scenes="validation",
        )  # fmt: skip
        self.log("val/success", result.conditions["policy"].success_rate, prog_bar=True, sync_dist=True)

"""The policy: any zoo or timm encoder + an instruction encoder -> a Residual Transformer trunk -> actions.

Image tokens (``encode()``: the last feature map or the patch tokens, plus the pooled vector) are projected
to the trunk width with fixed 2-D sin-cos positions. The instruction conditions them by FiLM before every
trunk block (zero-initialised: the identity at step 0, as in RT-1) and/or by joining the trunk as a
prefix of tokens. ``chunk_size`` learned query tokens read the actions out: 256 bins per dimension with
cross-entropy (RT-1, OpenVLA) or continuous values with L1 (ACT), for the next ``chunk_size`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bridge.models import ZooModel, create_model, import_weights
from bridge.models.resnet import ResNet
from bridge.models.timm_compat import TimmModel
from bridge.models.vit import VisionTransformer
from bridge.nn import TransformerBlock
from bridge.nn.film import FiLM
from bridge.vla.actions import ActionBins, MinMaxNormalizer
from bridge.vla.env import instructions
from bridge.vla.language import build_text_encoder

ACTION_DIM = STATE_DIM = 2


@dataclass
class PolicyConfig:
    """Everything that defines a policy's architecture (and where its encoder's weights come from).

    Encoder: ``encoder`` is a ``bridge.create_model`` name or ``timm:<name>``, built with
    ``encoder_kwargs``. Weights (optional) follow the training rules: ``pretrained_file`` (a timm, bridge
    or torchvision weights file, or an ImageClassifier ``.ckpt`` whose ``model.`` weights are loaded),
    else for timm models ``pretrained=True`` reads the local Hugging Face cache or the hub.
    ``image_size`` is the side of the world's frames; ``input_size`` resizes them for encoders built for
    another size (e.g. 224 for a pretrained ViT). ``mean``/``std``: pixel normalisation, by default the
    pretrained timm model's own or 0.5.
    Language: ``text_encoder`` None is a small BERT (``text_dim``, ``text_layers``) over a tokenizer trained
    on the instructions; otherwise a local folder or hub id of a pretrained ``transformers`` model.
    Actions: ``head="bins"`` classifies each dimension into ``num_bins`` bins, against one-hot targets
    (``bin_sigma=0``, RT-1) or Gaussians of ``bin_sigma`` bins (HL-Gauss); ``head="continuous"`` regresses
    them with L1. Both predict ``chunk_size`` steps ahead (ACT's chunks).
    """

    encoder: str = "resnet20"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    pretrained_file: str | None = None
    freeze_encoder: bool = False
    image_size: int = 64
    input_size: int | None = None
    mean: float | list[float] | None = None
    std: float | list[float] | None = None
    text_encoder: str | None = None
    text_dim: int = 64
    text_layers: int = 2
    freeze_text: bool = False
    conditioning: Literal["film", "prefix", "both"] = "both"
    dim: int = 128
    depth: int = 2
    num_heads: int = 4
    head: Literal["bins", "continuous"] = "bins"
    num_bins: int = 256
    bin_sigma: float = 0.0
    chunk_size: int = 1

    def __post_init__(self) -> None:
        if self.conditioning not in ("film", "prefix", "both"):
            raise ValueError(f"conditioning must be film, prefix or both, got {self.conditioning!r}")
        if self.head not in ("bins", "continuous"):
            raise ValueError(f"head must be bins or continuous, got {self.head!r}")
        if self.chunk_size < 1 or self.depth < 1:
            raise ValueError("chunk_size and depth must be >= 1")
        if self.dim % 4:
            raise ValueError(f"dim must be a multiple of 4 (2-D sin-cos positions), got {self.dim}")


# Fields that only say where the first weights come from, what trains, or how the loss is shaped; any other
# difference means the checkpoint's tensors belong to another architecture.
NON_ARCHITECTURE_FIELDS = frozenset({"pretrained", "pretrained_file", "freeze_encoder", "freeze_text", "bin_sigma"})


def config_mismatch(saved: dict, current: dict) -> list[str]:
    """``key: saved -> current`` for every architecture field that differs (empty when compatible)."""
    names = [f.name for f in fields(PolicyConfig) if f.name not in NON_ARCHITECTURE_FIELDS]
    defaults = PolicyConfig()
    return [
        f"{n}: {saved.get(n, getattr(defaults, n))!r} in the checkpoint, {current.get(n, getattr(defaults, n))!r} here"
        for n in names
        if saved.get(n, getattr(defaults, n)) != current.get(n, getattr(defaults, n))
    ]


class LossOutput(NamedTuple):
    loss: Tensor
    first_action: Tensor  # (B, 2) predicted first action of the chunk, in env units
    logits: Tensor | None  # bins: (M, num_bins) over the valid (non-padded) targets
    labels: Tensor | None  # bins: (M,) the expert's bins


class Policy(nn.Module):
    """Frames (B, H, W, 3) uint8, agent states (B, 2) and instructions -> actions; see the module docstring.

    Holds its own normalisation (buffers from the demo set's stats), so a checkpoint acts exactly as trained.
    """

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = build_encoder(c)
        sites = film_sites(self.encoder) if c.conditioning != "prefix" else []
        probe = probe_encoder(self.encoder, c, sites)
        mean, std = _normalisation(self.encoder, c)
        self.register_buffer("pixel_mean", torch.tensor(mean).reshape(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).reshape(-1, 1, 1), persistent=False)

        self.text = build_text_encoder(c.text_encoder, instructions("train"), c.text_dim, c.text_layers)
        # FiLM inside the encoder, after each stage: the features themselves become "where is the red circle".
        self.encoder_films = nn.ModuleDict(
            {_key(site): FiLM(self.text.dim, ch) for site, ch in zip(sites, probe.site_channels)}
        )
        for site in sites:
            self.encoder.get_submodule(site).register_forward_hook(partial(_encoder_film, self, _key(site)))
        self._instruction: Tensor | None = None  # the pooled instruction, set only while the encoder runs

        self.image_proj = nn.Linear(probe.dim, c.dim)
        self.pooled_proj = nn.Linear(probe.pooled_dim, c.dim)
        self.register_buffer("image_pos", sincos_2d(*probe.grid, c.dim), persistent=False)
        self.state_proj = nn.Linear(STATE_DIM, c.dim)
        self.text_proj = nn.Linear(self.text.dim, c.dim) if c.conditioning in ("prefix", "both") else None
        self.films = (
            nn.ModuleList(FiLM(self.text.dim, c.dim) for _ in range(c.depth)) if c.conditioning != "prefix" else None
        )
        self.queries = nn.Parameter(torch.randn(1, c.chunk_size, c.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(c.dim, c.num_heads) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        out = ACTION_DIM * c.num_bins if c.head == "bins" else ACTION_DIM
        self.action_head = nn.Linear(c.dim, out)

        self.action_norm = MinMaxNormalizer(ACTION_DIM)
        self.state_norm = MinMaxNormalizer(STATE_DIM)
        self.bins = ActionBins(c.num_bins)
        self.encoder.requires_grad_(not c.freeze_encoder)
        self.text.requires_grad_(not c.freeze_text)

    def train(self, mode: bool = True) -> Policy:
        super().train(mode)
        if self.config.freeze_encoder:  # frozen means frozen BatchNorm statistics too
            self.encoder.eval()
        if self.config.freeze_text:
            self.text.eval()
        return self

    def set_stats(self, stats: dict) -> None:
        """Normalisation from a demo set's ``meta["stats"]`` (min/max of ``action`` and ``observation.state``)."""
        self.action_norm.set_stats(stats["action"]["min"], stats["action"]["max"])
        self.state_norm.set_stats(stats["observation.state"]["min"], stats["observation.state"]["max"])

    # -- forward -----------------------------------------------------------------------------------------
    def preprocess(self, images: Tensor) -> Tensor:
        """(B, H, W, 3) uint8 frames -> normalised (B, 3, h, w) float, resized to ``input_size`` if set."""
        s = self.config.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (s, s, 3):
            raise ValueError(
                f"the policy takes frames (B, {s}, {s}, 3) uint8 (image_size={s}), got {tuple(images.shape)}; "
                f"run the world with image_size={s} or build the policy for the world's size"
            )
        x = images.permute(0, 3, 1, 2).float() / 255
        if self.config.input_size is not None and self.config.input_size != s:
            x = F.interpolate(x, size=self.config.input_size, mode="bilinear", antialias=True, align_corners=False)
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, images: Tensor, states: Tensor, tasks: list[str]) -> Tensor:
        """Head outputs for the next ``chunk_size`` steps: logits (B, k, 2, num_bins) or actions (B, k, 2) in [-1, 1]."""
        c, b = self.config, images.shape[0]
        if len(tasks) != b:
            raise ValueError(f"got {len(tasks)} instructions for {b} frames")
        text = self.text(tasks)
        # A frozen encoder needs no graph, unless FiLM inside it trains through it.
        with torch.set_grad_enabled(torch.is_grad_enabled() and (not c.freeze_encoder or len(self.encoder_films) > 0)):
            self._instruction = text.pooled if len(self.encoder_films) else None
            try:
                visual = self.encoder.encode(self.preprocess(images))
            finally:
                self._instruction = None
        tokens = [
            self.state_proj(self.state_norm.normalize(states.float()))[:, None],
            self.pooled_proj(visual.pooled)[:, None],
            self.image_proj(visual.tokens) + self.image_pos,
            self.queries.expand(b, -1, -1),
        ]
        if self.text_proj is not None:
            # Padding positions become zero vectors: the trunk's attention has no mask, and a zero token
            # carries no content (its key is only the bias, shared by all such tokens).
            tokens.insert(0, self.text_proj(text.tokens) * text.mask[..., None])
        x = torch.cat(tokens, dim=1)
        for i, block in enumerate(self.blocks):
            if self.films is not None:
                x = self.films[i](x, text.pooled)
            x = block(x)
        out = self.action_head(self.norm(x[:, -c.chunk_size :]))
        return out.view(b, c.chunk_size, ACTION_DIM, c.num_bins) if c.head == "bins" else out

    def compute_loss(self, batch: dict) -> LossOutput:
        """Behaviour cloning on a batch of :class:`~bridge.vla.demos.DemoDataModule`; padded steps are skipped."""
        k = self.config.chunk_size
        if batch["action"].shape[1] < k:
            raise ValueError(
                f"the data serves {batch['action'].shape[1]} actions per frame but chunk_size={k}; "
                f"set the data module's action_horizon >= {k}"
            )
        expert = batch["action"][:, :k].float()
        target = self.action_norm.normalize(expert)
        valid = ~batch["action_is_pad"][:, :k]  # (B, k)
        out = self(batch["observation.image"], batch["observation.state"], list(batch["task"]))
        weights = valid[..., None].expand_as(target).float()
        if self.config.head == "bins":
            labels = self.bins.encode(target)
            soft = self.bins.soft_targets(labels.flatten(), self.config.bin_sigma)
            ce = F.cross_entropy(out.flatten(0, 2), soft, reduction="none").view_as(weights)
            loss = (ce * weights).sum() / weights.sum().clamp_min(1)
            first = self.bins.decode(out[:, 0].argmax(-1))
            keep = weights.flatten().bool()
            logits, labels = out.flatten(0, 2)[keep], labels.flatten()[keep]
        else:
            loss = ((out - target).abs() * weights).sum() / weights.sum().clamp_min(1)
            first, logits, labels = out[:, 0].clamp(-1, 1), None, None
        return LossOutput(loss, self.action_norm.unnormalize(first), logits, labels)

    @torch.no_grad()
    def predict(self, images: Tensor, states: Tensor, tasks: list[str]) -> Tensor:
        """Actions for the next ``chunk_size`` steps (B, k, 2) in env units, inside the action space."""
        out = self(images, states, tasks)
        actions = self.bins.decode(out.argmax(-1)) if self.config.head == "bins" else out.clamp(-1, 1)
        return self.action_norm.unnormalize(actions).clamp(-1, 1)

    def as_agent(self):
        """This policy as an evaluation agent ``(observations, info) -> actions (n, 2)``.

        Receding horizon: of each predicted chunk only the first action is executed, and the policy is
        queried again on the next frame.
        """

        def act(obs: dict, info: dict) -> np.ndarray:
            device = self.pixel_mean.device
            was_training = self.training
            self.eval()
            images = torch.as_tensor(np.asarray(obs["image"]), device=device)
            states = torch.as_tensor(np.asarray(obs["state"]), device=device)
            actions = self.predict(images, states, list(obs["task"]))[:, 0]
            self.train(was_training)
            return actions.cpu().numpy()

        return act


# -- encoder -----------------------------------------------------------------------------------------------


def build_encoder(c: PolicyConfig) -> ZooModel:
    """The vision encoder with its weights, its classifier removed (``encode`` never uses it)."""
    kwargs = dict(c.encoder_kwargs)
    ckpt = c.pretrained_file is not None and Path(c.pretrained_file).suffix == ".ckpt"
    weights = classifier_checkpoint_weights(c.pretrained_file, c.encoder) if ckpt else c.pretrained_file
    if c.encoder.startswith("timm:"):
        file = None if ckpt else c.pretrained_file
        encoder = create_model(c.encoder, pretrained=c.pretrained, pretrained_file=file, num_classes=0, **kwargs)
        if ckpt:
            import_weights(encoder, weights, drop_head=True)
    else:
        encoder = create_model(c.encoder, **kwargs)
        if weights is not None:
            import_weights(encoder, weights, drop_head=True)
        elif c.pretrained:
            raise ValueError(
                f"bridge's own {c.encoder} has no published weights; set pretrained_file (weights or an "
                f"ImageClassifier .ckpt) or use encoder: timm:{c.encoder}"
            )
    parent, _, child = encoder.head_name.rpartition(".")
    setattr(encoder.get_submodule(parent), child, nn.Identity())
    return encoder


def classifier_checkpoint_weights(path: str, encoder: str) -> dict[str, Tensor]:
    """The ``model.`` weights of an ImageClassifier checkpoint (read with ``weights_only=True``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "state_dict" not in checkpoint or "model" not in hparams:
        raise ValueError(f"{path} is not an ImageClassifier checkpoint (no state_dict with the model's name)")
    if hparams["model"] != encoder:
        raise ValueError(
            f"{path} holds a {hparams['model']} classifier but the policy's encoder is {encoder}; "
            f"set encoder: {hparams['model']} (and its model_kwargs as encoder_kwargs: {hparams.get('model_kwargs') or {}})"
        )
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


def film_sites(encoder: ZooModel) -> list[str]:
    """Modules of the encoder after which FiLM applies: each ResNet stage, each ViT block, each timm feature
    stage (``feature_info``). Other encoders (VGG, AlexNet, LeNet) get none; FiLM then acts in the trunk only."""
    if isinstance(encoder, ResNet):
        return list(encoder.stage_names)
    if isinstance(encoder, VisionTransformer):
        return [f"blocks.{i}" for i in range(len(encoder.blocks))]
    if isinstance(encoder, TimmModel) and hasattr(encoder.model, "feature_info"):
        return ["model." + info["module"] for info in encoder.model.feature_info if info.get("module")]
    return []


def _key(site: str) -> str:
    return site.replace(".", "_")  # ModuleDict keys cannot hold dots


def _encoder_film(policy: Policy, key: str, module: nn.Module, inputs, output: Tensor) -> Tensor | None:
    """Forward hook on an encoder site: FiLM its output by the instruction (a no-op outside Policy.forward)."""
    if policy._instruction is None:
        return None
    return policy.encoder_films[key](output, policy._instruction)


class EncoderProbe(NamedTuple):
    grid: tuple[int, int]  # the token grid (H, W)
    dim: int  # token width
    pooled_dim: int  # the pooled vector's width (wider than the tokens behind a conv head, e.g. MobileNetV3)
    site_channels: list[int]  # channels at each FiLM site


@torch.no_grad()
def probe_encoder(encoder: ZooModel, c: PolicyConfig, sites: list[str]) -> EncoderProbe:
    """One blank frame through the encoder: its token grid and width, its FiLM sites' widths, or a clear size error."""
    side = c.input_size or c.image_size
    shapes: dict[str, torch.Size] = {}
    handles = [
        encoder.get_submodule(site).register_forward_hook(lambda m, i, o, site=site: shapes.__setitem__(site, o.shape))
        for site in sites
    ]
    was_training = encoder.training
    encoder.eval()
    try:
        x = torch.zeros(1, encoder.in_chans, side, side)
        features, out = encoder.forward_features(x), encoder.encode(x)
    except (ValueError, RuntimeError) as err:
        fixed = getattr(encoder, "fixed_input_size", None)
        fix = f"resize the frames (input_size: {fixed[0]})" if fixed else "set input_size to a size it takes"
        raise ValueError(
            f"encoder {c.encoder} cannot take {side}x{side} frames: {err}. Build it for this size "
            f"(encoder_kwargs, e.g. img_size: {side} for a ViT) or {fix}"
        ) from None
    finally:
        encoder.train(was_training)
        for handle in handles:
            handle.remove()
    n, dim = out.tokens.shape[1:]
    if features.ndim == 4:
        grid = tuple(features.shape[-2:])
    else:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"encoder {c.encoder} gives {n} tokens, which do not form a square grid")
        grid = (side, side)
    channels = [shapes[site][1] if len(shapes[site]) == 4 else shapes[site][-1] for site in sites]
    return EncoderProbe(grid, dim, out.pooled.shape[-1], channels)


def _normalisation(encoder: ZooModel, c: PolicyConfig) -> tuple[list[float], list[float]]:
    """Pixel mean and std: the config's, else a pretrained timm model's own, else 0.5 (bridge's data default)."""
    pretrained = c.pretrained or c.pretrained_file is not None
    result = []
    for given, own in ((c.mean, getattr(encoder, "mean", None)), (c.std, getattr(encoder, "std", None))):
        value = given if given is not None else own if pretrained and own is not None else 0.5
        result.append([float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value])
    return result[0], result[1]


def sincos_2d(height: int, width: int, dim: int) -> Tensor:
    """Fixed 2-D sin-cos positions (MAE): half the channels encode the row, half the column. (H*W, dim)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    parts = []
    for pos in (rows.flatten(), cols.flatten()):
        angle = pos.float()[:, None] * omega[None]
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1)

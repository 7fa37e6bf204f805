"""The policy: any zoo or timm encoder + an instruction encoder -> a Residual Transformer trunk -> actions.

Image tokens (``encode()``: the last feature map or the patch tokens, plus the pooled vector; the pooled
vector alone, ``image_tokens="pooled"``; or the pooled vector and the grid's keypoints, ``"keypoints"``) are
projected to the trunk width, grid tokens with fixed 2-D sin-cos positions;
with a frame history each of the last k frames is encoded alone and its tokens carry a learned embedding of
their place in time. The instruction conditions them by FiLM before every trunk block (zero-initialised: the
identity at step 0, as in RT-1) and/or by joining the trunk as a prefix of tokens. ``chunk_size`` learned query
tokens read the actions out, for the next ``chunk_size`` steps: 256 bins per dimension with cross-entropy (RT-1,
OpenVLA), continuous values with L1 (ACT), or, in a world of discrete actions, one of them with cross-entropy.

A policy saves to a folder (``config.json``, ``model.safetensors``, the tokenizer's files) with
``save_pretrained`` and loads from it with ``from_pretrained``, without Lightning (huggingface_hub's
``ModelHubMixin``, as LeRobot's policies do).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import ModelHubMixin, constants
from torch import Tensor, nn
from transformers import PreTrainedTokenizerFast

from bridge.errors import ConfigError, CorruptFileError, MissingFileError
from bridge.models import check_finite, load_file
from bridge.nn import SpatialSoftmax, TransformerBlock
from bridge.nn.film import FiLM
from bridge.nn.positions import sincos_2d
from bridge.vla.policy.actions import ActionBins, MinMaxNormalizer, draw
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.policy.encoder import EncoderFiLM, build_encoder, pixel_normalisation, probe_encoder
from bridge.vla.policy.language import build_text_encoder, wrap_tokenizer
from bridge.vla.worlds import World

TOKENIZER_FILE = "tokenizer.json"


class LossOutput(NamedTuple):
    loss: Tensor
    first_action: Tensor  # predicted first action of the chunk: (B, action_dim) in env units, or (B,) indices
    logits: Tensor | None  # bins, categorical: (M, classes) over the valid (non-padded) targets
    labels: Tensor | None  # bins, categorical: (M,) the expert's bins or actions


class Policy(nn.Module, ModelHubMixin, library_name="bridge", tags=["robotics", "vla"]):
    """Frames (B, H, W, 3) uint8, or (B, k, H, W, 3) with a frame history of k, agent states (B, state_dim) and
    instructions -> actions; see the module docstring.

    Holds its own normalisation (buffers from the demo set's stats), so a checkpoint acts exactly as trained.
    ``tokenizer`` (a saved policy's) replaces the one trained on the world's instructions, and
    ``encoder_weights=False`` skips the encoder's first weights; :meth:`from_pretrained` uses both.
    """

    def __init__(
        self, config: PolicyConfig, tokenizer: PreTrainedTokenizerFast | None = None, encoder_weights: bool = True
    ) -> None:
        super().__init__()
        world = config.make_world()
        self.config = c = config.with_world_sizes(world)
        self.encoder = build_encoder(c, encoder_weights)
        sites = self.encoder.film_sites() if c.conditioning != "prefix" else []
        probe = probe_encoder(self.encoder, c, sites)
        mean, std = pixel_normalisation(self.encoder, c)
        self.register_buffer("pixel_mean", torch.tensor(mean).reshape(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).reshape(-1, 1, 1), persistent=False)

        needs_vocabulary = tokenizer is None and c.text_encoder is None
        vocabulary = world.instructions("train") if needs_vocabulary else ()
        self.text = build_text_encoder(c.text_encoder, vocabulary, c.text_dim, c.text_layers, tokenizer=tokenizer)
        self.encoder_films = EncoderFiLM(self.encoder, sites, probe.site_channels, self.text.dim)

        self.image_proj = nn.Linear(probe.dim, c.dim) if c.image_tokens == "grid" else None
        self.pooled_proj = nn.Linear(probe.pooled_dim, c.dim)
        self.keypoints = (
            SpatialSoftmax(probe.grid, probe.dim, c.num_keypoints) if c.image_tokens == "keypoints" else None
        )
        self.keypoint_proj = nn.Linear(2 * c.num_keypoints, c.dim) if self.keypoints is not None else None
        self.register_buffer("image_pos", sincos_2d(*probe.grid, c.dim), persistent=False)
        # Which of the last k frames a token comes from (a single frame needs no such tag).
        self.frame_pos = nn.Parameter(torch.randn(c.n_obs_steps, c.dim) * 0.02) if c.n_obs_steps > 1 else None
        self.state_proj = nn.Linear(c.state_dim, c.dim) if c.state_dim else None
        self.text_proj = nn.Linear(self.text.dim, c.dim) if c.conditioning in ("prefix", "both") else None
        self.films = (
            nn.ModuleList(FiLM(self.text.dim, c.dim) for _ in range(c.depth)) if c.conditioning != "prefix" else None
        )
        self.queries = nn.Parameter(torch.randn(1, c.chunk_size, c.dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(c.dim, c.num_heads) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        out = c.action_dim * c.num_bins if c.head == "bins" else c.action_dim
        self.action_head = nn.Linear(c.dim, out)

        self.action_norm = MinMaxNormalizer(c.action_dim) if c.head != "categorical" else None
        self.state_norm = MinMaxNormalizer(c.state_dim)
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
        if self.action_norm is not None:  # discrete actions are indices: nothing to normalise
            self.action_norm.set_stats(stats["action"]["min"], stats["action"]["max"])
        if self.config.state_dim:
            self.state_norm.set_stats(stats["observation.state"]["min"], stats["observation.state"]["max"])

    # -- forward -----------------------------------------------------------------------------------------
    def preprocess(self, images: Tensor, distinct: bool = False) -> Tensor:
        """(B, H, W, 3) or, with a history of k, (B, k, H, W, 3) uint8 frames -> normalised (B * k, 3, h, w)
        float, resized to ``input_size`` if set. ``distinct``: the frames are (U, H, W, 3), one per frame."""
        s, k = self.config.image_size, self.config.n_obs_steps
        expected = (s, s, 3) if k == 1 or distinct else (k, s, s, 3)
        if tuple(images.shape[1:]) != expected:
            history = f"the last {k} frames, " if k > 1 and not distinct else ""
            raise ConfigError(
                f"the policy takes {history}frames (B, {', '.join(map(str, expected))}) uint8 (image_size={s}, "
                f"n_obs_steps={k}), got {tuple(images.shape)}; run the world with the policy's image_size and "
                "n_obs_steps, or build the policy for the world's"
            )
        if images.dtype != torch.uint8:  # float frames in [0, 1] would pass for an almost black frame
            fix = (
                "convert frames in [0, 1] with (frames * 255).round().to(torch.uint8)"
                if images.dtype.is_floating_point
                else "convert integer frames of values 0-255 with frames.to(torch.uint8)"
            )
            raise ConfigError(
                f"the policy takes frames as uint8 values 0-255 (float frames in [0, 1] must be converted), got "
                f"{images.dtype}; {fix}"
            )
        x = images.reshape(-1, s, s, 3).permute(0, 3, 1, 2).float() / 255
        if self.config.input_size is not None and self.config.input_size != s:
            x = F.interpolate(x, size=self.config.input_size, mode="bilinear", antialias=True, align_corners=False)
        return (x - self.pixel_mean) / self.pixel_std

    def forward(self, images: Tensor, states: Tensor, tasks: list[str], image_index: Tensor | None = None) -> Tensor:
        """Head outputs for the next ``chunk_size`` steps: logits (B, chunk, action_dim, num_bins), actions
        (B, chunk, action_dim) in [-1, 1], or logits over the discrete actions (B, chunk, action_dim).

        ``image_index`` (B, k): ``images`` are distinct frames (U, H, W, 3) and row ``image_index[i, j]`` of
        them is sample i's j-th frame (a batch by episode, :class:`~bridge.vla.demos.DemoFrames`); each frame
        is then encoded once, however many samples see it.
        """
        c, k = self.config, self.config.n_obs_steps
        b = images.shape[0] if image_index is None else image_index.shape[0]
        if len(tasks) != b:
            raise ConfigError(f"got {len(tasks)} instructions for {b} frames")
        if image_index is not None and tuple(image_index.shape) != (b, k):
            raise ConfigError(f"image_index must be (B, n_obs_steps={k}), got {tuple(image_index.shape)}")
        frames = self.preprocess(images, distinct=image_index is not None)
        if image_index is None:
            image_index = torch.arange(b * k, device=frames.device).view(b, k)  # a sample's k frames are consecutive
        text = self.text(tasks)
        # A frozen encoder needs no graph, unless FiLM inside it trains through it.
        films = len(self.encoder_films) > 0
        cond = None
        if films:  # each frame read under its sample's instruction (a frame belongs to one episode, one instruction)
            owner = torch.arange(b, device=frames.device).repeat_interleave(k)
            owner = owner.new_zeros(len(frames)).scatter_(0, image_index.flatten(), owner)  # no stray index
            cond = text.pooled[owner]
        with (
            torch.set_grad_enabled(torch.is_grad_enabled() and (not c.freeze_encoder or films)),
            self.encoder_films.conditioned(cond),
        ):
            visual = self.encoder.encode(frames)
        pooled = self.pooled_proj(visual.pooled)[image_index]  # (B, k, dim)
        if self.frame_pos is not None:
            pooled = pooled + self.frame_pos
        tokens = [pooled, self.queries.expand(b, -1, -1)]
        if self.keypoints is not None:
            keypoints = self.keypoint_proj(self.keypoints(visual.tokens).flatten(1))[image_index]  # (B, k, dim)
            tokens.insert(1, keypoints if self.frame_pos is None else keypoints + self.frame_pos)
        if self.image_proj is not None:
            image = (self.image_proj(visual.tokens) + self.image_pos)[image_index]  # (B, k, N, dim)
            if self.frame_pos is not None:
                image = image + self.frame_pos[:, None]
            tokens.insert(1, image.flatten(1, 2))
        if self.state_proj is not None:
            tokens.insert(0, self.state_proj(self.state_norm.normalize(states.float()))[:, None])
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
        return out.view(b, c.chunk_size, c.action_dim, c.num_bins) if c.head == "bins" else out

    def compute_loss(self, batch: dict) -> LossOutput:
        """Behaviour cloning on a batch of :class:`~bridge.vla.demos.DemoDataModule`; padded steps are skipped."""
        k = self.config.chunk_size
        if batch["action"].shape[1] < k:
            raise ConfigError(
                f"the data serves {batch['action'].shape[1]} actions per frame but chunk_size={k}; "
                f"set the data module's action_horizon >= {k}"
            )
        valid = ~batch["action_is_pad"][:, :k]  # (B, k)
        images, index = batch["observation.image"], batch.get("observation.image_index")
        out = self(images, batch["observation.state"], list(batch["task"]), index)
        if self.config.head == "categorical":
            labels = batch["action"][:, :k].long()
            ce = F.cross_entropy(out.flatten(0, 1), labels.flatten(), reduction="none").view_as(valid)
            loss = (ce * valid).sum() / valid.sum().clamp_min(1)
            keep = valid.flatten()
            return LossOutput(loss, out[:, 0].argmax(-1), out.flatten(0, 1)[keep], labels.flatten()[keep])
        target = self.action_norm.normalize(batch["action"][:, :k].float())
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
    def predict(
        self, images: Tensor, states: Tensor, tasks: list[str], temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        """Actions for the next ``chunk_size`` steps: (B, k, action_dim) in env units inside the action space, or
        (B, k) action indices in a world of discrete actions.

        ``temperature`` 0 takes the most likely action (bin); above 0 draws it from softmax(logits / temperature),
        with ``generator`` (temperature 1 is the distribution cross-entropy fitted to the expert's actions).
        """
        tasks = self._check_tasks(images, tasks)
        states = self._check_states(states, len(tasks))
        if states.numel() and not torch.isfinite(states).all():  # here, not in forward: no sync per training step
            raise ConfigError("the agent states hold NaN or inf values; pass the world's observation.state as it is")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0: the most likely action), got {temperature}")
        if temperature > 0 and self.config.head == "continuous":
            raise ConfigError(
                "a continuous head predicts one action, with no distribution to draw from; use temperature 0, or "
                "a bins or categorical head"
            )
        out = self(images, states, tasks)
        if self.config.head == "continuous":
            return self.action_norm.unnormalize(out.clamp(-1, 1)).clamp(-1, 1)
        choice = out.argmax(-1) if temperature == 0 else draw(out / temperature, generator)
        if self.config.head == "categorical":
            return choice
        return self.action_norm.unnormalize(self.bins.decode(choice)).clamp(-1, 1)

    def _check_tasks(self, images: Tensor, tasks: Sequence[str] | str) -> list[str]:
        """The instructions as a list, one string per frame; a bare string serves a batch of one."""
        b = len(images) if images.dim() else 0
        if b == 0:
            raise ConfigError(f"got a batch of 0 frames {tuple(images.shape)}; pass at least one frame (B >= 1)")
        if isinstance(tasks, str):
            if b != 1:
                raise ConfigError(
                    f"got one instruction (a str) for {b} frames; pass a list of {b} instructions, one per frame"
                )
            return [tasks]
        if not isinstance(tasks, (list, tuple, np.ndarray)):
            raise ConfigError(f"instructions must be a list of strings, one per frame, got a {type(tasks).__name__}")
        bad = next(((i, t) for i, t in enumerate(tasks) if not isinstance(t, str)), None)
        if bad is not None:
            raise ConfigError(
                f"instructions must be strings, got {bad[1]!r} ({type(bad[1]).__name__}) at index {bad[0]}; "
                "pass one instruction text per frame"
            )
        if len(tasks) != b:
            raise ConfigError(f"got {len(tasks)} instructions for {b} frames; pass one instruction per frame")
        return list(tasks)

    def _check_states(self, states: Tensor | None, b: int) -> Tensor:
        """The agent states as (B, state_dim); a policy without states takes None."""
        d = self.config.state_dim
        if states is None:
            if d:
                raise ConfigError(
                    f"the policy takes agent states (B, state_dim={d}) and got none; pass the world's observation.state"
                )
            return self.pixel_mean.new_zeros(b, 0)
        states = torch.as_tensor(states, device=self.pixel_mean.device)
        if tuple(states.shape) != (b, d):
            raise ConfigError(
                f"the policy takes agent states (B, state_dim) = ({b}, {d}) for {b} frames, got "
                f"{tuple(states.shape)}; pass the world's observation.state, one row per frame"
            )
        return states

    def check_world(self, world: World) -> None:
        """Refuse a world whose actions or frames are not the ones this policy was built for, before any step."""
        c, space = self.config, world.action_space
        ours = ("discrete", c.action_dim) if c.head == "categorical" else ("box", c.action_dim)
        if ours != (space.kind, space.size):

            def describe(kind: str, size: int) -> str:
                return f"{size} discrete actions" if kind == "discrete" else f"a {size}-D continuous box"

            raise ConfigError(
                f"the policy's action space ({describe(*ours)}, trained in {c.world}) is not {world.name}'s "
                f"({describe(space.kind, space.size)}); evaluate it in the world it was trained in ({c.world}), or "
                f"train a policy for {world.name}"
            )
        seen = world.observation
        if (seen.image_size, seen.state_dim, seen.n_obs_steps) != (c.image_size, c.state_dim, c.n_obs_steps):
            raise ConfigError(
                f"the policy takes the last {c.n_obs_steps} frames of {c.image_size}x{c.image_size} and "
                f"{c.state_dim} state values, but {world.name} gives {seen.n_obs_steps} of "
                f"{seen.image_size}x{seen.image_size} and {seen.state_dim}; run the world with the policy's settings "
                f"(--world-options image_size={c.image_size}), or train a policy for these observations"
            )

    def as_agent(self, temperature: float = 0.0, seed: int = 0):
        """This policy as an evaluation agent ``(observations, info) -> actions (n, action_dim)`` (or (n,) indices).

        Receding horizon: of each predicted chunk only the first action is executed, and the policy is
        queried again on the next frame. ``temperature`` as in :meth:`predict`; the draws are seeded by ``seed``,
        so an evaluation gives the same numbers each time it is run.
        """
        generator = torch.Generator(self.pixel_mean.device).manual_seed(seed)

        def act(obs: dict, info: dict) -> np.ndarray:
            device = self.pixel_mean.device
            was_training = self.training
            self.eval()
            images = torch.as_tensor(np.asarray(obs["image"]), device=device)
            states = obs.get("state")
            states = None if states is None else torch.as_tensor(np.asarray(states), device=device)
            actions = self.predict(images, states, obs.get("task"), temperature, generator)[:, 0]
            self.train(was_training)
            return actions.cpu().numpy()

        return act

    # -- folders on disk ---------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """Write the policy's folder (see :meth:`_save_pretrained`); a file in the way is refused first."""
        path = Path(save_directory)
        blocking = next((p for p in (path, *path.parents) if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise ConfigError(
                f"{blocking} exists and is not a folder, so the policy folder {path} cannot be written there; "
                "choose another folder (created if missing)"
            )
        return super().save_pretrained(save_directory, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> Policy:
        """The policy saved in a local folder or a hub repository (fetched, or read from the local cache when
        offline); its ``config.json`` is read and checked before anything is built."""
        folder = _policy_folder(
            pretrained_model_name_or_path,
            **{k: kwargs[k] for k in ("revision", "cache_dir", "force_download", "local_files_only", "token")
               if k in kwargs},
        )  # fmt: skip
        kwargs.setdefault("config", read_config(folder))
        return super().from_pretrained(folder, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        """``config.json`` (the resolved configuration), ``model.safetensors`` and, for a tokenizer trained
        here, its files (``AutoTokenizer.from_pretrained(folder)`` reads them too)."""
        from safetensors.torch import save_model

        (save_directory / constants.CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2))
        save_model(self, str(save_directory / constants.SAFETENSORS_SINGLE_FILE))
        if self.text.trained_tokenizer:
            self.text.tokenizer.save_pretrained(str(save_directory))

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: PolicyConfig | dict,
        map_location: str | torch.device = "cpu",
        **kwargs,
    ) -> Policy:
        folder = _policy_folder(model_id, revision, cache_dir, force_download, local_files_only, token)
        if not isinstance(config, PolicyConfig):
            config = PolicyConfig.from_dict(config, folder / constants.CONFIG_NAME)
        tokenizer = None
        if config.text_encoder is None:
            file = folder / TOKENIZER_FILE
            if not file.is_file():
                raise MissingFileError(f"{folder} has no {TOKENIZER_FILE}; save the policy again with save_pretrained")
            try:  # tokenizers reports a damaged file as a bare Exception; JSON says where it breaks
                text = file.read_text()
                json.loads(text)
            except ValueError as err:
                raise CorruptFileError(
                    f"{file} is not valid JSON ({err}): it is truncated or damaged; save the policy again with "
                    "save_pretrained"
                ) from None
            tokenizer = wrap_tokenizer(text)
        policy = cls(config, tokenizer=tokenizer, encoder_weights=False)
        weights = folder / constants.SAFETENSORS_SINGLE_FILE
        return policy.load_weights(load_file(weights), weights).to(map_location).eval()

    def load_weights(self, state: dict[str, Tensor], source: str | Path) -> Policy:
        """Load a full state dict strictly; tensors of another architecture name the file they came from."""
        try:
            self.load_state_dict(state)
        except RuntimeError as err:  # missing, unexpected or mis-shaped tensors
            raise CorruptFileError(f"the weights in {source} do not fit its own policy configuration: {err}") from None
        check_finite(state, source)
        return self


def _policy_folder(
    name: str | os.PathLike, revision: str | None = None, cache_dir: str | Path | None = None,
    force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None,
) -> Path:  # fmt: skip
    """The local folder of a saved policy: ``name`` itself, or a hub repository fetched (or read from the cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    folder = Path(name)
    if folder.is_dir():
        return folder
    if folder.exists():
        inside = (
            f" (it is the policy folder {folder.parent}'s own {folder.name})"
            if (folder.parent / constants.CONFIG_NAME).is_file()
            else ""
        )
        raise ConfigError(
            f"{folder} is a file, not a policy folder{inside}; pass the folder save_pretrained wrote (config.json, "
            "model.safetensors), or a VLA run's checkpoint to load_policy"
        )
    try:
        return Path(snapshot_download(
            str(name), revision=revision, cache_dir=cache_dir, force_download=force_download,
            local_files_only=local_files_only, token=token,
        ))  # fmt: skip
    except HFValidationError:
        reason = "there is no such folder, and it is no hub id (org/name) either"
    except (LocalEntryNotFoundError, HfHubHTTPError) as err:
        reason = str(err).splitlines()[0]
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE") or constants.HF_HUB_OFFLINE
    raise MissingFileError(
        f"{name} is neither a local folder nor a policy on the Hugging Face hub that could be reached"
        f"{' (offline: HF_HUB_OFFLINE=1)' if offline else ''}: {reason}. Pass the folder save_pretrained wrote, or "
        "a hub id (online, or already in the local Hugging Face cache)"
    )


def read_config(folder: Path) -> PolicyConfig:
    """A saved policy's ``config.json``, checked: present, JSON, a mapping, known settings of the right types."""
    file = folder / constants.CONFIG_NAME
    fix = "save the policy again with save_pretrained (or vla export)"
    if not file.is_file():
        raise MissingFileError(
            f"{folder} is a folder without {constants.CONFIG_NAME}, not a saved policy; pass a folder written by "
            "Policy.save_pretrained or a VLA run's checkpoint (runs/<name>/checkpoints/*.ckpt)"
        )
    if not file.read_bytes().strip():
        raise CorruptFileError(f"{file} is empty: its saving was cut off; {fix}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise CorruptFileError(f"{file} is not JSON ({err}): it is damaged; {fix}") from None
    return PolicyConfig.from_dict(data, file)

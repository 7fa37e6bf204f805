"""The policy's configuration: plain data, importable without torch (LeRobot keeps its configs apart the same way)."""

from __future__ import annotations

import difflib
import types
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from bridge.errors import ConfigError, CorruptFileError
from bridge.vla.worlds import World, get_world

HEADS = ("bins", "continuous", "categorical")
ImageTokens = Literal["grid", "pooled", "keypoints"]  # how a frame joins the trunk (PolicyConfig.image_tokens)


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
    Actions: in a world of continuous actions, ``head="bins"`` classifies each dimension into ``num_bins``
    bins, against one-hot targets (``bin_sigma=0``, RT-1) or Gaussians of ``bin_sigma`` bins (HL-Gauss), and
    ``head="continuous"`` regresses them with L1; in a world of discrete actions ``head="categorical"`` picks
    one of its ``action_dim`` actions. None is the world's kind: bins or categorical. Every head predicts
    ``chunk_size`` steps ahead (ACT's chunks).
    World: ``world`` names the world the policy acts in; its vocabulary trains the tokenizer, and
    ``action_dim`` / ``state_dim`` (None: the world's) size the head and the state input (for discrete
    actions ``action_dim`` is their number). ``n_obs_steps`` (None: the world's) is how many of the last
    frames the policy sees; each frame is encoded alone and its tokens tagged with its place in time.
    ``image_tokens``: each frame joins the trunk as its pooled vector and its grid of tokens (``grid``), as
    its pooled vector alone (``pooled``: BabyAI's max-pooled FiLM-CNN, a trunk of k + 1 tokens), or as its pooled
    vector and one token of ``num_keypoints`` expected positions on its grid (``keypoints``: the spatial softmax of
    robomimic and Diffusion Policy; where things are, for a trunk of 2k + 1 tokens). ``world_options``
    records the world's settings the policy was trained in (``fit`` fills it from the demo set), so that a
    saved policy is evaluated in the same world.
    """

    world: str = "reach"
    world_options: dict[str, Any] = field(default_factory=dict)
    action_dim: int | None = None
    state_dim: int | None = None
    n_obs_steps: int | None = None

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
    image_tokens: ImageTokens = "grid"
    num_keypoints: int = 32
    dim: int = 128
    depth: int = 2
    num_heads: int = 4
    head: Literal["bins", "continuous", "categorical"] | None = None
    num_bins: int = 256
    bin_sigma: float = 0.0
    chunk_size: int = 1

    def __post_init__(self) -> None:
        # Types first: a saved config.json is plain JSON, and a wrong type fails far from here otherwise.
        for name, hint in _HINTS.items():
            value = getattr(self, name)
            if not _fits(value, hint):
                raise ConfigError(
                    f"policy setting {name} must be {_describe(hint)}, got {value!r} ({type(value).__name__})"
                )
        if self.image_tokens not in get_args(ImageTokens):
            raise ConfigError(f"image_tokens must be grid, pooled or keypoints, got {self.image_tokens!r}")
        if self.conditioning not in ("film", "prefix", "both"):
            raise ConfigError(f"conditioning must be film, prefix or both, got {self.conditioning!r}")
        if self.head not in (None, *HEADS):
            raise ConfigError(f"head must be one of {', '.join(HEADS)} (or None: the world's kind), got {self.head!r}")
        if self.chunk_size < 1 or self.depth < 1 or self.num_keypoints < 1:
            raise ConfigError("chunk_size, depth and num_keypoints must be >= 1")
        if self.n_obs_steps is not None and self.n_obs_steps < 1:
            raise ConfigError(f"n_obs_steps must be 1 or more (frames the policy sees), got {self.n_obs_steps}")
        if self.dim % 4:
            raise ConfigError(f"dim must be a multiple of 4 (2-D sin-cos positions), got {self.dim}")

    @classmethod
    def from_dict(cls, data: object, source: object = "the policy configuration") -> PolicyConfig:
        """A configuration from plain data (a ``config.json``, a checkpoint's ``policy_config``), each key and
        type checked; ``source`` names where it came from in the errors."""
        fix = "fix it, or save the policy again with this bridge (Policy.save_pretrained, or vla export)"
        if not isinstance(data, dict):
            raise CorruptFileError(
                f"{source} holds a {type(data).__name__}, not a mapping of policy settings (a JSON object); {fix}"
            )
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if unknown:
            close = {k: difflib.get_close_matches(k, _FIELDS, n=1) for k in unknown}
            named = ", ".join(f"{k} (did you mean {c[0]}?)" if c else k for k, c in close.items())
            raise ConfigError(f"{source} has unknown policy settings: {named}; {fix}")
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}; {fix}") from None

    def make_world(self) -> World:
        """The world this policy acts in, with its recorded options."""
        return get_world(self.world, **self.world_options)

    def with_world_sizes(self, world: World | None = None) -> PolicyConfig:
        """This configuration with the sizes and head left to the world (None) read from it, and checked against it.
        ``world`` is :meth:`make_world`'s, when the caller has it already."""
        world = world or self.make_world()
        actions, observation = world.action_space, world.observation
        head = self.head or ("categorical" if actions.kind == "discrete" else "bins")
        if (head == "categorical") != (actions.kind == "discrete"):
            fix = "categorical" if actions.kind == "discrete" else "bins or continuous"
            raise ConfigError(
                f"world {world.name} has {actions.kind} actions, which head {head!r} cannot take; set head: {fix}"
            )
        return replace(
            self,
            head=head,
            action_dim=actions.size if self.action_dim is None else self.action_dim,
            state_dim=observation.state_dim if self.state_dim is None else self.state_dim,
            n_obs_steps=observation.n_obs_steps if self.n_obs_steps is None else self.n_obs_steps,
        )


# Fields that only say where the first weights come from, what trains, how the loss is shaped, or which world
# and settings the sizes came from; any other difference means the tensors belong to another architecture.
NON_ARCHITECTURE_FIELDS = frozenset(
    {"pretrained", "pretrained_file", "freeze_encoder", "freeze_text", "bin_sigma", "world", "world_options"}
)


def config_mismatch(saved: dict, current: dict) -> list[str]:
    """``key: saved -> current`` for every architecture field that differs (empty when compatible).

    Sizes left to the world (None) are read from it first, so a configuration that leaves them to the world
    compares equal to a saved one, which records them.
    """
    names = [f.name for f in fields(PolicyConfig) if f.name not in NON_ARCHITECTURE_FIELDS]
    saved, current = (asdict(PolicyConfig(**{n: v for n, v in d.items() if n in _FIELDS}).with_world_sizes())
                      for d in (saved, current))  # fmt: skip
    return [f"{n}: {saved[n]!r} in the checkpoint, {current[n]!r} here" for n in names if saved[n] != current[n]]


_FIELDS = frozenset(f.name for f in fields(PolicyConfig))
_HINTS = get_type_hints(PolicyConfig)


def _fits(value: object, hint: object) -> bool:
    """Whether ``value`` is of the annotated type (JSON's kinds: lists for sequences, int for float)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(value, bool):  # bool is an int to Python, never a size or a rate here
        return hint is bool
    return isinstance(value, (int, float)) if hint is float else isinstance(value, hint)


def _describe(hint: object) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return " or ".join(map(repr, args))
    if hint is type(None):
        return "null"
    if origin is list:
        return "a list of " + {float: "numbers", int: "integers", str: "strings"}.get(args[0], "values")
    return {dict: "a mapping", int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        origin or hint, str(hint)
    )

"""Vision-language-action, by role: ``worlds`` (the World type, its registry, agents, rollouts, one file per
world), ``demos`` (format, collection, frames, the DataModule), ``policy`` (configuration / modeling),
``evaluation`` (closed loop, videos, results, comparisons), ``training`` (the LightningModule) and ``commands``
(``python -m bridge vla``).

Importing this package is light (no torch, no simulator): ``Policy`` and the LightningModule load on first use.
"""

from bridge.lazy import lazy_attributes
from bridge.vla.policy.configuration import PolicyConfig
from bridge.vla.worlds import ActionSpace, ObservationSpec, World, get_world, list_worlds, register_world

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "Policy": "bridge.vla.policy.modeling",
        "load_policy": "bridge.vla.policy.loading",
        "DemoDataModule": "bridge.vla.demos.datamodule",
        "VLAPolicy": "bridge.vla.training",
        "EvalResult": "bridge.vla.evaluation.result",
    },
)

__all__ = ["ActionSpace", "ObservationSpec", "PolicyConfig", "World", "get_world", "list_worlds", "register_world",
           "Policy", "load_policy", "DemoDataModule", "VLAPolicy", "EvalResult"]  # fmt: skip

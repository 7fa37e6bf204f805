"""The policy, as a configuration / modeling pair (LeRobot's): ``PolicyConfig`` is plain data importable without
torch, ``Policy`` the module (loaded on first use); beside them the encoder adapter, the language side, action
tokens and the loader."""

from bridge.lazy import lazy_attributes
from bridge.vla.policy.configuration import PolicyConfig

__getattr__, __dir__ = lazy_attributes(
    __name__, {"Policy": "bridge.vla.policy.modeling", "load_policy": "bridge.vla.policy.loading"}
)

__all__ = ["Policy", "PolicyConfig", "load_policy"]

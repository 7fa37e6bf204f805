"""Vision-language-action: worlds (a registry; ``reach``), rollouts and agents, expert demonstrations,
language, the policy (config / encoder adapter / model), closed-loop evaluation, and the ``vla`` command.

Importing this package is light (no torch, no simulator): a world's module loads when it is first asked for.
"""

from bridge.vla.spaces import ActionSpace, ObservationSpec
from bridge.vla.world import World
from bridge.vla.worlds import get_world, list_worlds, register_world

__all__ = ["ActionSpace", "ObservationSpec", "World", "get_world", "list_worlds", "register_world"]

"""The toy VLA world: ``bridge/Reach-v0``, expert demonstrations, language, the policy, closed-loop evaluation.

Importing this package registers ``bridge/Reach-v0`` with gymnasium.
"""

from bridge.vla.env import ENV_ID, ReachConfig, ReachEnv, instructions, make_vec, register

register()

__all__ = ["ENV_ID", "ReachConfig", "ReachEnv", "instructions", "make_vec", "register"]

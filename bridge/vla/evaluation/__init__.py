"""Closed-loop evaluation: a policy against its world's expert and random actions on the same episodes, its
videos, the one result type and the comparison of arms of results."""

from bridge.vla.evaluation.closed_loop import CONDITIONS, evaluate

__all__ = ["CONDITIONS", "evaluate"]

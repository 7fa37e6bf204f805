"""LightningModules and callbacks: the training side of bridge."""

from bridge.lit.callbacks import LastCheckpoint, LogCheckpointPaths
from bridge.lit.classifier import ImageClassifier, NonFiniteLossError
from bridge.lit.finetuning import BackboneFreeze

__all__ = ["BackboneFreeze", "ImageClassifier", "LastCheckpoint", "LogCheckpointPaths", "NonFiniteLossError"]

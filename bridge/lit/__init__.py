"""LightningModules and callbacks: the training side of bridge."""

from bridge.lit.callbacks import LogBestCheckpoint
from bridge.lit.classifier import ImageClassifier, NonFiniteLossError
from bridge.lit.finetuning import BackboneFreeze

__all__ = ["BackboneFreeze", "ImageClassifier", "LogBestCheckpoint", "NonFiniteLossError"]

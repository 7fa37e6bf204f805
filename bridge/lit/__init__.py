"""LightningModules and callbacks: the training side of bridge."""

from bridge.lit.callbacks import LastCheckpoint, LogCheckpointPaths
from bridge.lit.classifier import ImageClassifier, NonFiniteLossError
from bridge.lit.finetuning import BackboneFreeze
from bridge.lit.gradient_monitor import GradientFlowMonitor

__all__ = [
    "BackboneFreeze",
    "GradientFlowMonitor",
    "ImageClassifier",
    "LastCheckpoint",
    "LogCheckpointPaths",
    "NonFiniteLossError",
]

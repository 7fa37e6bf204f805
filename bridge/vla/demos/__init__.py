"""Demonstrations: the demo set's format on disk, collection from a world's expert, frames and sampler, and the
LightningDataModule that serves them."""

from bridge.vla.demos.collect import collect_demos
from bridge.vla.demos.datamodule import DemoDataModule
from bridge.vla.demos.format import DEMOS, load_demos, save_demos
from bridge.vla.demos.frames import DemoFrames, EpisodeOrder, decode_frames

__all__ = ["DEMOS", "DemoDataModule", "DemoFrames", "EpisodeOrder", "collect_demos", "decode_frames", "load_demos",
           "save_demos"]  # fmt: skip

"""Videos of rolled-out episodes: a grid of tiles, each captioned with what the agent was told and framed green
on success, red on failure."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bridge.errors import ConfigError
from bridge.vla.worlds.rollout import Episode


def write_video(episodes: Sequence[Episode], path: str | Path, fps: int = 5, scale: int = 4, columns: int = 4) -> Path:
    """Tile the recorded ``episodes`` side by side, each captioned with what the agent was told and
    framed green on success, red on failure; write a GIF or MP4 (by ``path``'s suffix)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix not in (".gif", ".mp4"):
        raise ConfigError(f"video path must end in .gif or .mp4, got {path.name}")
    recorded = [ep for ep in episodes if ep.frames]
    if not recorded:
        raise ConfigError("no recorded frames; pass record=N to evaluate/rollouts")
    length = max(len(ep.frames) for ep in recorded)
    tiles = [_tiles(ep, length, scale) for ep in recorded]
    if len(tiles) > columns:  # fill the last row of the grid with black tiles
        tiles += [[np.zeros_like(tiles[0][0])] * length] * (-len(tiles) % columns)
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    frames = [
        np.concatenate([np.concatenate([tile[t] for tile in row], axis=1) for row in rows], axis=0)
        for t in range(length)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    else:
        # H.264 wants even sides; pad by one pixel where needed.
        frames = [np.pad(f, ((0, f.shape[0] % 2), (0, f.shape[1] % 2), (0, 0))) for f in frames]
        iio.imwrite(path, np.stack(frames), fps=fps)  # imageio-ffmpeg's bundled ffmpeg, H.264
    return path


def _tiles(ep: Episode, length: int, scale: int) -> list[np.ndarray]:
    """Captioned, bordered, upscaled frames of one episode, padded to ``length`` with its last frame."""
    from PIL import Image, ImageDraw

    border = (0, 200, 0) if ep.success else (200, 0, 0)
    caption = ep.given if ep.given else "(blank instruction)"
    out = []
    for t in range(length):
        frame = ep.frames[min(t, len(ep.frames) - 1)]
        big = np.kron(frame, np.ones((scale, scale, 1), dtype=np.uint8))  # nearest-neighbour, no blur
        h, w = big.shape[:2]
        done = t >= len(ep.frames) - 1
        canvas = Image.new("RGB", (w + 4, h + 18), border if done else (60, 60, 60))
        canvas.paste(Image.fromarray(big), (2, 2))
        ImageDraw.Draw(canvas).text((3, h + 4), caption[: w // 6], fill=(255, 255, 255))
        out.append(np.asarray(canvas))
    return out

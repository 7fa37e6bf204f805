"""Coloured geometric shapes drawn onto numpy RGB canvases.

The ``shapes`` dataset and the VLA world both draw with :func:`draw_shape`, so a backbone pretrained
on ``shapes`` sees the objects of the world exactly as it learned them.

Coordinates are in pixels, x to the right and y down; pixel ``(col, row)`` covers ``[col, col + 1)``,
so its centre is ``(col + 0.5, row + 0.5)`` and a shape centred at ``(32, 32)`` on a 64x64 canvas is
symmetric. A pixel is painted when its centre lies inside the shape (no anti-aliasing).
"""

from __future__ import annotations

import numpy as np

from bridge.errors import ConfigError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
}
BACKGROUND: tuple[int, int, int] = (0, 0, 0)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Label order is colour-major: "red circle" = 0, "red square" = 1, ..., "yellow triangle" = 11.
CLASSES: tuple[tuple[str, str], ...] = tuple((colour, shape) for colour in COLOURS for shape in SHAPES)
CLASS_NAMES: tuple[str, ...] = tuple(f"{colour} {shape}" for colour, shape in CLASSES)


def shape_mask(shape: str, center_xy: tuple[float, float], radius: float, height: int, width: int) -> np.ndarray:
    """Boolean (height, width) mask of ``shape``; parts outside the canvas are clipped.

    Every shape fills the square box of side ``2 * radius`` around the centre: the circle is inscribed,
    the square is the box, the triangle stands on the box's bottom edge with its apex at the top centre.
    So for the same radius: triangle (2 r^2) < circle (pi r^2) < square (4 r^2) pixels.
    """
    if shape not in SHAPES:
        raise ConfigError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    cx, cy = center_xy
    dx = np.arange(width) + 0.5 - cx
    dy = (np.arange(height) + 0.5 - cy)[:, None]
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return (np.abs(dx) <= radius) & (np.abs(dy) <= radius)
    # Triangle: half-width grows linearly from 0 at the apex (dy = -r) to r at the base (dy = +r).
    return (np.abs(dy) <= radius) & (np.abs(dx) <= (dy + radius) / 2)


def draw_shape(
    canvas: np.ndarray,
    shape: str,
    colour: str | tuple[int, int, int],
    center_xy: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Paint ``shape`` in ``colour`` (a name in :data:`COLOURS` or an RGB triple) onto ``canvas`` in place.

    ``canvas`` is an (H, W, 3) uint8 array; it is returned so calls can be chained.
    """
    if canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ConfigError(f"canvas must be an (H, W, 3) RGB array, got shape {canvas.shape}")
    if isinstance(colour, str):
        if colour not in COLOURS:
            raise ConfigError(f"unknown colour {colour!r}; expected one of {', '.join(COLOURS)} or an RGB triple")
        colour = COLOURS[colour]
    canvas[shape_mask(shape, center_xy, radius, canvas.shape[0], canvas.shape[1])] = colour
    return canvas

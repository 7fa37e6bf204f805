"""argparse types that check a number as it is parsed, so a bad value stops the command before any work.

``p.add_argument("--samples", type=positive_int)``: ``--samples 0`` ends with the usage line and
``argument --samples: must be 1 or more, got 0`` (exit 2), the way argparse reports any malformed argument.
"""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """An integer >= 1 (a count, a size)."""
    return _integer(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (a count that may be none)."""
    return _integer(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate); nan and inf are refused."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a noise scale); nan and inf are refused."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return value


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, {minimum} or more, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value

"""User errors: a bad input or setting, reported as one line that names the problem and the fix.

The command line catches :class:`BridgeError` alone, so a bug elsewhere keeps its traceback. Each subclass
also derives from the built-in exception it refines, so ``except ValueError`` keeps working for callers.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error whose message tells the user what to change."""


class ConfigError(BridgeError, ValueError):
    """A setting or argument is out of range, of the wrong kind, or inconsistent with another."""


class MissingFileError(BridgeError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class CorruptFileError(BridgeError, ValueError):
    """A file exists but cannot be read as what it should be (truncated, empty, wrong format, unsafe pickle)."""


class UnknownNameError(BridgeError, KeyError):
    """A registry has no entry of that name (a model, a world, a recipe); the message lists close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""

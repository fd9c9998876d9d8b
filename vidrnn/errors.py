"""Exceptions raised for bad user input.

Every error names the file or argument at fault, what was expected and what was found.
They subclass the built-in exception a user would catch anyway (``ValueError``), so
``except ValueError`` keeps working.
"""

from __future__ import annotations


class VidrnnError(Exception):
    """Base class of vidrnn's own errors."""


class VideoDecodeError(VidrnnError, ValueError):
    """A file could not be decoded as a video (not a video, truncated, corrupt, no frames).

    Attributes:
        path: the file at fault.
    """

    def __init__(self, path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


class CheckpointError(VidrnnError, ValueError):
    """A checkpoint is missing what vidrnn needs, or does not fit the model/classes asked for."""


class ConfigError(VidrnnError, ValueError):
    """A configuration file or command-line override is invalid."""


class DataError(VidrnnError, ValueError):
    """A data file is empty, too short, or not in the expected encoding or format; or text
    holds characters outside a model's vocabulary."""

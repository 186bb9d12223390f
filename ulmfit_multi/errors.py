"""Errors users must react to. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class UlmfitError(Exception):
    """Base class for errors that are the user's input, not a bug."""


class RecipeError(UlmfitError):
    """A recipe or language spec is invalid: names the file and the key."""


class DataError(UlmfitError):
    """An input file is missing, corrupt or malformed: names the file and the line or byte offset."""


class FetchError(DataError):
    """A file could not be found in the mirror, the data root or at its URL."""


class StageError(UlmfitError):
    """A stage cannot run, e.g. its inputs were never produced."""

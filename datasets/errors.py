"""Errors of the dataset layer; each message names the file or folder and says how to fix it.

``train.py`` prints these as one line without a traceback (they are user errors, not bugs).
"""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder, annotation file or image is missing; the message says what and where to look."""


class MissingImagesError(DatasetNotFoundError):
    """A split or few-shot file lists images that are not on disk."""


class DatasetFileError(ValueError):
    """A split, few-shot or list file exists but cannot be used (truncated, invalid, unexpected content)."""


class ValidationSplitError(RuntimeError):
    """No split can be used for model selection: val is the test set and no held-out val can be drawn."""

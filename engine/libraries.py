"""Third-party calls made quiet where the libraries warn about their own internals.

The oldest torch and open_clip this project supports print deprecation warnings a user cannot act on: torch
< 2.2's weights-only loader uses ``TypedStorage`` internally, and open_clip < 3 imports ``timm.models.layers``.
They would reach the console of every run (and break one-line error messages), so they are filtered here, at
the call, never globally.
"""
import warnings

import torch


def torch_load(path: str, **kwargs):
    """``torch.load`` without torch 2.1's internal ``TypedStorage`` deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)
        return torch.load(path, **kwargs)


def import_open_clip():
    """The ``open_clip`` module, without open_clip < 3's ``timm.models.layers`` deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Importing from timm.models.layers is deprecated",
                                category=FutureWarning)
        import open_clip
    return open_clip

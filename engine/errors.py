"""Errors with messages meant for users; shared by both engine sides."""


class EngineUnavailableError(RuntimeError):
    """The requested engine cannot run here; the message says what to do."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or made for another run."""


class CorruptImageError(RuntimeError):
    """An image file exists but cannot be decoded."""


class RunInterrupted(RuntimeError):
    """SIGINT/SIGTERM stopped a training run; its state was saved and the same command continues it."""

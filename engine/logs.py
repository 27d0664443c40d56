"""``setup_logger``: the project's logging, identical under both engines.

Every module logs through ``logging``; one call sends records to the console and to
``<output>/log.txt``. A record logged with ``extra={"file_only": True}`` (the merged config, the
environment) goes to ``log.txt`` only, so the console stays readable.

Dassl's own code reports through ``print``; under the Dassl engine its setup redirected only stdout,
and every ``logging`` line of ours was lost. Here ``print`` output is also copied into ``log.txt``
(``tee_prints=True``), so a Dassl run's log holds both.
"""
import logging
import os
import sys
from typing import Optional

_MARK = "_taskres_handler"


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


class _PrintTee:
    """A stdout stand-in that writes to the console and appends to the log file."""

    def __init__(self, console, log_stream):
        self.console = console
        self.log_stream = log_stream

    def write(self, text: str) -> int:
        self.console.write(text)
        if self.log_stream is not None and not self.log_stream.closed:
            self.log_stream.write(text)
            self.log_stream.flush()
        return len(text)

    def flush(self) -> None:
        self.console.flush()

    def __getattr__(self, name):  # isatty, encoding, fileno, ... as the console has them
        return getattr(self.console, name)


def _console_stream():
    out = sys.stdout
    while isinstance(out, _PrintTee):
        out = out.console
    return out


def setup_logger(output: Optional[str] = None, tee_prints: bool = False) -> Optional[str]:
    """Log to the console and, when ``output`` is given, append to ``output/log.txt`` (or ``output``
    itself if it ends in .txt/.log). Calling it again replaces our handlers (one log per run in a
    process). Returns the log file's path.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    # Dassl (dassl/data/datasets/dg/wilds/wilds_base.py) calls logging.disable(WARNING) on import, which
    # silenced every INFO line of ours under the Dassl engine.
    logging.disable(logging.NOTSET)
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()
    console_stream = _console_stream()
    sys.stdout = console_stream
    console = logging.StreamHandler(console_stream)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(_ConsoleFilter())
    setattr(console, _MARK, True)
    root.addHandler(console)
    if not output:
        return None
    fpath = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
    os.makedirs(os.path.dirname(os.path.abspath(fpath)), exist_ok=True)
    file_handler = logging.FileHandler(fpath, mode="a")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    setattr(file_handler, _MARK, True)
    root.addHandler(file_handler)
    if tee_prints:
        sys.stdout = _PrintTee(console_stream, file_handler.stream)
    return fpath

"""``setup_logger`` and ``progress_bar``: the project's console and log file, identical under both engines.

Which records reach the console, the switches (``TASKRES_VERBOSE``, ``TASKRES_PROGRESS``), the bars and
why ``print`` output is teed into log.txt under Dassl: docs/console.md.
"""
import logging
import os
import sys
from typing import Optional

from tqdm import tqdm

_MARK = "_taskres_handler"
VERBOSE_ENV = "TASKRES_VERBOSE"
PROGRESS_ENV = "TASKRES_PROGRESS"
# Packages whose INFO records are details for log.txt (the layers below train.py).
LIBRARY_PACKAGES = ("engine", "datasets", "features", "trainers", "bookkeeping")


def _env_flag(name: str) -> Optional[bool]:
    """``name`` read as a switch: "1"/"0" (also true/false, yes/no, on/off); None when unset or empty."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={os.environ[name]!r} is not a switch; set it to 1 or 0")


class _ConsoleHandler(logging.StreamHandler):
    """Writes through ``tqdm.write``: an open progress bar is cleared, the record printed, the bar redrawn."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def progress_bar(total: Optional[int], desc: str, unit: str = "it", leave: bool = False, **kwargs) -> tqdm:
    """A tqdm bar on stderr, or a disabled one (every method still callable) when bars are off."""
    enabled = _env_flag(PROGRESS_ENV)
    if enabled is None:
        enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, **kwargs)


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


def setup_logger(output: Optional[str] = None, tee_prints: bool = False) -> Optional[str]:
    """Console (filtered: docs/console.md) and, with ``output``, every record appended to ``output/log.txt``
    (or ``output`` itself if it ends in .txt/.log). A second call replaces our handlers (one log per run)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    # Dassl (dassl/data/datasets/dg/wilds/wilds_base.py) calls logging.disable(WARNING) on import, which
    # silenced every INFO line of ours under the Dassl engine.
    logging.disable(logging.NOTSET)
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()
    console_stream = sys.stdout
    while isinstance(console_stream, _PrintTee):  # an earlier call's tee
        console_stream = console_stream.console
    sys.stdout = console_stream
    console = _ConsoleHandler(console_stream)
    console.setFormatter(logging.Formatter("%(message)s"))
    verbose = bool(_env_flag(VERBOSE_ENV))

    def shown(record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        if verbose or record.levelno >= logging.WARNING or getattr(record, "console", False):
            return True
        return record.name.split(".", 1)[0] not in LIBRARY_PACKAGES

    console.addFilter(shown)
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

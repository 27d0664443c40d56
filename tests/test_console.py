"""The console (engine/logs.py, docs/console.md): a header, a bar and the result; every detail in log.txt."""
import io
import logging
import os
import re
import subprocess
import sys

import pytest

from engine import logs
from tests.conftest import train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def restore_logging(monkeypatch):
    """setup_logger replaces the root handlers and sys.stdout; put both back for the next test."""
    root = logging.getLogger()
    handlers, level, stdout = list(root.handlers), root.level, sys.stdout
    monkeypatch.delenv(logs.VERBOSE_ENV, raising=False)
    monkeypatch.delenv(logs.PROGRESS_ENV, raising=False)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    sys.stdout = stdout


def _log_one_of_each():
    logging.getLogger("train").info("[run] header")
    logging.getLogger("engine.loop").info("epoch [1/2] batch [1/1] loss 1.0")
    logging.getLogger("trainers.taskres").info("a detail of the method")
    logging.getLogger("datasets.fewshot").warning("a warning from a library")
    logging.getLogger("engine.loop").info("Resuming from x", extra={"console": True})
    logging.getLogger("train").info("the config", extra={"file_only": True})


@pytest.mark.parametrize("verbose", ["", "1"])
def test_console_shows_entry_points_and_warnings_and_the_log_has_everything(tmp_path, monkeypatch, restore_logging,
                                                                         capsys, verbose):
    monkeypatch.setenv(logs.VERBOSE_ENV, verbose)
    path = logs.setup_logger(str(tmp_path))
    _log_one_of_each()
    console = capsys.readouterr().out.splitlines()
    details = ["epoch [1/2] batch [1/1] loss 1.0", "a detail of the method"]
    expected = ["[run] header", *details, "a warning from a library", "Resuming from x"]
    assert console == (expected if verbose else [line for line in expected if line not in details])
    log = open(path).read()
    for line in [*expected, "the config"]:
        assert line in log


def test_a_bad_switch_is_named(monkeypatch, restore_logging):
    monkeypatch.setenv(logs.VERBOSE_ENV, "loud")
    with pytest.raises(ValueError, match="TASKRES_VERBOSE='loud' is not a switch; set it to 1 or 0"):
        logs.setup_logger(None)


def test_bars_only_on_a_terminal_or_when_asked(monkeypatch, restore_logging):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert logs.progress_bar(3, "x").disable  # a pipe or a file: no bar
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert not logs.progress_bar(3, "x").disable
    monkeypatch.setenv(logs.PROGRESS_ENV, "0")
    assert logs.progress_bar(3, "x").disable
    monkeypatch.setenv(logs.PROGRESS_ENV, "1")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not logs.progress_bar(3, "x").disable


def test_records_printed_under_an_open_bar_keep_their_own_lines(monkeypatch, restore_logging):
    """Console and bar on one terminal: each record is printed whole on a line of its own, and the bar is
    drawn again after it (tqdm.write lifts the bar)."""
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setenv(logs.PROGRESS_ENV, "1")
    logs.setup_logger(None)
    bar = logs.progress_bar(4, "TaskRes", unit="epoch", mininterval=0)
    for epoch in range(4):
        bar.update(1)
        logging.getLogger("train").warning("record %d", epoch)
    bar.close()
    rows = re.split(r"[\r\n]", screen.getvalue())
    assert [row for row in rows if row.startswith("record")] == [f"record {i}" for i in range(4)]
    assert all(row.startswith(("record", "TaskRes:")) or not row.strip() for row in rows)
    assert any(row.startswith("TaskRes: 100%") and "4/4" in row for row in rows)


@pytest.mark.slow
def test_a_run_prints_a_few_lines_and_logs_every_batch(data_root, tiny_clip, tmp_path):
    epochs = 3

    def run(out, **env):
        argv = train_args(data_root, tiny_clip, str(tmp_path / out), epochs=epochs)  # 16 images, batches of 8
        proc = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=600, env=dict(os.environ, TASKRES_ENGINE="builtin", **env))
        assert proc.returncode == 0, proc.stderr[-3000:]
        log = (tmp_path / out / "log.txt").read_text()
        batches = re.findall(r"epoch \[(\d)/3\] batch \[(\d)/2\]", log)
        assert batches == [(str(e), str(b)) for e in range(1, epochs + 1) for b in (1, 2)]
        return proc

    quiet = run("quiet", TASKRES_PROGRESS="1")
    lines = quiet.stdout.splitlines()
    assert len(lines) <= 6, lines  # [run], modified run, notes (e.g. fast mode), Result, the wall time by phase
    assert lines[0].startswith("[run] TaskRes") and lines[-2].startswith("Result: ")
    assert lines[-1].startswith("Wall time") and "extraction" in lines[-1]
    assert re.search(r"TaskRes: 100%.*3/3 .*loss [\d.]+ acc [\d.]+", quiet.stderr)  # the bar, forced on

    verbose = run("verbose", TASKRES_VERBOSE="1", TASKRES_PROGRESS="0")
    assert verbose.stderr == ""
    assert len(re.findall(r"epoch \[\d/3\] batch \[\d/2\]", verbose.stdout)) == 2 * epochs

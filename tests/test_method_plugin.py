"""A method added from ONE file outside the repository (``TASKRES_METHODS``) runs through the generic launcher
(``scripts/method/main.sh``, recipe from the file), ``train.py`` and the report, and is named there by the display
name the file declares: no edit to trainers/, tools/names.py or recipes.py. The file is the documentation's
example, ``examples/my_probe.py`` (docs/add-a-method.md). A wrong declaration in a plugin stops every command
with one line naming the file."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "my_probe.py")


def plugin_env(folder, **extra) -> dict:
    env = dict(os.environ, TASKRES_ENGINE="builtin", TASKRES_METHODS="my_probe",
               PYTHONPATH=os.pathsep.join([str(folder), REPO, os.environ.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


@pytest.mark.slow
def test_the_example_method_runs_through_launcher_train_and_report(data_root, tiny_clip, tmp_path):
    out = tmp_path / "output"
    env = plugin_env(os.path.dirname(EXAMPLE), DATA=data_root, BACKBONE=tiny_clip, OUTPUT=str(out),
                     PYTHON=sys.executable, SEEDS="1", EXTRA_OPTS="DATALOADER.NUM_WORKERS 0")
    env.pop("INPUT_SIZE", None)
    run = subprocess.run(["bash", "scripts/method/main.sh", "MyProbe", "caltech101", "4"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    runs = [os.path.join(d, "metrics.json") for d, _, files in os.walk(out / "caltech101" / "MyProbe")
            if "metrics.json" in files]
    assert len(runs) == 1, runs
    with open(runs[0]) as f:
        metrics = json.load(f)
    # The recipe the file declares, unmodified (the run is the recipe's run, in the recipe's folder).
    assert metrics["method"] == "MyProbe" and metrics["epochs"] == 20 and metrics["modified"] in ({}, None, [])
    report = subprocess.run([sys.executable, "-m", "tools.report", str(out), "--out", str(tmp_path / "R.md")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "R.md").read_text()
    assert "My probe" in text, text


def test_a_bad_plugin_path_is_one_clear_error(tmp_path):
    env = dict(os.environ, TASKRES_METHODS="no_such_module_xyz", PYTHONPATH=REPO)
    run = subprocess.run([sys.executable, "-c", "import trainers"], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "TASKRES_METHODS names 'no_such_module_xyz'" in run.stderr


@pytest.mark.parametrize("old,new,message", [
    # a misspelt MethodSpec field
    ('label="My probe"', 'lable="My probe"', "unknown MethodSpec field(s): lable (did you mean label?)"),
    # (a leftover UPPER_CASE class attribute fails the same way: tests/test_seam_declarations.py)
    # a registered trainer without its own declaration
    ("    SPEC = declare(", "    spec = declare(", "the registered trainer MyProbe declares no SPEC of its own"),
])
def test_a_wrong_declaration_in_a_plugin_is_one_line_naming_its_file(tmp_path, old, new, message):
    with open(EXAMPLE) as f:
        source = f.read()
    assert old in source
    (tmp_path / "my_probe.py").write_text(source.replace(old, new))
    run = subprocess.run([sys.executable, "train.py", "--root", str(tmp_path), "--trainer", "MyProbe"], cwd=REPO,
                         env=plugin_env(tmp_path), capture_output=True, text=True, timeout=300)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert lines[-1].startswith(f"error: {tmp_path / 'my_probe.py'}: ") and message in lines[-1], lines[-1]

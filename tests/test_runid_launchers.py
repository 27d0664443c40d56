"""Run identity through the real launchers and train.py: an override is a new run (never a skip), the
trailing KEY VALUE pairs win over every launcher default, two launches of one run end with one run, and a
failed run is marked and rerun."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import train
from bookkeeping.folders import FAILED_FILE, backbone_tag
from tests.conftest import train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = "DATALOADER.NUM_WORKERS 0 DATALOADER.TRAIN_X.BATCH_SIZE 8 FEATURE_CACHE.NUM_VIEWS 2 TRAINER.TaskRes.PREC fp32"


def _env(data, clip, out, **extra):
    env = dict(os.environ, DATA=str(data), BACKBONE=clip, OUTPUT=str(out), PYTHON=sys.executable, SEEDS="1",
               EPOCHS="2", TASKRES_ENGINE="builtin", EXTRA_OPTS=SMALL)
    env.pop("INPUT_SIZE", None)
    env.update(extra)
    return env


def _launch(args, env, **kw):
    return subprocess.Popen(["bash", "scripts/taskres/main.sh", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _bash(args, env):
    proc = _launch(args, env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


@pytest.mark.slow
def test_an_override_is_a_new_run_and_trailing_pairs_win(data_root, tiny_clip, tmp_path):
    env = _env(data_root, tiny_clip, tmp_path)
    size = ["OPTIM.MAX_EPOCH", "1"]  # after the launcher's EPOCHS=2: it must win
    first = _bash(["caltech101", "1", *size], env)
    assert "[run]" in first and "[skip]" not in first
    runs = tmp_path / "caltech101" / "TaskRes"
    [group] = list(runs.iterdir())
    m1 = _metrics(group / "seed1")
    # A checkpoint file runs at the side it was trained at (32 px here): that is the recipe, not a change.
    assert "INPUT.SIZE" not in m1["modified"] and m1["epochs"] == 1
    assert m1["modified"]["OPTIM.MAX_EPOCH"] == ["100", "1"]
    assert "TRAINER.TaskRes.RESIDUAL_SCALE" not in m1["modified"]

    # The README's own example: another alpha is another run, in its own folder, never the old number.
    second = _bash(["caltech101", "1", *size, "TRAINER.TaskRes.RESIDUAL_SCALE", "1.0"], env)
    assert "[skip]" not in second and "[run]" in second
    [new] = [g for g in runs.iterdir() if g != group]
    m2 = _metrics(new / "seed1")
    assert m2["modified"]["TRAINER.TaskRes.RESIDUAL_SCALE"] == ["0.5", "1.0"]
    assert m2["fingerprint"] != m1["fingerprint"] and new.name == group.name[:-8] + m2["variant"]
    assert m2["extra"]["residual_scale"] == 1.0

    # The same request again is reused, not rerun.
    again = _bash(["caltech101", "1", *size, "TRAINER.TaskRes.RESIDUAL_SCALE", "1.0"], env)
    assert "[skip]" in again and "[run]" not in again and f"{m2['accuracy']:.2f}%" in again

    # A folder holding a finished run of another config (here: edited behind the launcher's back, and judged
    # by its config.yaml as a run from before identities were recorded) stops the request with one line.
    run = group / "seed1"
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("RESIDUAL_SCALE: 0.5", "RESIDUAL_SCALE: 0.7"))
    metrics = _metrics(run)
    metrics.pop("fingerprint"), metrics.pop("schema")  # as a run from before identities: judged by its config.yaml
    (run / "metrics.json").write_text(json.dumps(metrics))
    proc = _launch(["caltech101", "1", *size], env)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2
    [line] = err.strip().splitlines()
    assert line.startswith("error: ") and str(run) in line and "RESIDUAL_SCALE" in line


@pytest.mark.slow
def test_two_concurrent_launches_of_one_run_end_with_one_run(data_root, tiny_clip, tmp_path):
    env = _env(data_root, tiny_clip, tmp_path)
    args = ["caltech101", "2", "INPUT.SIZE", "(32, 32)"]
    procs = [_launch(args, env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    stdout = "".join(o for o, _ in outs)
    assert stdout.count("Result: ") == 1 and stdout.count("[skip]") == 1
    [run] = list((tmp_path / "caltech101" / "TaskRes").glob("*/seed1"))
    log = (run / "log.txt").read_text()
    assert log.count("Evaluate on the *test* set") == 1
    assert len(os.listdir(run / "tensorboard")) == 1
    assert not os.path.exists(run / ".lock")


@pytest.mark.slow
def test_a_failed_run_is_marked_failed_and_runs_again(data_root, tiny_clip, tmp_path):
    root = tmp_path / "data"  # no dataset there yet: the run fails while reading it
    root.mkdir()
    argv = train_args(str(root), tiny_clip, str(tmp_path / "runs" / "tiny_1shots" / "seed1"), shots=1,
                      extra=["--reuse"])
    with pytest.raises(SystemExit):
        train.main(argv)
    [folder] = list((tmp_path / "runs").iterdir())  # tiny_1shots_<hex>: the test's settings modify the recipe
    run = folder / "seed1"
    assert (run / FAILED_FILE).is_file() and not (run / "metrics.json").exists()
    assert "caltech-101" in (run / FAILED_FILE).read_text()
    shutil.copytree(os.path.join(data_root, "caltech-101"), root / "caltech-101")
    result = train.main(argv)
    assert "reused" not in result and (run / "metrics.json").is_file() and not (run / FAILED_FILE).exists()
    assert train.main(argv)["reused"] is True


@pytest.mark.slow
def test_console_is_quiet_and_workers_fit_the_machine(data_root, tiny_clip, tmp_path):
    argv = train_args(data_root, tiny_clip, str(tmp_path / "run"), shots=1)
    argv[argv.index("DATALOADER.NUM_WORKERS") + 1] = "64"
    proc = subprocess.run([sys.executable, "train.py", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TASKRES_ENGINE="builtin"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    log = (tmp_path / "run" / "log.txt").read_text()
    # The config and the environment go to the log and config.yaml, not the console.
    assert "OPTIM:" in log and "OPTIM:" not in console and "Environment" not in console
    assert "[run] TaskRes" in console and "Result: " in console and "metrics.json" in console
    cpus = len(os.sched_getaffinity(0))
    assert f"NUM_WORKERS: {min(64, cpus)}" in (tmp_path / "run" / "config.yaml").read_text()
    assert "worker processes" not in console  # torch's "DataLoader will create N worker processes" warning


def test_recipe_cli_prints_one_pasteable_command_and_the_launchers_format(tiny_clip):
    import shlex

    from bookkeeping.recipes import recipe_argv

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bookkeeping", "recipe", *args], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout

    line = cli("TaskRes", "imagenet", "16")
    [command] = line.splitlines()
    words = shlex.split(command)
    assert words[:2] == ["python", "train.py"] and words[-len(recipe_argv("TaskRes", "imagenet", 16, "RN50")):] \
        == recipe_argv("TaskRes", "imagenet", 16, "RN50")
    assert words[words.index("OPTIM.LR") + 1] == "0.0002" and words[words.index("INPUT.SIZE") + 1] == "(224, 224)"
    tag, *argv = cli("--argv", "TaskRes", "imagenet", "16", "--epochs", "3").splitlines()
    assert tag == "rn50_16shots" and argv == recipe_argv("TaskRes", "imagenet", 16, "RN50") + ["OPTIM.MAX_EPOCH", "3"]
    # A checkpoint file runs at the image side it was trained at (the tiny CLIP's 32 px), as its recipe.
    tag, *argv = cli("--argv", "TaskRes", "imagenet", "16", "--backbone", tiny_clip).splitlines()
    assert tag == "tiny_vit_16shots" and argv[-1] == "(32, 32)" and backbone_tag(tiny_clip) == "tiny_vit"


def test_a_misspelt_key_is_one_line_naming_the_launchers_variables(data_root, tiny_clip, tmp_path):
    env = _env(data_root, tiny_clip, tmp_path)
    proc = subprocess.run(["bash", "scripts/taskres/main.sh", "caltech101", "1", "OPTIM.MAX_EPOCHS", "3"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line == "error: Unknown config key OPTIM.MAX_EPOCHS (did you mean OPTIM.MAX_EPOCH?)"



def test_messages_name_the_launchers_variables_under_a_launcher(monkeypatch):
    from bookkeeping.config import LAUNCHER_ENV, in_user_terms

    message = "trained with backbone RN101; pass --backbone RN101. Datasets root '' is not a folder; pass --root (see X)"
    assert in_user_terms(message) == message
    monkeypatch.setenv(LAUNCHER_ENV, "1")
    assert in_user_terms(message) == ("trained with backbone RN101; pass BACKBONE=RN101. Datasets root '' is not a "
                                      "folder; pass DATA (see X)")

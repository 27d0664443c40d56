"""Check the project against a real Dassl: every trainer trains, evaluates and resumes identically under
``TASKRES_ENGINE=dassl`` and ``TASKRES_ENGINE=builtin``, and the launchers run under Dassl.

Run by ``scripts/check_dassl.sh`` (which installs that Dassl in a venv), on a synthetic Caltech101 tree and a tiny
random CLIP written to a scratch folder; prints one line per check and exits 1 when any check fails.
"""
import argparse
import glob
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import trainers  # noqa: E402  (from the repository root put on the path above)

logger = logging.getLogger("check_dassl")

TRAINERS = tuple(trainers.declared_methods())  # every method, the plugins named in TASKRES_METHODS included
ENGINES = ("dassl", "builtin")


def make_fixtures(root: str) -> str:
    from tests.fixtures.synthetic_datasets import write_dataset
    from trainers.random_clip import write_random_clip

    write_dataset("Caltech101", root, num_classes=4, per_class=20, image_size=32)
    return write_random_clip(os.path.join(root, "tiny-vit.pt"), kind="vit")


def config_file(trainer: str) -> str:
    path = os.path.join("configs", "trainers", trainer, "rn50.yaml")
    return path if os.path.isfile(os.path.join(REPO, path)) else "configs/trainers/TaskRes/rn50.yaml"


def train_cmd(root: str, clip: str, out: str, trainer: str, epochs: int, extra=(), opts=()) -> list:
    return [sys.executable, "train.py", "--root", root, "--output-dir", out, "--seed", "1", "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/caltech101.yaml", "--config-file", config_file(trainer),
            "--backbone", clip, "--cache-dir", os.path.join(os.path.dirname(out), "cache"), *extra,
            "DATASET.NUM_SHOTS", "4", "OPTIM.MAX_EPOCH", str(epochs), "INPUT.SIZE", "(32, 32)",
            "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "16",
            "TRAIN.PRINT_FREQ", "100", *opts]


def run(cmd, engine: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, TASKRES_ENGINE=engine), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:8])} ... failed under {engine}:\n{proc.stderr[-3000:]}")
    return proc


def trained_tensors(out: str) -> dict:
    """Every tensor of every checkpoint a run wrote, by relative path and key."""
    tensors = {}
    for path in sorted(glob.glob(os.path.join(out, "**", "*.pth.tar*"), recursive=True)):
        if os.path.basename(path).startswith("resume"):
            continue
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        for key, value in (ckpt.get("state_dict") or {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"{os.path.relpath(path, out)}:{key}"] = value
    return tensors


def accuracy(out: str) -> float:
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)["accuracy"]


class Checks(list):
    """The failed checks."""

    def expect(self, ok: bool, what: str) -> None:
        logger.info("[%s] %s", "ok" if ok else "FAIL", what)
        if not ok:
            self.append(what)


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def same_run(a: str, b: str) -> bool:
    """The runs in folders ``a`` and ``b`` saved bit-identical tensors and reached the same accuracy."""
    return same_tensors(trained_tensors(a), trained_tensors(b)) and accuracy(a) == accuracy(b)


def check_trainers(checks: Checks, root: str, clip: str, scratch: str, epochs: int, trainers=TRAINERS) -> None:
    for trainer in trainers:
        for cache in ("cache", "no-cache") if trainer in ("TaskRes", "CoOp", "TipAdapterF") else ("cache",):
            extra = ["--no-cache"] if cache == "no-cache" else []
            outs = {engine: os.path.join(scratch, engine, f"{trainer}-{cache}") for engine in ENGINES}
            for engine, out in outs.items():
                run(train_cmd(root, clip, out, trainer, epochs, extra), engine)
            with open(os.path.join(outs["dassl"], "log.txt")) as f:
                engine_line = next((line.strip() for line in f if "Engine:" in line), "")
            checks.expect("Engine: dassl" in engine_line, f"{trainer} ({cache}): log.txt says 'Engine: dassl' under Dassl")
            accs = {e: accuracy(o) for e, o in outs.items()}
            checks.expect(accs["dassl"] == accs["builtin"], f"{trainer} ({cache}): accuracy equal {accs}")
            t_dassl, t_builtin = trained_tensors(outs["dassl"]), trained_tensors(outs["builtin"])
            checks.expect(same_tensors(t_dassl, t_builtin),
                          f"{trainer} ({cache}): {len(t_dassl)} saved tensors bit-identical across engines")
            if cache == "cache" and t_dassl:
                check_eval_only(checks, root, clip, outs, trainer, epochs)


def check_eval_only(checks: Checks, root: str, clip: str, outs: dict, trainer: str, epochs: int) -> None:
    """``--eval-only --model-dir RUN`` under Dassl (no ``--load-epoch``: the model the run reported, its last
    epoch or its val-selected model-best) gives the trained run's accuracy exactly."""
    for engine, model_dir in outs.items():
        out = model_dir + f"-eval-{engine}"
        try:
            run(train_cmd(root, clip, out, trainer, epochs, ["--eval-only", "--model-dir", model_dir]), "dassl")
            acc = accuracy(out)
        except (RuntimeError, OSError) as err:
            checks.expect(False, f"{trainer}: --eval-only under Dassl on the {engine} run: {err}")
            continue
        checks.expect(acc == accuracy(model_dir),
                      f"{trainer}: --eval-only under Dassl on the {engine} run gives {acc} (trained: {accuracy(model_dir)})")


def interrupt_once_saved(cmd: list, out: str, env: dict, timeout: float = 600) -> tuple:
    """Run ``cmd`` (a train.py command writing to ``out``) and SIGINT it once its resume state exists, as a
    user's Ctrl-C. Returns (it stopped as it should: exit 130 with the one-line hint, "exit N: <last line>")."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    resume_file = os.path.join(out, "resume.pth.tar")
    deadline = time.time() + timeout
    try:
        while proc.poll() is None and not os.path.isfile(resume_file) and time.time() < deadline:
            time.sleep(0.05)
        interrupted = proc.poll() is None
        if interrupted:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=max(10.0, deadline - time.time()))
    finally:  # out of time, or the caller's own budget expired: never leave the run behind
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ok = interrupted and proc.returncode == 130 and "run the same command to continue" in err
    return ok, f"exit {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}"


def check_resume(checks: Checks, root: str, clip: str, scratch: str, epochs: int) -> None:
    """SIGINT a Dassl run once its resume state exists; the same command must end where an
    uninterrupted run ends (weights and accuracy), with the schedule continuing."""
    for extra in ([], ["--no-cache"]):
        tag = "no-cache" if extra else "cache"
        whole = os.path.join(scratch, "resume", f"whole-{tag}")
        run(train_cmd(root, clip, whole, "TaskRes", epochs, extra, ["OPTIM.LR", "0.05"]), "dassl")
        out = os.path.join(scratch, "resume", f"interrupted-{tag}")
        cmd = train_cmd(root, clip, out, "TaskRes", epochs, extra, ["OPTIM.LR", "0.05", "TRAIN.RESUME_SAVE_S", "0"])
        ok, line = interrupt_once_saved(cmd, out, dict(os.environ, TASKRES_ENGINE="dassl"))
        checks.expect(ok, f"resume ({tag}): SIGINT under Dassl stops with one line ({line})")
        run(cmd, "dassl")
        checks.expect(same_run(whole, out),
                      f"resume ({tag}): interrupted + resumed run equals the uninterrupted one "
                      f"({accuracy(out)} vs {accuracy(whole)})")


def check_launchers(checks: Checks, root: str, clip: str, scratch: str) -> None:
    accs = {}
    for engine in ENGINES:
        env = dict(os.environ, TASKRES_ENGINE=engine, DATA=root, OUTPUT=os.path.join(scratch, f"launch-{engine}"),
                   SEEDS="1", BACKBONE=clip, INPUT_SIZE="32", PYTHON=sys.executable)
        for script in sorted(glob.glob(os.path.join(REPO, "scripts", "*", "main.sh"))):
            name = os.path.basename(os.path.dirname(script))
            if name in ("reproduce", "method"):  # the grid; the generic launcher (needs a TRAINER argument)
                continue
            proc = subprocess.run(["bash", script, "caltech101", "2", "OPTIM.MAX_EPOCH", "2",
                                   "DATALOADER.NUM_WORKERS", "0"], cwd=REPO, env=env, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines()[::-1] if "mean accuracy" in x), "")
            accs.setdefault(name, {})[engine] = line.split("mean accuracy")[-1].split("%")[0].strip() if line else None
            if proc.returncode != 0:
                checks.expect(False, f"scripts/{name}/main.sh under {engine}: exit {proc.returncode}: "
                                     f"{proc.stderr.strip()[-500:]}")
    for name, by_engine in accs.items():
        checks.expect(by_engine.get("dassl") is not None and by_engine.get("dassl") == by_engine.get("builtin"),
                      f"scripts/{name}/main.sh: mean accuracy under dassl/builtin {by_engine}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--scratch", default="", help="work folder (default: a new temporary folder)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["trainers", "resume", "launchers"])
    parser.add_argument("--trainers", nargs="*", default=list(TRAINERS), help="trainers to check (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import dassl

    logger.info("Dassl %s from %s; torch %s", getattr(dassl, "__version__", "?"), os.path.dirname(dassl.__file__),
                torch.__version__)
    scratch = args.scratch or tempfile.mkdtemp(prefix="check_dassl-")
    root = os.path.join(scratch, "data")
    clip = make_fixtures(root)
    logging.disable(logging.NOTSET)  # importing Dassl (its wilds reader) disabled INFO logging
    checks = Checks()
    if "trainers" not in args.skip:
        check_trainers(checks, root, clip, scratch, args.epochs, args.trainers)
    if "resume" not in args.skip:
        check_resume(checks, root, clip, scratch, 200)  # long enough to be interrupted mid-run
    if "launchers" not in args.skip:
        check_launchers(checks, root, clip, scratch)
    if checks:
        logger.error("%d check(s) failed:\n  %s", len(checks), "\n  ".join(checks))
        return 1
    logger.info("All checks passed (%s)", scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())

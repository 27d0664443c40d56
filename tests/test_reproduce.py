"""Reproduction tooling: the grid driver (scripts/reproduce) and the result tools (tools/) on a small grid.

The grid is ZeroshotCLIP + TaskRes × Caltech101 + DTD × 1/2 shots × seeds 1/2 with the tiny CLIP,
run through submitit's DebugExecutor; later tests rerun it (nothing runs), break it (a deleted
result, a dataset missing on disk) through the local worker pool and submitit's LocalExecutor, and
aggregate it into the report.
"""
import csv
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys

import pytest

import trainers
from bookkeeping import folders
from bookkeeping.recipes import RecipeError, get_recipe
from scripts.reproduce import grid
from scripts.reproduce.execution import OUTPUT_FILE, make_submitit_executor, pool_slots
from tests.fixtures.synthetic_datasets import write_dataset
from tools import names
from tools.aggregate import collect
from tools.published import load_published
from tools.report import build_report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What train_args() in conftest uses for the tiny CLIP, plus a learning rate that moves the residual in 2 epochs.
TINY = ["DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "16",
        "FEATURE_CACHE.NUM_VIEWS", "2", "TRAIN.PRINT_FREQ", "100", "OPTIM.LR", "0.1"]
METHODS, DATASETS, SHOTS, SEEDS = ["ZeroshotCLIP", "TaskRes"], ["caltech101", "dtd"], [1, 2], [1, 2]
LABELS = {"ZeroshotCLIP": "Zero-shot CLIP", "TaskRes": "TaskRes"}


def _grid_argv(data, out, clip, *more, methods=METHODS, datasets=DATASETS, shots=SHOTS, seeds=SEEDS):
    return ["--methods", *methods, "--datasets", *datasets, "--shots", *map(str, shots), "--seeds", *map(str, seeds),
            "--backbone", clip, "--data", str(data), "--output", str(out), "--epochs", "2", "--input-size", "32",
            *more, "--", *TINY]


def _metrics_files(out):
    found = []
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames[:] = [d for d in dirnames if d != "feature_cache"]
        found += [os.path.join(dirpath, f) for f in filenames if f == "metrics.json"]
    return sorted(found)


@pytest.fixture(scope="module")
def tree(tmp_path_factory, tiny_clip):
    """Synthetic data, and the small grid run once with submitit's DebugExecutor."""
    data = tmp_path_factory.mktemp("grid-data")
    write_dataset("Caltech101", str(data), num_classes=4, per_class=10)
    write_dataset("DescribableTextures", str(data), num_classes=4, per_class=10)
    out = tmp_path_factory.mktemp("grid-out")
    report = grid.main(_grid_argv(data, out, tiny_clip, "--executor", "debug"))
    return {"data": data, "out": out, "clip": tiny_clip, "report": report}


def _tag(clip):
    return names.backbone_tag(clip)  # tiny-vit.pt -> tiny_vit


def _folder(parent, tag):
    """The one run-group folder ``tag`` or ``tag_<8 hex>`` (a modified run) under ``parent``."""
    [found] = [p for p in parent.iterdir() if p.name == tag or (p.name.startswith(tag + "_") and
                                                                  len(p.name) == len(tag) + 9)]
    return found


# ---- the driver ---------------------------------------------------------------------------------
def test_dry_run_prints_every_run_and_runs_nothing(tmp_path, tiny_clip, capsys):
    out = tmp_path / "out"
    report = grid.main(_grid_argv(tmp_path, out, tiny_clip, "--dry-run"))
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[run]")]
    # Zero-shot runs once per dataset; TaskRes once per dataset × shots × seed.
    assert len(printed) == len(report.planned) == 2 + 2 * 2 * 2
    assert not out.exists()
    taskres = [line for line in printed if "--trainer TaskRes" in line and "caltech101.yaml" in line]
    assert len(taskres) == 4
    assert all("configs/trainers/TaskRes/rn50.yaml" in line and "TRAINER.TaskRes.RESIDUAL_SCALE 0.5" in line
               and "OPTIM.MAX_EPOCH 2" in line for line in taskres)
    assert any(f"caltech101/TaskRes/{_tag(tiny_clip)}_2shots/seed2" in line for line in taskres)


@pytest.mark.slow
def test_grid_runs_every_cell_in_the_launchers_layout(tree):
    report, out, tag = tree["report"], tree["out"], _tag(tree["clip"])
    assert len(report.ran) == 10 and not report.failed and not report.skipped
    for d in DATASETS:
        zs = json.loads((_folder(out / d / "ZeroshotCLIP", f"{tag}_zeroshot") / "seed1" / "metrics.json").read_text())
        assert zs["epochs"] is None  # zero-shot trains nothing
        for k in SHOTS:
            for s in SEEDS:
                run = _folder(out / d / "TaskRes", f"{tag}_{k}shots") / f"seed{s}"
                metrics = json.loads((run / "metrics.json").read_text())
                assert (metrics["method"], metrics["shots"], metrics["seed"], metrics["epochs"]) == ("TaskRes", k, s, 2)
                # --epochs and the trailing pairs modify the recipe: a suffixed folder, recorded as such.
                assert metrics["recipe"] is False and run.parent.name.endswith(metrics["variant"])
                assert metrics["modified"]["OPTIM.MAX_EPOCH"] == ["100", "2"]
                assert metrics["dataset"] == names.dataset_name(d)
                # The recipe reached train.py; the trailing overrides came last and won.
                config = (run / "config.yaml").read_text()
                assert "RESIDUAL_SCALE: 0.5" in config and "LR: 0.1" in config


@pytest.mark.slow
def test_rerun_skips_finished_cells(tree):
    before = {p: os.stat(p).st_mtime_ns for p in _metrics_files(tree["out"])}
    report = grid.main(_grid_argv(tree["data"], tree["out"], tree["clip"], "--executor", "debug"))
    assert report.ran == [] and len(report.skipped) == 10
    assert {p: os.stat(p).st_mtime_ns for p in _metrics_files(tree["out"])} == before


@pytest.mark.slow
def test_pool_reruns_a_lost_result_and_reports_a_failure(tree, tiny_clip):
    """Local worker pool (train.py subprocesses): a deleted metrics.json is run again; a dataset whose images are
    gone (its folders and split file are there, so the pre-flight passes) fails its cell without stopping the
    other, and the failure names its log."""
    write_dataset("EuroSAT", str(tree["data"]), num_classes=4, per_class=10)
    for dirpath, _, files in os.walk(tree["data"] / "eurosat" / "2750"):
        for f in files:
            os.remove(os.path.join(dirpath, f))
    lost = _folder(tree["out"] / "caltech101" / "TaskRes", f"{_tag(tiny_clip)}_1shots") / "seed1" / "metrics.json"
    lost.unlink()
    report = grid.main(_grid_argv(tree["data"], tree["out"], tiny_clip, "--workers", "2", methods=["TaskRes"],
                                  datasets=["caltech101", "eurosat"], shots=[1], seeds=[1]))
    assert [r.cell.dataset for r in report.ran if r.ok] == ["caltech101"] and lost.is_file()
    [failed] = report.failed
    assert failed.cell.dataset == "eurosat" and failed.error.startswith("exit ")
    output = os.path.join(failed.cell.out_dir, OUTPUT_FILE)
    assert output in failed.logs and "images" in open(output).read().lower()


@pytest.mark.slow
def test_preflight_stops_a_grid_before_any_run(tree, tiny_clip, tmp_path, caplog):
    """A dataset folder that is not there: the grid lists the problem, with the fix, and runs nothing."""
    out = tmp_path / "out"
    with caplog.at_level("INFO"), pytest.raises(SystemExit) as stop:
        grid.main(_grid_argv(tree["data"], out, tiny_clip, methods=["ZeroshotCLIP"], datasets=["caltech101", "ucf101"]))
    assert stop.value.code == 1 and not (out / "caltech101").exists()
    [line] = [r.getMessage() for r in caplog.records if "ucf101" in r.getMessage()]
    assert f"dataset folder {tree['data'] / 'ucf101'} is missing" in line and "leave ucf101 out of --datasets" in line


@pytest.mark.slow
def test_submitit_local_executor_runs_a_cell(tree, tiny_clip):
    lost = _folder(tree["out"] / "dtd" / "ZeroshotCLIP", f"{_tag(tiny_clip)}_zeroshot") / "seed1" / "metrics.json"
    accuracy = json.loads(lost.read_text())["accuracy"]
    lost.unlink()
    report = grid.main(_grid_argv(tree["data"], tree["out"], tiny_clip, "--executor", "local", "--timeout-min", "5",
                                  methods=["ZeroshotCLIP"], datasets=["dtd"]))
    assert [(r.ok, r.accuracy) for r in report.ran] == [(True, accuracy)]


@pytest.mark.slow
def test_eval_variants_evaluates_finished_imagenet_runs(tmp_path, tiny_clip):
    data, out = tmp_path / "data", tmp_path / "out"
    write_dataset("ImageNet", str(data), num_classes=4, per_class=6)
    write_dataset("ImageNetV2", str(data), num_classes=4, per_class=3)
    trained = grid.main(_grid_argv(data, out, tiny_clip, "--executor", "debug", methods=["TaskRes"],
                                   datasets=["imagenet"], shots=[1], seeds=[1]))
    assert not trained.failed
    report = grid.main(_grid_argv(data, out, tiny_clip, "--executor", "debug", "--eval-variants", "--variants",
                                  "imagenetv2", methods=["TaskRes"], shots=[1], seeds=[1, 2]))
    [result] = report.ran
    run = _folder(out / "imagenet" / "TaskRes", f"{_tag(tiny_clip)}_1shots") / "seed1"
    assert result.ok and result.cell.out_dir == str(run / "eval_imagenetv2")
    argv = list(result.cell.argv)
    assert argv[argv.index("--load-epoch") + 1] == "2" and argv[argv.index("--model-dir") + 1] == str(run)
    assert json.loads((run / "eval_imagenetv2" / "metrics.json").read_text())["dataset"] == "ImageNetV2"
    assert report.blocked == [str(run.parent / "seed2")]  # no trained seed-2 run to evaluate
    rows = collect(str(out)).rows
    assert sorted((r.dataset, r.kind) for r in rows) == [("ImageNet", "run"), ("ImageNetV2", "eval")]


def test_missing_method_config_is_a_clear_error_when_planning(monkeypatch, tmp_path):
    cls = trainers.declared_methods()["TaskRes"]
    monkeypatch.setattr(cls, "SPEC", dataclasses.replace(trainers.method_spec("TaskRes"),
                                                         recipe_config="configs/trainers/TaskRes/nope.yaml"),
                        raising=False)
    with pytest.raises(SystemExit, match="TaskRes/nope.yaml does not exist"):
        grid.main(["--methods", "TaskRes", "--dry-run", "--output", str(tmp_path)])
    with pytest.raises(SystemExit, match="Unknown method 'Nope'"):
        grid.main(["--methods", "Nope", "--dry-run", "--output", str(tmp_path)])
    with pytest.raises(RecipeError, match="No recipe for method 'Nope'"):
        get_recipe("Nope")
    with pytest.raises(SystemExit, match="Unknown dataset"):
        grid.main(["--datasets", "cifar10", "--dry-run", "--output", str(tmp_path)])


@pytest.mark.parametrize("dataset,shots,lr,epochs,alpha", [
    ("caltech101", 1, 2e-3, 100, 0.5), ("caltech101", 4, 2e-3, 100, 0.5), ("caltech101", 8, 2e-3, 200, 0.5),
    ("imagenet", 16, 2e-4, 200, 0.5), ("oxford_flowers", 2, 2e-3, 100, 1.0),
])
def test_taskres_recipe_is_the_launchers(dataset, shots, lr, epochs, alpha):
    recipe = get_recipe("TaskRes")
    assert recipe.config == "configs/trainers/TaskRes/rn50.yaml"
    assert recipe.settings(dataset, shots) == {"OPTIM.LR": lr, "OPTIM.MAX_EPOCH": epochs,
                                               "TRAINER.TaskRes.RESIDUAL_SCALE": alpha}


@pytest.mark.parametrize("backbone", ["RN50", "RN101", "RN50x16", "/some/where/tiny-vit.pt", "my_clip.pt",
                                      "ViT-B-16:openai", "ViT-B/16", "ViT-L/14@336px"])
def test_backbone_tag_matches_the_launchers(backbone):
    # The launchers' folder names come from bookkeeping (python -m bookkeeping recipe --argv).
    assert names.backbone_tag(backbone) == folders.backbone_tag(backbone)


def test_backbone_tag_of_any_checkpoint_file_matches_the_launchers(tmp_path):
    clip = tmp_path / "my-clip.safetensors"
    clip.write_bytes(b"")
    assert names.backbone_tag(str(clip)) == folders.backbone_tag(str(clip)) == "my_clip"


def test_an_evaluation_loads_the_model_the_run_reported(tmp_path):
    assert folders.deployed_epoch(str(tmp_path)) is None  # saved no model: nothing to load
    for name in ("model.pth.tar-2", "model.pth.tar-10", "checkpoint"):
        (tmp_path / "head").mkdir(exist_ok=True)
        (tmp_path / "head" / name).write_bytes(b"")
    assert folders.deployed_epoch(str(tmp_path)) == 10 and not folders.selected_models(str(tmp_path))
    (tmp_path / "head" / "model-best.pth.tar").write_bytes(b"")  # it deployed its val-selected model
    assert folders.deployed_epoch(str(tmp_path)) is None and folders.selected_models(str(tmp_path))


def test_dataset_names_match_the_dataset_configs():
    for cfg, name, _ in names.FEWSHOT_DATASETS + names.VARIANT_DATASETS:
        text = open(os.path.join(REPO, "configs", "datasets", f"{cfg}.yaml")).read()
        assert f'NAME: "{name}"' in text
    assert len(names.FEWSHOT_DATASETS) == 11


# ---- published numbers --------------------------------------------------------------------------
def test_published_numbers_are_complete_and_consistent():
    pub = load_published()
    counts = {t: len(pub.select(t)) for t in ("fewshot", "average", "imagenet", "variants", "backbones")}
    assert counts == {"fewshot": 198, "average": 108, "imagenet": 27, "variants": 20, "backbones": 4}
    assert pub.get("ProLIP", names.AVERAGE, 16) == 75.20 and pub.get("ProLIP", "ImageNetR", 16, tables=("variants",)) == 59.56
    assert pub.get("CLIP_LoRA", names.AVERAGE, 16, "ViT-B/16") == 82.89 and pub.get("LPP", names.AVERAGE, 1, "ViT-B/16") == 70.35
    assert pub.get("TaskRes", "EuroSAT", 16) == 83.25 and pub.get("ZeroshotCLIP", "DescribableTextures", 8) == 42.32
    assert pub.get("CoOp", "ImageNet", 4) == 59.99 and pub.get("ZeroshotCLIP2", "ImageNet", 16) == 60.33
    assert pub.get("TipAdapterF", "ImageNetA", 16, tables=("variants",)) == 23.52
    assert pub.get("CLIP_Adapter", "Caltech101", 4) is None  # not published: missing, not guessed
    # The published averages are the means of the published per-dataset numbers (a check on the transcription).
    assert pub.get("GDA", "EuroSAT", 16) == 86.12 and pub.get("GDA", "FGVCAircraft", 16, "ViT-B/16") == 50.33
    for method, shots in [(m, k) for m in ("TaskRes", "GDA") for k in names.PAPER_SHOTS] + [("CLIP_Adapter", 1), ("TipAdapterF", 16)]:
        per_dataset = [pub.get(method, d, shots, tables=("fewshot",)) for d in names.FEWSHOT_NAMES]
        assert abs(statistics.mean(per_dataset) - pub.get(method, names.AVERAGE, shots)) < 0.011


# ---- the report ---------------------------------------------------------------------------------
def _table_after(markdown, heading):
    """{row label: [cells]} of the first table after ``heading``."""
    lines = markdown.split(heading, 1)[1].strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return rows


@pytest.mark.slow
def test_report_tables_and_plot(tree, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(tree["out"], root, ignore=shutil.ignore_patterns("feature_cache", ".submitit"))
    tag = _tag(tree["clip"])
    # A run from before metrics.json existed: only its log.txt is left (read as the fall-back).
    # Every run of the small grid is modified (2 epochs, 32 px, ...): the report shows them only when asked, labelled.
    old = _folder(root / "caltech101" / "TaskRes", f"{tag}_1shots") / "seed3"
    old.mkdir()
    (old / "log.txt").write_text("Evaluate on the *val* set\n* accuracy: 99.0%\nEvaluate on the *test* set\n"
                                 "=> result\n* total: 12\n* accuracy: 41.5%\n* error: 58.5%\n")
    unfinished = _folder(root / "dtd" / "TaskRes", f"{tag}_2shots") / "seed9"
    unfinished.mkdir()
    (unfinished / "log.txt").write_text("epoch [1/2] loss 1.0\n")

    result = build_report(str(root), str(tmp_path / "report" / "RESULTS.md"), paper_backbone="RN50",
                          include_modified=True)
    markdown = open(result["markdown"]).read()

    # Expected statistics, straight from the per-run files; a modified run's rows carry its variant.
    expected, label = {}, {}
    for path in _metrics_files(root):
        m = json.loads(open(path).read())
        shots = 0 if m["method"] == "ZeroshotCLIP" else m["shots"]
        # modified runs are labelled by their method's display name, never its trainer id
        label[m["method"]] = f"{LABELS[m['method']]} [modified {m['variant']}]"
        expected.setdefault((label[m["method"]], m["dataset"], shots), []).append(m["accuracy"])
    expected[(label["TaskRes"], "Caltech101", 1)].append(41.5)
    assert len(expected) == 6  # 2 zero-shot cells, 4 TaskRes cells
    summary = result["summary"]
    for (method, dataset, shots), accs in expected.items():
        stat = summary[(tree["clip"], method, dataset, shots)]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        assert (stat.n, stat.mean, stat.std) == (len(accs), pytest.approx(statistics.mean(accs)), pytest.approx(std))
    assert summary[(tree["clip"], label["TaskRes"], "Caltech101", 1)].std > 0

    # Markdown: ours beside the paper, missing as "—", the average marked incomplete.
    for shots in SHOTS:
        table = _table_after(markdown, f"### {shots} shot{'s' if shots > 1 else ''}")
        for method in ("TaskRes", "ZeroshotCLIP"):
            ours = table[f"{label[method]} (ours)"]
            for dataset, column in (("Caltech101", "Cal"), ("DescribableTextures", "DTD")):
                stat = summary[(tree["clip"], label[method], dataset, 0 if method == "ZeroshotCLIP" else shots)]
                expected_text = f"{stat.mean:.2f} ± {stat.std:.2f}" if stat.n > 1 else f"{stat.mean:.2f}"
                assert ours[column].split(" (n=")[0] == expected_text
            assert ours["IN"] == ours["UCF"] == "—" and ours["Average"] == "incomplete (2/11)"
        assert table["TaskRes (paper)"]["Cal"] == {1: "89.49", 2: "89.86"}[shots]
        assert table["TaskRes (paper)"]["Average"] == {1: "64.55", 2: "66.89"}[shots]
        assert table["Zero-shot CLIP (paper)"]["DTD"] == "42.32"
        assert table["Tip-Adapter-F (paper)"]["ESAT"] == ("59.53" if shots == 1 else "—")
    assert f"{label['TaskRes']} (ours)" in table and "TaskRes (ours)" not in table
    assert table[f"{label['TaskRes']} (ours)"]["Cal"].endswith("(n=2)")  # 2 of the 3 seeds the 1-shot cell has
    assert str(unfinished) in markdown  # listed as a run without a result

    # CSV: one record per cell and the incomplete averages, with the published number beside ours.
    with open(result["csv"]) as f:
        records = {(r["method"], r["dataset"], r["shots"]): r for r in csv.DictReader(f)}
    rec = records[(label["TaskRes"], "Caltech101", "1")]
    assert rec["n"] == "3"
    assert float(rec["mean"]) == pytest.approx(statistics.mean(expected[(label["TaskRes"], "Caltech101", 1)]), abs=1e-4)
    average = records[(label["TaskRes"], "Average", "2")]
    assert average["mean"] == "" and "incomplete" in average["note"]

    # The plot: a PNG, one solid line per method in each panel we ran, the published curves dashed.
    [(png, fig)] = result["figures"].items()
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    axes = {ax.get_title(): ax for ax in fig.axes}
    for dataset in ("Caltech101", "DescribableTextures"):
        lines = axes[dataset].get_lines()
        solid = {line.get_label(): line for line in lines if line.get_linestyle() == "-"}
        dashed = {line.get_label() for line in lines if line.get_linestyle() == "--"}
        assert set(solid) == {label["TaskRes"], label["ZeroshotCLIP"]}
        assert dashed <= {"TaskRes (paper)", "Zero-shot CLIP (paper)"}  # published curves are never relabelled
        xs, ys = solid[label["TaskRes"]].get_data()
        assert list(xs) == SHOTS
        assert list(ys) == pytest.approx([summary[(tree["clip"], label["TaskRes"], dataset, k)].mean for k in SHOTS])
    assert {line.get_label() for line in axes["EuroSAT"].get_lines() if line.get_linestyle() == "-"} == set()


@pytest.mark.slow
def test_report_keeps_modified_runs_out_of_ours_by_default(tree, tmp_path):
    result = build_report(str(tree["out"]), str(tmp_path / "RESULTS.md"))
    markdown = open(result["markdown"]).read()
    assert result["summary"] == {} and len(result["modified"]) == 10
    assert "## Modified runs (not in the tables)" in markdown and "(ours)" not in markdown
    assert "TaskRes (paper)" in markdown  # the published rows stay
    with open(result["runs_csv"]) as f:
        assert {r["variant"] != "" for r in csv.DictReader(f)} == {True}


def test_pool_gives_each_worker_one_visible_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert pool_slots() == ["3", "5"]  # one worker per visible GPU
    assert pool_slots(3) == ["3", "5", "3"]  # more workers share the GPUs in turn
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert pool_slots() == [None] and pool_slots(2) == [None, None]  # CPU: one worker unless told


def test_slurm_executor_writes_the_asked_parameters(monkeypatch, tmp_path):
    """The sbatch script submitit writes for the grid's executor (stub ``sbatch``/``srun`` stand in for a cluster)."""
    for tool in ("sbatch", "srun"):
        path = tmp_path / "bin" / tool
        path.parent.mkdir(exist_ok=True)
        path.write_text("#!/bin/sh\necho 'Submitted batch job 42'\n")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    ex = make_submitit_executor("slurm", str(tmp_path / "jobs"), timeout_min=90, partition="gpu",
                                array_parallelism=2, mem_gb=32, slurm_params={"account": "lab"})
    jobs = ex.map_array(int, ["1", "2", "3"])
    assert [j.job_id for j in jobs] == ["42_0", "42_1", "42_2"] and str(ex.folder) == str(tmp_path / "jobs")
    script = set(jobs[0].paths.submission_file.read_text().splitlines())
    assert {"#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --array=0-2%2", "#SBATCH --mem=32GB",
            "#SBATCH --account=lab", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=8",
            "#SBATCH --job-name=taskres-grid"} <= script


@pytest.mark.slow
def test_driver_skips_what_the_shell_launcher_finished(tree, tmp_path, capsys):
    """Same layout as scripts/<method>/main.sh: a run the launcher finished is [done] for the driver."""
    out = tmp_path / "out"
    env = dict(os.environ, DATA=str(tree["data"]), BACKBONE=tree["clip"], OUTPUT=str(out), PYTHON=sys.executable,
               INPUT_SIZE="32", EXTRA_OPTS=" ".join(TINY), SEEDS="1")
    shell = subprocess.run(["bash", "scripts/zeroshot/main.sh", "caltech101", "1"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert shell.returncode == 0, shell.stderr[-2000:]
    report = grid.main(_grid_argv(tree["data"], out, tree["clip"], "--dry-run", methods=["ZeroshotCLIP"]))
    printed = capsys.readouterr().out
    assert [c.dataset for c in report.skipped] == ["caltech101"]
    assert "[done]" in printed and "[run]" in printed  # dtd is still to run

"""The field's evaluation protocols through the grid (submitit's DebugExecutor, in this process) and the report.

Base-to-novel, cross-dataset and ImageNet-to-variants runs of zero-shot CLIP, TaskRes (per-class state) and
CoOp (class-agnostic context), and the two selection tracks with Tip-Adapter, Tip-Adapter-F, the linear probe and LP++
(which select on val) beside TaskRes (which reads no validation data), on synthetic trees with the tiny CLIP. The
report's cells are checked against the runs' ``metrics.json``: HM computed from the seed means, a per-class
method shown with n/a for new classes, and no table mixing tracks.
"""
import json
import os
import statistics

import pytest

from datasets import DEFAULT_TRACK, TRACKS
from scripts.reproduce import grid
from tests.fixtures.synthetic_datasets import write_dataset
from tools.aggregate import collect
from tools.names import TRACK_NAMES, TRACK_TITLES, dataset_label
from tools.report import build_report

TINY = ["DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "DATALOADER.TEST.BATCH_SIZE", "16",
        "FEATURE_CACHE.NUM_VIEWS", "2", "TRAIN.PRINT_FREQ", "100", "OPTIM.LR", "0.1"]
AGNOSTIC = "CoOp"  # its unified context names no class (class_agnostic): it transfers to unseen classes
# The report names methods by their display names (the runs here are all modified: "<label> [modified <hex>]").
LABELS = {"ZeroshotCLIP": "Zero-shot CLIP", "TaskRes": "TaskRes", "CoOp": "CoOp", "TipAdapter": "Tip-Adapter",
          "TipAdapterF": "Tip-Adapter-F", "LinearProbeCLIP": "Linear probe", "LPP": "LP++"}
FIRST = TRACK_TITLES[TRACK_NAMES[0]]  # the track of the tables under each backbone heading
# Fields a run written before the naming and track fields (schema 1) lacks.
NEWER_FIELDS = ("track", "tracks", "read_validation", "schema", "result_name", "label", "table_order", "shot_free",
                "selects_on_val")


def _grid(data, out, clip, *more, methods, datasets, shots=(2,), seeds=(1,)):
    argv = ["--methods", *methods, "--datasets", *datasets, "--shots", *map(str, shots), "--seeds", *map(str, seeds),
            "--backbone", clip, "--data", str(data), "--output", str(out), "--epochs", "2", "--input-size", "32",
            "--executor", "debug", *more, "--", *TINY]
    report = grid.main(argv)
    assert not report.failed, [(r.cell.name, r.error) for r in report.failed]
    return report


def _metrics(out):
    found = {}
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames[:] = [d for d in dirnames if d not in ("feature_cache", ".submitit")]
        if "metrics.json" in filenames:
            with open(os.path.join(dirpath, "metrics.json")) as f:
                found[os.path.relpath(dirpath, out)] = json.load(f)
    return found


def _section(markdown, heading):
    """The text from ``heading`` to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    text = markdown.split(heading + "\n", 1)[1]
    stops = [i for i in (text.find("\n" + "#" * n + " ") for n in range(1, len(level) + 1)) if i >= 0]
    return text[: min(stops)] if stops else text


def _rows(table_text, key_cols=1):
    """{tuple of the first ``key_cols`` cells: [other cells]} of the first markdown table in ``table_text``."""
    lines = [ln for ln in table_text.splitlines() if ln.startswith("|")][2:]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return {tuple(c[:key_cols]): c[key_cols:] for c in cells}


def _fmt(values):
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


# ---- base-to-novel ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def b2n(tmp_path_factory, tiny_clip):
    data, out = tmp_path_factory.mktemp("b2n-data"), tmp_path_factory.mktemp("b2n-out")
    write_dataset("Caltech101", str(data), num_classes=6, per_class=10)
    write_dataset("DescribableTextures", str(data), num_classes=6, per_class=10)
    report = _grid(data, out, tiny_clip, "--protocol", "base2novel", methods=["ZeroshotCLIP", "TaskRes", AGNOSTIC],
                   datasets=["caltech101", "dtd"], seeds=(1, 2))
    return {"data": data, "out": out, "report": report}


@pytest.mark.slow
def test_base2novel_trains_on_base_and_evaluates_transferable_methods_on_new(b2n):
    runs = _metrics(b2n["out"])
    trained = {k: m for k, m in runs.items() if not m["eval_only"]}
    evals = {k: m for k, m in runs.items() if m["eval_only"]}
    # every method trains on the base half (3 of 6 classes), in its own "_base" folder
    assert {m["method"] for m in trained.values()} == {"ZeroshotCLIP", "TaskRes", AGNOSTIC}
    assert all(m["classes"] == "base" and "_base" in k.split(os.sep)[2] for k, m in trained.items())
    # the new classes are evaluated for the methods whose trained state transfers, never for TaskRes
    assert {m["method"] for m in evals.values()} == {"ZeroshotCLIP", AGNOSTIC}
    for k, m in evals.items():
        assert k.endswith("eval_new") and m["classes"] == "new" and m["source"]["classes"] == "base"
        assert m["source"]["path"] == os.path.join(str(b2n["out"]), os.path.dirname(k))
    assert any("TaskRes: its trained state is per class" in n for n in b2n["report"].notes)


@pytest.mark.slow
def test_base2novel_report_cells_and_harmonic_mean(b2n, tmp_path):
    runs = _metrics(b2n["out"])
    markdown = open(build_report(str(b2n["out"]), str(tmp_path / "R.md"), include_modified=True)["markdown"]).read()
    section = _section(markdown, f"## Base-to-novel ({FIRST})")
    table = _rows(section, key_cols=2)
    for d in ("Caltech101", "DescribableTextures"):
        for method in ("ZeroshotCLIP", "TaskRes", AGNOSTIC):
            base = [m["accuracy"] for m in runs.values() if m["method"] == method and m["dataset"] == d
                    and m["classes"] == "base"]
            new = [m["accuracy"] for m in runs.values() if m["method"] == method and m["dataset"] == d
                   and m["classes"] == "new"]
            [label] = [k for k in table if k[0] == dataset_label(d) and k[1].startswith(LABELS[method] + " [")]
            cells = table[label]
            assert cells[0] == _fmt(base)
            if method == "TaskRes":  # per-class residual: shown, with its new-class cells marked n/a
                assert not new and cells[1:] == ["n/a ‡", "n/a ‡"]
            else:
                b, n = statistics.mean(base), statistics.mean(new)
                assert cells[1] == _fmt(new) and cells[2] == f"{2 * b * n / (b + n):.2f}"
    # two of the 11 datasets: the average row says so instead of averaging what is there
    averages = {k[1]: v for k, v in table.items() if k[0] == "Average"}
    assert all(v[0] == "incomplete (2/11)" for v in averages.values())
    # these methods read no validation data: their runs serve every track, so no other track repeats the table
    assert all(set(m["tracks"]) == set(TRACKS) for m in runs.values())
    assert "## Base-to-novel (validation-free)" not in markdown and "## Base-to-novel (few-shot validation)" not in markdown
    # base-trained runs never fill the few-shot tables
    fewshot = _section(markdown, "### 2 shots") if "### 2 shots\n" in markdown else ""
    assert "(ours)" not in fewshot


# ---- selection tracks ---------------------------------------------------------------------------
@pytest.mark.slow
def test_tracks_record_what_was_read_and_are_never_mixed(tmp_path, tiny_clip):
    data, out = tmp_path / "data", tmp_path / "out"
    write_dataset("Caltech101", str(data), num_classes=4, per_class=10)
    methods = ["TaskRes", "TipAdapter", "TipAdapterF", "LinearProbeCLIP", "LPP"]
    _grid(data, out, tiny_clip, methods=methods, datasets=["caltech101"])
    second = _grid(data, out, tiny_clip, "--track", "valfree", methods=methods, datasets=["caltech101"])
    # TaskRes reads no validation data: its one run serves both tracks, the second grid reuses it
    assert [c.method for c in second.skipped] == ["TaskRes"]
    runs = _metrics(out)
    by = {(m["method"], m["track"]): m for m in runs.values()}
    assert by[("TaskRes", DEFAULT_TRACK)]["tracks"] == list(TRACKS)
    assert not by[("TaskRes", DEFAULT_TRACK)]["read_validation"]
    for method in methods[1:]:
        paper, free = by[(method, DEFAULT_TRACK)], by[(method, "valfree")]
        assert paper["tracks"] == [DEFAULT_TRACK] and paper["read_validation"]
        assert paper["selection_data"]["track"] == DEFAULT_TRACK and paper["selection_data"]["images"] > 0
        assert free["tracks"] == ["valfree"] and not free["read_validation"]
    folders = {(m["method"], m["track"]): k for k, m in runs.items()}
    assert "_valfree" in folders[("TipAdapter", "valfree")] and "_valfree" not in folders[("TipAdapter", DEFAULT_TRACK)]
    # the fixed settings of the valfree track: Tip-Adapter's paper defaults, no search; the last epoch; C = 1
    assert by[("TipAdapter", "valfree")]["extra"]["alpha"] == 1.0 and by[("TipAdapter", "valfree")]["extra"]["beta"] == 5.5
    assert not by[("TipAdapter", "valfree")]["extra"]["search_hp"]
    assert by[("TipAdapterF", "valfree")]["extra"]["best_epoch"] == 2
    assert by[("LinearProbeCLIP", "valfree")]["extra"]["C"] == 1.0
    assert by[("LPP", DEFAULT_TRACK)]["extra"]["select_on_val"] and not by[("LPP", "valfree")]["extra"]["select_on_val"]

    # The default track's table: under the backbone heading when it is the first track, else in its own section.
    default_heading = ("### 2 shots" if DEFAULT_TRACK == TRACK_NAMES[0]
                       else f"### {tiny_clip}, 2 shots ({TRACK_TITLES[DEFAULT_TRACK]})")
    markdown = open(build_report(str(out), str(tmp_path / "R.md"), include_modified=True)["markdown"]).read()
    default_table = _rows(_section(markdown, default_heading))
    free_section = _section(markdown, f"### {tiny_clip}, 2 shots (validation-free)")
    free_table = _rows(free_section)
    assert "*Track `valfree` (validation-free): no run reads validation data" in free_section
    cal = 1  # the Caltech101 column (ImageNet's comes first)
    for method in methods:
        [default_label] = [k for k in default_table if k[0].startswith(LABELS[method] + " ")]
        [free_label] = [k for k in free_table if k[0].startswith(LABELS[method] + " ")]
        assert default_table[default_label][cal] == _fmt([by[(method, DEFAULT_TRACK)]["accuracy"]])
        expected = by[(method, DEFAULT_TRACK if method == "TaskRes" else "valfree")]["accuracy"]
        assert free_table[free_label][cal] == _fmt([expected])
        assert ("◇" in free_label[0]) == (method == "TaskRes")  # shared runs are marked, never silently doubled

    # Runs written before the track and naming fields (schema 1) are judged by the rule of then: TaskRes's serves
    # every table (the valfree grid above reused it), a selecting method's stays in the track it ran in,
    # few-shot validation (the paper's protocol before the paper track existed).
    for method in ("TaskRes", "TipAdapter"):
        path = out / folders[(method, DEFAULT_TRACK)] / "metrics.json"
        path.write_text(json.dumps({k: v for k, v in by[(method, DEFAULT_TRACK)].items() if k not in NEWER_FIELDS}))
    tracks = {(r.method, r.path): r.tracks for r in collect(str(out)).rows}
    assert tracks[("TaskRes", str(out / folders[("TaskRes", DEFAULT_TRACK)]))] == "+".join(TRACK_NAMES)
    assert tracks[("TipAdapter", str(out / folders[("TipAdapter", DEFAULT_TRACK)]))] == "fewshot_val"
    markdown = open(build_report(str(out), str(tmp_path / "R2.md"), include_modified=True)["markdown"]).read()
    free_table = _rows(_section(markdown, f"### {tiny_clip}, 2 shots (validation-free)"))
    [taskres] = [k for k in free_table if k[0].startswith("TaskRes ")]
    assert free_table[taskres][cal] == _fmt([by[("TaskRes", DEFAULT_TRACK)]["accuracy"]])
    old_table = _rows(_section(markdown, f"### {tiny_clip}, 2 shots (few-shot validation)"))
    [tip] = [k for k in old_table if k[0].startswith("Tip-Adapter [")]
    assert old_table[tip][cal] == _fmt([by[("TipAdapter", DEFAULT_TRACK)]["accuracy"]])


def test_track_names_are_defined_once():
    """The tracks and their default are defined in datasets/validation.py alone; the run folders follow them."""
    from bookkeeping.folders import protocol_suffix

    assert DEFAULT_TRACK == "paper" and TRACKS == ("paper", "fewshot_val", "valfree")
    assert [protocol_suffix("all", t, True) for t in TRACKS] == ["", "_fewshot_val", "_valfree"]
    assert [protocol_suffix("all", t, False) for t in TRACKS] == ["", "", ""]  # one run serves every track


def test_valfree_refuses_validation_data_and_best_val(tmp_path, tiny_clip, data_root):
    import train
    from datasets import ValidationSplitError, select_validation
    from tests.conftest import make_trainer, train_args

    argv = train_args(data_root, tiny_clip, str(tmp_path / "run"), trainer="TipAdapter",
                      extra=["--config-file", "configs/trainers/TipAdapter/rn50.yaml"])
    trainer = make_trainer(argv + ["DATASET.TRACK", "valfree"])
    with pytest.raises(ValidationSplitError, match="valfree track reads no validation data"):
        select_validation(trainer.dm.dataset, "Caltech101", "valfree")
    with pytest.raises(SystemExit, match="TEST.FINAL_MODEL best_val selects the epoch on val"):
        train.main(train_args(data_root, tiny_clip, str(tmp_path / "r2"), extra=[])
                   + ["DATASET.TRACK", "valfree", "TEST.FINAL_MODEL", "best_val"])
    with pytest.raises(SystemExit, match="DATASET.TRACK must be one of paper, fewshot_val, valfree"):
        train.main(train_args(data_root, tiny_clip, str(tmp_path / "r3")) + ["DATASET.TRACK", "nope"])
    with pytest.raises(SystemExit, match="DATASET.SUBSAMPLE_CLASSES must be all, base or new, not 'Base'"):
        train.main(train_args(data_root, tiny_clip, str(tmp_path / "r4")) + ["DATASET.SUBSAMPLE_CLASSES", "Base"])


# ---- cross-dataset and domain generalisation ----------------------------------------------------
@pytest.mark.slow
def test_cross_dataset_and_dg_evaluate_imagenet_runs(tmp_path, tiny_clip, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    write_dataset("ImageNet", str(data), num_classes=4, per_class=6)
    write_dataset("Caltech101", str(data), num_classes=4, per_class=6)
    write_dataset("DescribableTextures", str(data), num_classes=4, per_class=6)
    write_dataset("ImageNetV2", str(data), num_classes=4, per_class=3)
    methods = ["ZeroshotCLIP", "TaskRes", AGNOSTIC]
    # the dry run lists the evaluations that wait for their trained runs, and costs them
    grid.main(["--protocol", "cross_dataset", "--methods", *methods, "--datasets", "imagenet", "caltech101", "dtd",
               "--shots", "2", "--seeds", "1", "--backbone", tiny_clip, "--data", str(data), "--output", str(out),
               "--epochs", "2", "--input-size", "32", "--dry-run", "--", *TINY])
    printed = capsys.readouterr().out
    assert printed.count("[after training]") == 4 and "TaskRes: skipped" in printed
    assert "Image-encoder cost of 6 run(s)" in printed
    cross = _grid(data, out, tiny_clip, "--protocol", "cross_dataset", methods=methods,
                  datasets=["imagenet", "caltech101", "dtd"])
    assert {c.method for c in cross.planned} == {"ZeroshotCLIP", AGNOSTIC}
    dg = _grid(data, out, tiny_clip, "--protocol", "dg", "--variants", "imagenetv2", methods=methods,
               datasets=["imagenet"])
    assert {r.cell.method for r in dg.ran} == {"TaskRes", AGNOSTIC, "ZeroshotCLIP"}
    assert {c.method for c in dg.skipped} == {AGNOSTIC, "ZeroshotCLIP"}  # their ImageNet runs are reused
    runs = _metrics(out)
    markdown = open(build_report(str(out), str(tmp_path / "R.md"), include_modified=True)["markdown"]).read()
    table = _rows(_section(markdown, f"## Cross-dataset transfer ({FIRST})"))
    assert not [k for k in table if k[0].startswith("TaskRes")]
    for method in ("ZeroshotCLIP", AGNOSTIC):
        [label] = [k for k in table if k[0].startswith(LABELS[method] + " [")]
        own = [m for m in runs.values() if m["method"] == method and m["dataset"] == "ImageNet" and not m["eval_only"]]
        assert table[label][0] == _fmt([own[0]["accuracy"]])
        for col, d in ((1, "Caltech101"), (2, "DescribableTextures")):
            [ev] = [m for m in runs.values() if m["method"] == method and m["dataset"] == d and m["eval_only"]]
            assert ev["source"]["dataset"] == "ImageNet" and table[label][col] == _fmt([ev["accuracy"]])
        assert table[label][-1] == "incomplete (2/10)"
    v2 = {m["method"]: m for m in runs.values() if m["dataset"] == "ImageNetV2"}
    assert set(v2) == set(methods) and all(m["source"]["dataset"] == "ImageNet" for m in v2.values())
    dg_table = _rows(_section(markdown, "### ImageNet (2 shots) to ImageNet-V2 / -Sketch / -A / -R"))
    for method, m in v2.items():
        [label] = [k for k in dg_table if k[0].startswith(LABELS[method] + " [")]
        assert dg_table[label][1] == _fmt([m["accuracy"]])  # the columns: ImageNet, then -V2


# ---- the launchers ------------------------------------------------------------------------------
@pytest.mark.slow
def test_launchers_take_the_track_and_the_class_subset(data_root, tiny_clip, tmp_path):
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, DATA=data_root, BACKBONE=tiny_clip, OUTPUT=str(tmp_path), PYTHON=sys.executable, SEEDS="1",
               INPUT_SIZE="32", TASKRES_ENGINE="builtin", TRACK="valfree", CLASSES="base",
               EXTRA_OPTS="DATALOADER.NUM_WORKERS 0 DATALOADER.TRAIN_X.BATCH_SIZE 8")
    for script in ("scripts/tip_adapter/main.sh", "scripts/taskres/main.sh"):
        res = subprocess.run(["bash", script, "caltech101", "2"], cwd=repo, env=dict(env, EPOCHS="2"),
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    runs = _metrics(tmp_path)
    [tip] = [(k, m) for k, m in runs.items() if m["method"] == "TipAdapter"]
    [taskres] = [(k, m) for k, m in runs.items() if m["method"] == "TaskRes"]
    # Tip-Adapter selects on val: a validation-free run of its own; TaskRes reads none: the track names no folder
    assert "_base_valfree" in tip[0] and tip[1]["tracks"] == ["valfree"] and tip[1]["classes"] == "base"
    assert "_base" in taskres[0] and "valfree" not in taskres[0] and taskres[1]["tracks"] == list(TRACKS)


def test_published_base2novel_numbers_are_consistent_and_shown_beside_ours():
    from tools.published import load_published
    from tools.tables import base2novel_table

    pub = load_published()
    methods = pub.methods("b2n_hm", "ViT-B/16")
    assert {"ZeroshotCLIP", "CoOp", "CoCoOp", "MaPLe", "PromptSRC"} <= set(methods)
    for m in methods:  # a check on the transcription: each published HM is the HM of its base and new
        b, n, h = (pub.get(m, "Average", 16, "ViT-B/16", tables=(t,)) for t in ("b2n_base", "b2n_new", "b2n_hm"))
        assert abs(2 * b * n / (b + n) - h) < 0.011
        assert all("README.md" in x.source and "@" in x.source for x in pub.numbers if x.method == m
                   and x.table.startswith("b2n"))
    table = _rows(base2novel_table([], pub, "ViT-B/16", 16), key_cols=2)
    assert table[("Average", "CoCoOp (paper)")] == ["80.47", "71.69", "75.83"]

"""The report reads run outputs only: it runs with torch unimportable, names every method by the label its runs
record (schema 2) or by the frozen schema-1 table (old runs), puts each run in the tracks it serves, and names
every folder or file it could not read.

The trees are written here as ``metrics.json`` files (what ``train.py`` writes), in the launchers' layout.
"""
import json
import os
import subprocess
import sys

import pytest

from tools.aggregate import collect
from tools.names import TRACK_NAMES, TRACK_TITLES, TRACKS
from tools.report import build_report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['tools.report'] + sys.argv[1:]; "
            "runpy.run_module('tools.report', run_name='__main__'); "
            "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & "
            "{'trainers', 'datasets', 'engine', 'scripts', 'features', 'bookkeeping', 'train'}))")


def _run(root, method, shots, accuracy, folder=None, seed=1, dataset="Caltech101", **fields):
    """Write one run's metrics.json under ``root/<config>/<method>/<folder>/seed<seed>``."""
    config = {"Caltech101": "caltech101", "DescribableTextures": "dtd"}[dataset]
    path = root / config / method / (folder or f"rn50_{shots}shots") / f"seed{seed}"
    path.mkdir(parents=True)
    metrics = dict(dict(method=method, dataset=dataset, backbone="RN50", shots=shots, seed=seed, accuracy=accuracy,
                        variant=None, recipe=True, modified={}, classes="all", class_agnostic=False), **fields)
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def _schema2(method, label, order, *, result_name=None, shot_free=False, selects=False, track="paper", tracks=None):
    return dict(schema=2, result_name=result_name or method, label=label, table_order=order, shot_free=shot_free,
                selects_on_val=selects, track=track, tracks=tracks or [track], read_validation=selects)


@pytest.fixture()
def tree(tmp_path):
    """Schema-1 runs (no ``schema``: as written before the naming fields) beside schema-2 runs."""
    root = tmp_path / "out"
    # schema 1: Tip-Adapter-F selected on few-shot val; TaskRes read none (it serves every track)
    _run(root, "TipAdapterF", 16, 70.0, track="fewshot_val", tracks=["fewshot_val"], read_validation=True)
    _run(root, "TaskRes", 16, 72.0, track="fewshot_val", tracks=["fewshot_val", "valfree"], read_validation=False)
    _run(root, "TaskRes", 16, 74.0, folder="rn50_16shots_enhanced", read_validation=False)  # TaskRes*, no tracks
    # schema 2: the paper track and the validation-free one, a method the schema-1 table never knew
    _run(root, "TipAdapterF", 16, 71.0, seed=2, **_schema2("TipAdapterF", "Tip-Adapter-F", 60, selects=True))
    _run(root, "TipAdapterF", 16, 65.0, folder="rn50_16shots_valfree", **_schema2(
        "TipAdapterF", "Tip-Adapter-F", 60, selects=True, track="valfree"))
    _run(root, "CLIP_Adapter", 16, 69.0, **_schema2("CLIP_Adapter", "CLIP-Adapter", 40, tracks=list(TRACK_NAMES)))
    _run(root, "MyProbe", 16, 60.0, **_schema2("MyProbe", "My probe", None, tracks=list(TRACK_NAMES)))
    _run(root, "ZeroshotCLIP", 0, 50.0, folder="rn50_zeroshot", **_schema2(
        "ZeroshotCLIP", "Zero-shot CLIP", 10, shot_free=True, tracks=list(TRACK_NAMES)))
    # what cannot be read: a broken metrics.json, a schema-2 file without its names, a run that never finished
    bad = root / "dtd" / "TaskRes" / "rn50_16shots" / "seed1"
    bad.mkdir(parents=True)
    (bad / "metrics.json").write_text("{not json")
    _run(root, "CoOp", 16, 1.0, dataset="DescribableTextures", schema=2, result_name="CoOp", tracks=["paper"])
    unfinished = root / "dtd" / "TaskRes" / "rn50_16shots" / "seed2"
    unfinished.mkdir()
    (unfinished / "log.txt").write_text("epoch [1/2] loss 1.0\n")
    return root


def _section(markdown, heading):
    text = markdown.split(heading + "\n", 1)[1]
    stops = [i for i in (text.find("\n## "), text.find("\n### ")) if i >= 0]
    return text[: min(stops)] if stops else text


def _rows(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("|")][2:]
    return {c[0]: c[1:] for c in ([x.strip() for x in ln.strip("|").split("|")] for ln in lines)}


def test_schema_1_and_schema_2_runs_report_side_by_side_without_torch(tree, tmp_path):
    out = tmp_path / "R.md"
    env = dict(os.environ, PYTHONPATH=REPO)
    run = subprocess.run([sys.executable, "-c", NO_TORCH, str(tree), "--out", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "LOADED []" in run.stdout  # neither torch nor any training-code package was imported
    markdown = out.read_text()

    # The paper track's table comes first, with the line saying what the track allows under it.
    paper = _section(markdown, "### 16 shots")
    assert markdown.index("### 16 shots") < markdown.index("## Few-shot validation track")
    assert f"*Track `paper` ({TRACK_TITLES['paper']}):" in paper
    rows = _rows(paper)
    cal = 1  # the Caltech101 column (ImageNet's comes first)
    # schema 2 names its rows; schema 1 takes the frozen table (Tip-Adapter-F's old run selected on few-shot val,
    # so it is not in the paper track; TaskRes's old runs serve every track)
    assert rows["Tip-Adapter-F (ours)"][cal] == "71.00"
    assert rows["TaskRes (ours)"][cal] == "72.00" and rows["TaskRes* (ours)"][cal] == "74.00"
    assert rows["CLIP-Adapter (ours)"][cal] == "69.00" and rows["My probe (ours)"][cal] == "60.00"
    assert rows["Zero-shot CLIP (ours)"][cal] == "50.00"
    assert rows["Tip-Adapter-F (paper)"][cal] == "92.86" and rows["CLIP-Adapter (paper)"][cal] == "92.49"
    ours = [k for k in rows if k.endswith("(ours)")]
    assert ours == ["Zero-shot CLIP (ours)", "CLIP-Adapter (ours)", "Tip-Adapter-F (ours)", "TaskRes (ours)",
                    "TaskRes* (ours)", "My probe (ours)"]  # table order, then unordered methods by name
    # No trainer id anywhere a method is named.
    table_lines = [ln for ln in markdown.splitlines() if ln.startswith("| ")]
    for trainer_id in ("TipAdapterF", "CLIP_Adapter", "ZeroshotCLIP", "MyProbe", "LinearProbeCLIP"):
        assert not any(trainer_id in ln for ln in table_lines), trainer_id

    # The few-shot-validation track: the old Tip-Adapter-F run; the shared runs marked; valfree: its own run.
    fewshot_val = _rows(_section(markdown, "### RN50, 16 shots (few-shot validation)"))
    assert fewshot_val["Tip-Adapter-F (ours)"][cal] == "70.00" and fewshot_val["TaskRes ◇ (ours)"][cal] == "72.00"
    valfree = _section(markdown, "### RN50, 16 shots (validation-free)")
    assert _rows(valfree)["Tip-Adapter-F (ours)"][cal] == "65.00" and "*Track `valfree`" in valfree
    assert _rows(valfree)["CLIP-Adapter ◇ (ours)"][cal] == "69.00"

    # Every folder or file that gave no row is named, with why.
    broken = tree / "dtd" / "TaskRes" / "rn50_16shots" / "seed1" / "metrics.json"
    nameless = tree / "dtd" / "CoOp" / "rn50_16shots" / "seed1" / "metrics.json"
    assert f"- `{broken}: Expecting property name" in markdown and f"- `{nameless}: no 'label' field`" in markdown
    assert f"- `{tree / 'dtd' / 'TaskRes' / 'rn50_16shots' / 'seed2'}`" in markdown
    assert f"Unreadable {broken}:" in run.stderr and f"Unreadable {nameless}: no 'label' field" in run.stderr


def test_old_runs_keep_todays_tracks_and_names(tree):
    rows = {(r.method, r.seed, r.tracks.split("+")[-1]): r for r in collect(str(tree)).rows}
    assert rows[("TipAdapterF", 1, "fewshot_val")].tracks == "fewshot_val"  # selects on val: its own track only
    assert rows[("TaskRes", 1, "valfree")].tracks == "+".join(TRACK_NAMES)  # reads none: every track
    assert rows[("TaskRes*", 1, "valfree")].label == "TaskRes*"
    assert rows[("ZeroshotCLIP", 1, "valfree")].shots == 0


def test_modified_runs_and_plots_use_labels(tree, tmp_path):
    _run(tree, "TipAdapterF", 16, 40.0, folder="rn50_16shots_1a2b3c4d",
         **dict(_schema2("TipAdapterF", "Tip-Adapter-F", 60, selects=True), variant="1a2b3c4d"))
    markdown = (tmp_path / "R.md")
    result = build_report(str(tree), str(markdown), include_modified=True)
    assert "Tip-Adapter-F [modified 1a2b3c4d] (ours)" in _rows(_section(markdown.read_text(), "### 16 shots"))
    [fig] = result["figures"].values()
    [cal] = [ax for ax in fig.axes if ax.get_title() == "Caltech101"]
    labels = {line.get_label() for line in cal.get_lines()}
    assert {"Tip-Adapter-F", "Tip-Adapter-F [modified 1a2b3c4d]", "CLIP-Adapter", "My probe",
            "Tip-Adapter-F (paper)"} <= labels
    assert not {"TipAdapterF", "CLIP_Adapter", "MyProbe"} & labels
    result = build_report(str(tree), str(tmp_path / "R2.md"))
    assert "- Tip-Adapter-F on Caltech101, variant `1a2b3c4d`" in (tmp_path / "R2.md").read_text()


def test_track_order_covers_the_declared_tracks():
    import datasets  # the test may import the training code; tools may not

    assert set(datasets.TRACKS) <= set(TRACK_NAMES) and len(TRACKS) == len(set(TRACK_NAMES))
    assert TRACK_NAMES[0] == "paper"


def test_a_log_only_run_with_empty_config_nodes_is_named_by_its_folder(tmp_path):
    run = tmp_path / "out" / "caltech101" / "TaskRes" / "rn50_16shots" / "seed3"
    run.mkdir(parents=True)
    (run / "log.txt").write_text("Evaluate on the *test* set\n=> result\n* total: 12\n* accuracy: 41.5%\n")
    (run / "config.yaml").write_text("DATASET:\nTRAINER:\nMODEL:\n")  # nodes present but empty (YAML null)
    found = collect(str(tmp_path / "out"))
    assert not found.unreadable
    [row] = found.rows
    assert (row.method, row.dataset, row.shots, row.seed, row.accuracy, row.source) == (
        "TaskRes", "Caltech101", 16, 3, 41.5, "log.txt")

"""Pre-flight checks (``scripts.reproduce.preflight``): what a grid or a launcher needs is there before work starts."""
import os
import subprocess
import sys

from scripts.reproduce import grid
from scripts.reproduce.preflight import check_disk, main
from tests.fixtures.synthetic_datasets import write_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ready_when_data_and_weights_are_there(tmp_path, tiny_clip, capsys):
    write_dataset("Caltech101", str(tmp_path / "data"), num_classes=2, per_class=4)
    assert main(["--data", str(tmp_path / "data"), "--datasets", "caltech101", "--backbone", tiny_clip,
                 "--output", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "ready"


def test_missing_dataset_folder_split_file_and_weights_are_listed_with_exit_1(tmp_path, capsys):
    data = tmp_path / "data"
    write_dataset("DescribableTextures", str(data), num_classes=2, per_class=4)
    os.remove(data / "dtd" / "split_zhou_DescribableTextures.json")
    weights = tmp_path / "nowhere" / "clip.pt"
    assert main(["--data", str(data), "--datasets", "caltech101", "dtd", "--backbone", str(weights),
                 "--output", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "3 problem(s) before this can run:"
    problems = [line[4:] for line in lines[1:]]
    assert problems[0].startswith(f"caltech101: dataset folder {data / 'caltech-101'} is missing or unreadable")
    assert problems[1] == (f"dtd: split file {data / 'dtd' / 'split_zhou_DescribableTextures.json'} is missing or "
                           f"unreadable: python -m datasets.download splits --root {data} --dataset DescribableTextures")
    assert problems[2].startswith(f"backbone {weights}: no such file") and "pass an existing checkpoint" in problems[2]


def test_the_launchers_line_exits_non_zero(tmp_path):
    """The command line the launchers call: a missing datasets root is one line and exit status 1."""
    proc = subprocess.run([sys.executable, "-m", "scripts.reproduce.preflight", "--data", str(tmp_path / "none"),
                           "--datasets", "dtd", "--backbone", "RN50"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert f"datasets root '{tmp_path / 'none'}' is not a folder: pass --data" in proc.stdout


def test_disk_need_against_free_space(tmp_path):
    cache = str(tmp_path / "not" / "yet" / "cache")  # measured on the nearest folder that exists
    [problem] = check_disk(cache, "RN50", {"to_encode_views": 10 ** 12}).problems
    assert problem.startswith(f"feature cache {cache} needs 1907348.6 GB and {tmp_path} has") and "--cache-dir" in problem
    fits = check_disk(cache, "RN50", {"to_encode_views": 1000})
    assert not fits.problems and "about 0.0 GB to write" in fits.notes[0]


def test_dry_run_ends_with_the_problems(tmp_path, capsys):
    report = grid.main(["--methods", "TaskRes", "--datasets", "caltech101", "--shots", "1", "--seeds", "1",
                        "--backbone", str(tmp_path / "w.pt"), "--data", str(tmp_path), "--output", str(tmp_path / "o"),
                        "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert len(report.problems) == 2 and out[-3] == "2 problem(s) before this can run:"
    assert "caltech101: dataset folder" in out[-2] and f"backbone {tmp_path / 'w.pt'}: no such file" in out[-1]

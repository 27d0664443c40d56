"""Runs that are not comparable with published numbers are marked, never shown as "ours"."""
import json
import os

import pytest

import train
from tests.conftest import train_args
from tests.fixtures.synthetic_datasets import write_dataset
from tools.aggregate import collect

pytestmark = pytest.mark.slow  # every test here trains end to end


def test_a_run_on_a_built_split_is_recorded_and_kept_out_of_ours(tmp_path, tiny_clip):
    root = tmp_path / "data"
    write_dataset("DescribableTextures", str(root), num_classes=4, per_class=12, with_split_file=False)
    out = tmp_path / "out" / "dtd" / "TaskRes" / "tiny_vit_2shots" / "seed1"
    train.main(train_args(str(root), tiny_clip, str(out), dataset="dtd", shots=2, epochs=1))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["official_split"] is False and metrics["engine"] in ("dassl", "builtin")
    rows = collect(str(tmp_path / "out")).rows
    assert len(rows) == 1 and rows[0].variant.endswith("built-split")  # (this tiny run is also modified)
    assert os.path.samefile(rows[0].path, out)

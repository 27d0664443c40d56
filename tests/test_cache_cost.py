"""The grid's encoder cost (``scripts.reproduce.cost``): views needed with the cache, minus what is cached."""
import os

import pytest

from scripts.reproduce.cost import DATASET_SIZES, cell_configs, grid_cost
from scripts.reproduce.planning import GridRequest, plan_runs

pytestmark = pytest.mark.slow  # every test here trains end to end

SMALL = ["DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "TRAINER.TaskRes.PREC", "fp32",
         "TRAIN.PRINT_FREQ", "100"]


def test_cost_counts_views_once_and_subtracts_the_cache(data_root, tiny_clip, tmp_path):
    import train

    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    cells = plan_runs(GridRequest(("TaskRes", "CLIP_Adapter"), ("caltech101",), (1,), (1,), tiny_clip, data_root, out,
                                  cache, size=32, epochs=2, extra=SMALL))
    classes, n_test = DATASET_SIZES["Caltech101"]
    before = grid_cost(cell_configs(cells), cache)
    # Both methods share the 2-view training entry and the test entry: each view counted once.
    assert before["cached_total_views"] == before["to_encode_views"] == classes * 1 * 2 + n_test
    # The original codes encode the train set every epoch and the test set, per run.
    assert before["original_views"] == 2 * (classes * 1 * 2 + n_test)
    train.main(list(cells[0].argv))
    assert os.path.isdir(cache)
    after = grid_cost(cell_configs(cells), cache)
    assert after["to_encode_views"] == 0 and after["cached_total_views"] == before["cached_total_views"]

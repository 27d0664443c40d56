"""Run one ``train.py`` command in this process and record its peak memory next to its metrics.

Used by the benchmarks so that every measured run is a fresh process (peak RSS is per process).
    python benchmarks/run_one.py RESULT.json -- <train.py arguments>
"""
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    result_path, argv = sys.argv[1], sys.argv[3:]
    start = time.time()
    import torch

    import train

    train.main(argv)
    metrics = json.loads(Path(argv[argv.index("--output-dir") + 1], "metrics.json").read_text())
    result = {"metrics": metrics, "in_process_s": time.time() - start,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None}
    Path(result_path).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

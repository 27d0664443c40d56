"""Result tooling: aggregate a tree of runs, build the paper's tables and plots, write a report.

``python -m tools.report OUTPUT_ROOT --out RESULTS.md`` is the one command; the modules below are
its parts (``aggregate`` -> ``tables`` / ``plots`` -> ``report``), with the published numbers in
``published.csv`` (read by ``published``), the methods' names from the runs (``methods``; ``legacy`` for
runs from before they were recorded) and the dataset and track names in ``names``. It reads run outputs only:
no import of the training code or torch (docs/reports.md).
"""

"""Result tooling: aggregate a tree of runs, build the paper's tables and plots, write a report.

``python -m tools.report OUTPUT_ROOT --out RESULTS.md`` is the one command: ``aggregate`` -> ``tables`` / ``plots``
-> ``report``, with ``published`` (the paper's numbers), ``methods`` and ``legacy`` (method names, from the runs or
frozen for old runs) and ``names``. No import of the training code or torch (docs/reports.md).
"""

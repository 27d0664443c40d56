"""Run bookkeeping, between the methods and ``train.py``: a run's identity (what can change its result), its
folder (named for the recipe, the protocol and any deviation), reuse of finished runs, the folder's lock and
FAILED mark, and recipe resolution from each method's declaration.

    python -m bookkeeping recipe TaskRes imagenet 16           # the recipe run as one pasteable command
    python -m bookkeeping plan --seeds "1 2" -- TRAIN_ARGS     # per seed: state, folder, changes (launchers)
"""

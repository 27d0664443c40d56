"""Run bookkeeping, between the methods and ``train.py``: a run's identity (what can change its result), its
folder (named for the recipe, the protocol and any deviation), reuse of finished runs, the folder's lock and
FAILED mark, and recipe resolution from each method's declaration. Its command line: ``__main__.py``.
"""

"""The layering contract: imports point down only (engine <- datasets <- features <- trainers <- bookkeeping <-
train.py <- scripts); tools read run outputs and import no project layer and no torch.

Every import counts, function-local ones included (a local import hides a cycle, it does not remove it).
"""
import ast
import os
import sys
from typing import Dict, Iterator, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ("engine", "datasets", "features", "trainers", "bookkeeping", "train", "scripts")
# What each top-level unit may import from the project, besides itself.
ALLOWED: Dict[str, Set[str]] = {unit: set(ORDER[:i]) for i, unit in enumerate(ORDER)}
ALLOWED["scripts"] |= {"tools"}          # the demo and the grid print reports
ALLOWED["tools"] = set()                 # reads metrics.json and log.txt only
ALLOWED["benchmarks"] = set(ORDER) | {"tools"}
ALLOWED["examples"] = {"engine", "datasets", "features", "trainers"}  # a method kept outside trainers/
HEAVY = {"torch", "torchvision", "open_clip"}  # tools must run where only the results folder is


def unit_of(path: str) -> str:
    rel = os.path.relpath(path, ROOT)
    top = rel.split(os.sep)[0]
    return "train" if top == "train.py" else top


def python_files() -> Iterator[str]:
    for unit in ALLOWED:
        if unit == "train":
            yield os.path.join(ROOT, "train.py")
            continue
        for folder, _, files in os.walk(os.path.join(ROOT, unit)):
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def imported_modules(path: str) -> Iterator[Tuple[int, str]]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def violations(files) -> list:
    found = []
    for path in files:
        unit = unit_of(path)
        for line, module in imported_modules(path):
            top = module.split(".")[0]
            if top in ALLOWED and top != unit and top not in ALLOWED[unit]:
                found.append(f"{os.path.relpath(path, ROOT)}:{line} ({unit}) imports {module}")
            if unit == "tools" and top in HEAVY:
                found.append(f"{os.path.relpath(path, ROOT)}:{line} (tools) imports {module}")
    return found


def test_imports_point_down_only():
    assert violations(python_files()) == []


@pytest.mark.parametrize("unit,module", [("engine", "datasets"), ("datasets", "trainers"), ("features", "trainers"),
                                         ("trainers", "bookkeeping"), ("bookkeeping", "train"),
                                         ("train", "scripts.reproduce.grid"), ("tools", "trainers"),
                                         ("tools", "torch")])
def test_an_upward_import_is_caught_even_inside_a_function(tmp_path, monkeypatch, unit, module):
    folder = tmp_path / unit
    folder.mkdir()
    bad = folder / "bad.py"
    bad.write_text(f"def f():\n    import {module}\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    assert violations([str(bad)]) == [f"{unit}{os.sep}bad.py:2 ({unit}) imports {module}"]

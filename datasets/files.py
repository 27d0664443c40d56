"""The files the dataset layer reads and writes in a user's data tree, and their formats.

We read CoOp/Dassl's files and never write one they read; ours are JSON (no class of ours inside) under names
they never open (``split_built_<Name>.json``, ``split_fewshot/shot_K-seed_S.taskres.json``,
``imagenet/lists.taskres.json``), so a tree we used still works with plain CoOp. ``written_by_us`` recognises
the pickles earlier versions wrote under CoOp's names. Each file: DATASETS.md.
"""
import hashlib
import json
import os
import pickle
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from engine import PICKLED_DATUM_MODULES, Datum, datum_pickle_engine, write_json

from .errors import DatasetFileError

FEWSHOT_FORMAT = "taskres-fewshot"
LISTS_FORMAT = "taskres-imagenet-lists"
FORMAT_VERSION = 1
# File names: CoOp/Dassl's few-shot pickle (we read it, never write it); ours beside it, under a name CoOp
# never opens; a split built from raw annotations (not ``split_zhou_*``: it is not the published split).
FEWSHOT_PICKLE = "shot_{shots}-seed_{seed}.pkl"
FEWSHOT_RECORD = "shot_{shots}-seed_{seed}.taskres.json"
BUILT_SPLIT = "split_built_{name}.json"

Row = Tuple[str, int, str]


def sha256_file(fpath: str) -> str:
    with open(fpath, "rb") as f:  # a split or few-shot file: a few MB at most
        return hashlib.sha256(f.read()).hexdigest()


# -- Reading JSON with a reason on failure -------------------------------------------------------------------
def read_json_with_sha(fpath: str) -> Tuple[object, str]:
    """(parsed JSON, sha256 of the bytes). ``ValueError`` with a short reason when it is not valid JSON."""
    with open(fpath, "rb") as f:
        data = f.read()
    if not data.strip():
        raise ValueError("the file is empty")
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"not valid JSON, truncated? ({err})") from None
    return obj, hashlib.sha256(data).hexdigest()


def check_rows(obj, keys: Sequence[str]) -> Dict[str, List[Row]]:
    """``{key: [[path, label, classname], ...]}`` for each of ``keys``; ``ValueError`` naming what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected an object with keys {', '.join(keys)}, found {type(obj).__name__}")
    out = {}
    for key in keys:
        if key not in obj:
            raise ValueError(f"it has no {key!r} list (keys found: {', '.join(map(str, obj)) or 'none'})")
        rows = obj[key]
        if not isinstance(rows, list):
            raise ValueError(f"{key!r} is not a list")
        for i, row in enumerate(rows):
            if not (isinstance(row, (list, tuple)) and len(row) == 3 and isinstance(row[0], str)
                    and isinstance(row[1], int) and not isinstance(row[1], bool) and isinstance(row[2], str)):
                raise ValueError(f"entry {i} of {key!r} is not [path, label, class name]: {str(row)[:80]}")
        out[key] = [tuple(row) for row in rows]
    return out


# -- Our few-shot record -------------------------------------------------------------------------------------
def to_rows(items: Iterable[Datum], base_dir: str) -> List[list]:
    return [[os.path.relpath(d.impath, base_dir).replace(os.sep, "/"), int(d.label), d.classname] for d in items]


def write_fewshot_record(fpath: str, meta: dict, base_dir: str, **lists: Optional[Sequence[Datum]]) -> None:
    """Write our few-shot file: ``meta`` plus each non-None list as rows relative to ``base_dir``."""
    record = {"format": FEWSHOT_FORMAT, "version": FORMAT_VERSION, **meta}
    record.update({key: to_rows(items, base_dir) for key, items in lists.items() if items is not None})
    write_json(record, fpath, indent=None)


def read_fewshot_record(fpath: str, keys: Sequence[str]) -> dict:
    """Our few-shot file with ``keys`` checked (as row lists); ``ValueError`` with the reason when unusable."""
    obj, _ = read_json_with_sha(fpath)
    if not isinstance(obj, dict) or obj.get("format") != FEWSHOT_FORMAT:
        raise ValueError(f"not a {FEWSHOT_FORMAT} file")
    if obj.get("version") != FORMAT_VERSION:
        raise ValueError(f"format version {obj.get('version')!r}, this code reads {FORMAT_VERSION}")
    obj.update(check_rows(obj, keys))
    return obj


# -- Pickles written by CoOp/Dassl (or by earlier versions of this project) ----------------------------------
_SAFE_GLOBALS = frozenset({
    ("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
    ("builtins", "set"), ("builtins", "int"), ("builtins", "str"),
    ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
})


class _DatumUnpickler(pickle.Unpickler):
    """Restore few-shot/preprocessed pickles: ``Datum`` from the modules the engine lists (Dassl's for CoOp/Dassl
    pickles, the built-in engine's for earlier versions of ours), plain containers, nothing else."""

    def find_class(self, module: str, name: str):
        if name == "Datum" and module in PICKLED_DATUM_MODULES:
            return Datum
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it holds an unexpected object {module}.{name}, not only Datum lists")


def load_datum_pickle(fpath: str) -> dict:
    """A ``{"train": [Datum, ...], ...}`` pickle by CoOp, Dassl or an earlier version of ours;
    ``DatasetFileError`` naming the file when it is truncated, not a pickle, or holds anything else."""
    try:
        with open(fpath, "rb") as f:
            data = _DatumUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, MemoryError) as err:
        raise DatasetFileError(f"{fpath} cannot be read: {_reason(err)}") from None
    if not isinstance(data, dict):
        raise DatasetFileError(f"{fpath} cannot be read: it holds a {type(data).__name__}, not a dict of Datum lists")
    return data


def _reason(err: BaseException) -> str:
    if isinstance(err, EOFError):
        return "the file ends early (truncated)"
    return (str(err).strip() or type(err).__name__).splitlines()[0]


def written_by_us(fpath: str) -> bool:
    """Whether a CoOp-named pickle was written by an earlier version of this project (CoOp cannot read it)."""
    try:
        with open(fpath, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return datum_pickle_engine(head) == "builtin"  # earlier versions pickled the built-in engine's Datum


def pickle_rows(data: dict, key: str, fpath: str) -> List[Datum]:
    """``data[key]`` as a list of Datum, or ``DatasetFileError`` naming the file and the missing key."""
    items = data.get(key)
    if not isinstance(items, list) or not all(isinstance(d, Datum) for d in items):
        raise DatasetFileError(f"{fpath} has no {key!r} list of Datum items")
    return items

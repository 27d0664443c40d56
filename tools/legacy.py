"""Historical data: how the methods were named and judged when runs recorded no ``schema`` (schema 1).

What the 14 methods declared at schema 1 (``LABEL``, ``TABLE_ORDER``, ``SHOT_FREE``, ``SELECTS_ON_VAL``), frozen so
that old runs keep reporting exactly as they did: do not update it when a method's declaration changes (new runs
record their own). It also names the methods of ``published.csv`` that no run names. See docs/reports.md.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence


class MethodNames(NamedTuple):
    label: str
    table_order: Optional[int]
    shot_free: bool = False
    selects_on_val: bool = False


SCHEMA_1: Dict[str, MethodNames] = {
    "ZeroshotCLIP": MethodNames("Zero-shot CLIP", 10, shot_free=True),
    "ZeroshotCLIP2": MethodNames("Zero-shot CLIP (ensemble)", 11, shot_free=True),
    "LinearProbeCLIP": MethodNames("Linear probe", 20, selects_on_val=True),
    "CoOp": MethodNames("CoOp", 30),
    "CLIP_Adapter": MethodNames("CLIP-Adapter", 40),
    "TipAdapter": MethodNames("Tip-Adapter", 50, selects_on_val=True),
    "TipAdapterF": MethodNames("Tip-Adapter-F", 60, selects_on_val=True),
    "TaskRes": MethodNames("TaskRes", 70),
    "TaskRes*": MethodNames("TaskRes*", 70),  # TaskRes from an enhanced base (an ``_enhanced`` folder)
    "CLAP": MethodNames("CLAP", None),
    "CLIP_LoRA": MethodNames("CLIP-LoRA", None),
    "CoCoOp": MethodNames("CoCoOp", None),
    "LPP": MethodNames("LP++", None, selects_on_val=True),
    "TaskResEnhancedBase": MethodNames("TaskResEnhancedBase", None),
    "ZSLP": MethodNames("ZS-LP", None),
}

SCHEMA_1_TRACK = "fewshot_val"  # the track of a schema-1 run that records none (the paper's, before ``paper``)


def names_of(method: str) -> MethodNames:
    """A schema-1 method's names; a method unknown then is named by itself, unordered, never shot-free."""
    return SCHEMA_1.get(method) or MethodNames(method, None)


def schema1_tracks(method: str, track: Optional[str], read_validation: bool, all_tracks: Sequence[str]) -> List[str]:
    """The tracks a schema-1 run serves: every track when the method never selects on validation data and the
    run read none (one run serves every table, as then); otherwise only the track it ran in."""
    if not read_validation and not names_of(method).selects_on_val:
        return list(all_tracks)
    return [track or SCHEMA_1_TRACK]

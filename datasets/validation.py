"""The set a method may select hyper-parameters or epochs on: the val split, never the test set.

Datasets whose val *is* their test set (ImageNet, as in CoOp) provide ``heldout_val`` instead, drawn
by the dataset layer beside the few-shot set (``base.draw_heldout_val``) and kept in the few-shot file,
so a method asking for it costs nothing more than reading that file.

Selection tracks (``DATASET.TRACK``): which validation data a run may read at all.

- ``fewshot_val`` (default; the paper's protocol): ``min(K, 4)`` images per class, CoOp's few-shot
  val (for ImageNet the held-out images above); each method selects as its original does.
- ``valfree``: no validation data at all; a method that selects (``selects_on_val`` in its SPEC)
  switches to one fixed, documented setting for every dataset and shot count. Asking for validation
  items in this track is an error, so a method cannot silently select on data the track forbids.
"""
import logging
from collections import Counter
from typing import List

from .errors import ValidationSplitError

logger = logging.getLogger(__name__)

TRACKS = ("fewshot_val", "valfree")
DEFAULT_TRACK = "fewshot_val"


def check_track(track: str) -> str:
    """The track name, or ``ValueError`` naming the valid ones."""
    if track not in TRACKS:
        raise ValueError(f"DATASET.TRACK must be one of {', '.join(TRACKS)}, not {track!r}")
    return track


def satisfied_tracks(track: str, read_validation: bool, selects_on_val: bool) -> List[str]:
    """The tracks whose rules a run satisfies: a run of a method that never selects on validation data and read
    none satisfies both (one run serves both tables); any other run only the track it ran in. Runs written before
    tracks were recorded are judged by the same rule (their ``track`` the paper's, ``fewshot_val``)."""
    return [track] if (read_validation or selects_on_val) else list(TRACKS)


def validation_items(dataset, name: str = "", track: str = DEFAULT_TRACK) -> List:
    """``dataset.val`` when it shares no image with test, else the dataset's held-out val.

    Raises ``ValidationSplitError`` when neither exists (a test-only dataset, or a full-data run that
    leaves no training image out): selecting on the test set is never an option; and in the ``valfree``
    track, where no validation data may be read.
    """
    name = name or type(dataset).__name__
    if check_track(track) == "valfree":
        raise ValidationSplitError(f"{name}: the valfree track reads no validation data; the method must use its "
                                   "fixed setting (declare selects_on_val=True and switch on DATASET.TRACK)")
    test_paths = {d.impath for d in dataset.test}
    val = list(dataset.val or [])
    if val and not any(d.impath in test_paths for d in val):
        return val
    held_out = getattr(dataset, "heldout_val", None)
    if held_out is None:
        raise ValidationSplitError(f"{name}: its val split is its test set, and it provides no held-out val "
                                   "(test-only dataset); hyper-parameters are never chosen on test")
    if not held_out:
        raise ValidationSplitError(f"{name}: its val split is its test set and every train image is used for "
                                   "training; no held-out val is left to choose hyper-parameters on")
    per_class = max(Counter(d.label for d in held_out).values())
    logger.info("%s: val is the test set; selecting on %d held-out train images instead (%d per class)",
                name, len(held_out), per_class)
    return list(held_out)

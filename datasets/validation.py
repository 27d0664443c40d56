"""The set a method may select hyper-parameters or epochs on: the val split, never the test set.

Datasets whose val *is* their test set (ImageNet, as in CoOp) provide ``heldout_val`` instead, drawn
by the dataset layer beside the few-shot set (``base.draw_heldout_val``) and kept in the few-shot file,
so a method asking for it costs nothing more than reading that file.
"""
import logging
from collections import Counter
from typing import List

from .errors import ValidationSplitError

logger = logging.getLogger(__name__)


def validation_items(dataset, name: str = "") -> List:
    """``dataset.val`` when it shares no image with test, else the dataset's held-out val.

    Raises ``ValidationSplitError`` when neither exists (a test-only dataset, or a full-data run that
    leaves no training image out): selecting on the test set is never an option.
    """
    name = name or type(dataset).__name__
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

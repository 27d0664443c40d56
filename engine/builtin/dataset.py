"""``Datum`` and ``DatasetBase`` with Dassl's semantics (few-shot sampling, split by label, class names).

Attribute names match Dassl's (``_impath``, ``_label``, ...) so that few-shot pickles written by
CoOp/Dassl restore into our ``Datum`` unchanged.
"""
import logging
import random
from collections import defaultdict
from typing import Dict, List

logger = logging.getLogger(__name__)


class Datum:
    """One labelled image: path, label, domain and class name (read-only properties, as Dassl's)."""

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        self._impath = impath
        self._label = int(label)
        self._domain = int(domain)
        self._classname = classname

    impath = property(lambda self: self._impath)
    label = property(lambda self: self._label)
    domain = property(lambda self: self._domain)
    classname = property(lambda self: self._classname)

    def __repr__(self) -> str:
        return f"Datum(impath={self._impath!r}, label={self._label}, classname={self._classname!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Datum) and (self.impath, self.label, self.domain, self.classname) == (
            other.impath, other.label, other.domain, other.classname)

    def __hash__(self) -> int:
        return hash((self.impath, self.label, self.domain, self.classname))


class DatasetBase:
    """A dataset as three lists of ``Datum``: train_x (labelled train), val and test."""

    def __init__(self, train_x=None, val=None, test=None):
        self.train_x, self.val, self.test = train_x, val, test
        self.num_classes = max(item.label for item in train_x) + 1  # labels are 0-based
        self.lab2cname: Dict[int, str] = dict(sorted({d.label: d.classname for d in train_x}.items()))
        self.classnames: List[str] = list(self.lab2cname.values())

    def generate_fewshot_dataset(self, *data_sources, num_shots: int = -1):
        """``num_shots`` items per label from each data source, as Dassl: each label, in order of first appearance,
        draws ``random.sample(items, K)`` from the global ``random`` state (seeded by ``set_random_seed``), so the
        picks match the published few-shot files. A label with fewer than K items keeps all of them."""
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else data_sources
        logger.info("Creating a %d-shot dataset", num_shots)
        output = []
        short_labels = set()
        for data_source in data_sources:
            by_label = defaultdict(list)  # labels in order of first appearance
            for item in data_source:
                by_label[item.label].append(item)
            dataset = []
            for label, items in by_label.items():
                if len(items) >= num_shots:
                    dataset.extend(random.sample(items, num_shots))
                else:
                    short_labels.add(label)
                    dataset.extend(items)
            output.append(dataset)
        if short_labels:
            logger.warning("%d class(es) have fewer than %d images; all their images are used",
                           len(short_labels), num_shots)
        return output[0] if len(output) == 1 else output

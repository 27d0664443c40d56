"""``Datum`` and ``DatasetBase`` with Dassl's semantics (few-shot sampling, split by label, class names).

Attribute names match Dassl's (``_impath``, ``_label``, ...) so that few-shot pickles written by
CoOp/Dassl restore into our ``Datum`` unchanged.
"""
import logging
import random
from collections import OrderedDict, defaultdict
from typing import Dict, List, Sequence, Tuple

logger = logging.getLogger(__name__)


class Datum:
    """One labelled image: path, label, domain and class name."""

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        self._impath = impath
        self._label = int(label)
        self._domain = int(domain)
        self._classname = classname

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def __repr__(self) -> str:
        return f"Datum(impath={self._impath!r}, label={self._label}, classname={self._classname!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Datum) and (self.impath, self.label, self.domain, self.classname) == (
            other.impath, other.label, other.domain, other.classname)

    def __hash__(self) -> int:
        return hash((self.impath, self.label, self.domain, self.classname))


class DatasetBase:
    """A dataset as three lists of ``Datum``: train_x (labelled train), val and test."""

    dataset_dir = ""
    domains: List[str] = []

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> List[str]:
        return self._classnames

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source: Sequence[Datum]) -> int:
        """Number of classes = largest label + 1 (labels are 0-based)."""
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source: Sequence[Datum]) -> Tuple[Dict[int, str], List[str]]:
        mapping = {item.label: item.classname for item in data_source}
        labels = sorted(mapping)
        return {label: mapping[label] for label in labels}, [mapping[label] for label in labels]

    def generate_fewshot_dataset(self, *data_sources, num_shots: int = -1, repeat: bool = False):
        """Sample ``num_shots`` items per label from each data source, as Dassl does.

        Labels are visited in order of first appearance and each draws ``random.sample(items, K)``
        from the global ``random`` state (seeded by ``set_random_seed``), so the picks match the
        published few-shot files. A label with fewer than K items keeps all of them (or draws with
        replacement when ``repeat``).
        """
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else data_sources
        logger.info("Creating a %d-shot dataset", num_shots)
        output = []
        short_labels = set()
        for data_source in data_sources:
            dataset = []
            for label, items in self.split_dataset_by_label(data_source).items():
                if len(items) >= num_shots:
                    dataset.extend(random.sample(items, num_shots))
                elif repeat:
                    dataset.extend(random.choices(items, k=num_shots))
                else:
                    short_labels.add(label)
                    dataset.extend(items)
            output.append(dataset)
        if short_labels:
            logger.warning("%d class(es) have fewer than %d images; all their images are used",
                           len(short_labels), num_shots)
        return output[0] if len(output) == 1 else output

    @staticmethod
    def split_dataset_by_label(data_source: Sequence[Datum]) -> "OrderedDict[int, List[Datum]]":
        """Group items by label, labels in order of first appearance."""
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return OrderedDict(output)

    @staticmethod
    def split_dataset_by_domain(data_source: Sequence[Datum]) -> "OrderedDict[int, List[Datum]]":
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return OrderedDict(output)

"""``DataManager``: builds the dataset from the registry and its train/val/test loaders (Dassl semantics)."""
import logging
from typing import Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from engine.images import read_image

from .dataset import Datum
from .registry import DATASET_REGISTRY
from .transforms import build_transform

logger = logging.getLogger(__name__)


def build_dataset(cfg):
    """Instantiate ``DATASET_REGISTRY[cfg.DATASET.NAME](cfg)``."""
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


class DatasetWrapper(Dataset):
    """Reads and transforms images; an item is ``{"img", "label", "domain", "impath", "index"}``."""

    def __init__(self, cfg, data_source: Sequence[Datum], transform=None, is_train: bool = False):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> dict:
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        img0 = read_image(item.impath)
        if self.transform is None:
            output["img"] = img0
            return output
        if self.k_tfm > 1:
            for k in range(self.k_tfm):
                output["img" if k == 0 else f"img{k + 1}"] = self.transform(img0)
        else:
            output["img"] = self.transform(img0)
        if self.return_img0:
            from torchvision.transforms import functional as F
            output["img0"] = F.to_tensor(img0)
        return output


def build_data_loader(cfg, sampler_type: str = "SequentialSampler", data_source=None, batch_size: int = 64,
                      n_domain: int = 0, n_ins: int = 2, tfm=None, is_train: bool = True,
                      dataset_wrapper=None) -> DataLoader:
    """A loader over ``data_source``; training drops the last partial batch only when the set holds at
    least one full batch (Dassl's rule, so tiny few-shot sets still train)."""
    wrapper = (dataset_wrapper or DatasetWrapper)(cfg, data_source, transform=tfm, is_train=is_train)
    if sampler_type == "RandomSampler":
        sampler = RandomSampler(wrapper)
    elif sampler_type == "SequentialSampler":
        sampler = SequentialSampler(wrapper)
    else:
        raise ValueError(f"Unsupported sampler {sampler_type!r} (built-in engine: RandomSampler, SequentialSampler)")
    return DataLoader(
        wrapper,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        drop_last=is_train and len(data_source) >= batch_size,
        pin_memory=torch.cuda.is_available() and cfg.USE_CUDA,
        persistent_workers=False,
    )


class DataManager:
    """Dataset + transforms + loaders for the train (x), val and test splits."""

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        dataset = build_dataset(cfg)
        tfm_train = custom_tfm_train or build_transform(cfg, is_train=True)
        tfm_test = custom_tfm_test or build_transform(cfg, is_train=False)
        self.train_loader_x = build_data_loader(
            cfg, sampler_type=cfg.DATALOADER.TRAIN_X.SAMPLER, data_source=dataset.train_x,
            batch_size=cfg.DATALOADER.TRAIN_X.BATCH_SIZE, tfm=tfm_train, is_train=True,
            dataset_wrapper=dataset_wrapper)
        self.train_loader_u = None
        self.val_loader: Optional[DataLoader] = None
        if dataset.val:
            self.val_loader = build_data_loader(
                cfg, sampler_type=cfg.DATALOADER.TEST.SAMPLER, data_source=dataset.val,
                batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=tfm_test, is_train=False,
                dataset_wrapper=dataset_wrapper)
        self.test_loader = build_data_loader(
            cfg, sampler_type=cfg.DATALOADER.TEST.SAMPLER, data_source=dataset.test,
            batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=tfm_test, is_train=False,
            dataset_wrapper=dataset_wrapper)
        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        self.tfm_train = tfm_train
        self.tfm_test = tfm_test
        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def num_source_domains(self) -> int:
        return self._num_source_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    def show_dataset_summary(self, cfg) -> None:
        ds = self.dataset
        logger.info("Dataset: %s | classes: %d | train_x: %d | val: %d | test: %d",
                    cfg.DATASET.NAME, self.num_classes, len(ds.train_x), len(ds.val or []), len(ds.test))

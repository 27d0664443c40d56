"""``DataManager``: builds the dataset from the registry and its train/val/test loaders (Dassl semantics)."""
import logging
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from engine.images import read_image

from .dataset import Datum
from .registry import DATASET_REGISTRY
from .transforms import build_transform

logger = logging.getLogger(__name__)


def build_dataset(cfg):
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


class DatasetWrapper(Dataset):
    """Reads and transforms images; an item is ``{"img", "label", "domain", "impath", "index"}``."""

    def __init__(self, cfg, data_source: Sequence[Datum], transform=None, is_train: bool = False):
        self.data_source = data_source
        self.transform = transform
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
        for k in range(max(self.k_tfm, 1)):
            output["img" if k == 0 else f"img{k + 1}"] = self.transform(img0)
        if self.return_img0:
            from torchvision.transforms import functional as F
            output["img0"] = F.to_tensor(img0)
        return output


SAMPLERS = {"RandomSampler": RandomSampler, "SequentialSampler": SequentialSampler}


def build_data_loader(cfg, sampler_type: str = "SequentialSampler", data_source=None, batch_size: int = 64,
                      tfm=None, is_train: bool = True, dataset_wrapper=None) -> DataLoader:
    """A loader over ``data_source``; training drops the last partial batch only when the set holds at
    least one full batch (Dassl's rule, so tiny few-shot sets still train)."""
    if sampler_type not in SAMPLERS:
        raise ValueError(f"Unsupported sampler {sampler_type!r} (built-in engine: {', '.join(SAMPLERS)})")
    wrapper = (dataset_wrapper or DatasetWrapper)(cfg, data_source, transform=tfm, is_train=is_train)
    return DataLoader(wrapper, batch_size=batch_size, sampler=SAMPLERS[sampler_type](wrapper),
                      num_workers=cfg.DATALOADER.NUM_WORKERS, drop_last=is_train and len(data_source) >= batch_size,
                      pin_memory=torch.cuda.is_available() and cfg.USE_CUDA)


class DataManager:
    """Dataset + transforms + loaders for the train (x), val and test splits."""

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None):
        self.dataset = dataset = build_dataset(cfg)
        self.tfm_train = custom_tfm_train or build_transform(cfg, is_train=True)
        self.tfm_test = custom_tfm_test or build_transform(cfg, is_train=False)

        def loader(data_source, split_cfg, tfm, is_train: bool) -> DataLoader:
            return build_data_loader(cfg, sampler_type=split_cfg.SAMPLER, data_source=data_source,
                                     batch_size=split_cfg.BATCH_SIZE, tfm=tfm, is_train=is_train,
                                     dataset_wrapper=dataset_wrapper)

        self.train_loader_x = loader(dataset.train_x, cfg.DATALOADER.TRAIN_X, self.tfm_train, True)
        self.val_loader = loader(dataset.val, cfg.DATALOADER.TEST, self.tfm_test, False) if dataset.val else None
        self.test_loader = loader(dataset.test, cfg.DATALOADER.TEST, self.tfm_test, False)
        self.num_classes = dataset.num_classes
        self.lab2cname = dataset.lab2cname
        if cfg.VERBOSE:
            logger.info("Dataset: %s | classes: %d | train_x: %d | val: %d | test: %d", cfg.DATASET.NAME,
                        self.num_classes, len(dataset.train_x), len(dataset.val or []), len(dataset.test))

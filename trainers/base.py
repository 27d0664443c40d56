"""``ClipTrainer``: what every CLIP method shares, written once.

A method subclasses it, declares itself once (``SPEC = declare(...)``, ``trainers/spec.py``) and builds a
*head*: an ``nn.Module`` mapping float32 image features ``[B, D]`` to logits. The base class loads the
backbone, checks the trainable set, runs the loss step (AMP when asked), swaps image loaders for
cached-feature loaders, evaluates (mapping labels for ImageNet-A/-R) and records timings for ``metrics.json``.
"""
import difflib
import logging
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from datasets import select_validation
from engine import (
    CheckpointError,
    DataManager,
    ImageDatasetWrapper,
    TrainerX,
    TrainingLoop,
    build_data_loader,
    build_evaluator,
    build_lr_scheduler,
    build_optimizer,
    build_transform,
    compute_accuracy,
)
from features import FeatureLoader, FeatureSource
from trainers.backbone import (
    ClipBackbone,
    PreProjectionEncoder,
    autocast_context,
    grad_scaler,
    load_backbone,
    resolve_precision,
)
from trainers.spec import SPEC_FIELDS, MethodSpec, SpecError
from trainers.templates import templates_for
from trainers.text_classifier import build_zero_shot_classifier

logger = logging.getLogger(__name__)

# The feature cache's keys that change where and how fast features are made, never what they are.
CACHE_LAUNCH_KEYS = ("FEATURE_CACHE.DIR", "FEATURE_CACHE.BATCH_SIZE", "FEATURE_CACHE.NUM_WORKERS",
                     "FEATURE_CACHE.MAX_GB")


def validation_items(trainer, paper: str = "dassl_val") -> List:
    """The items a method may select hyper-parameters or epochs on, never test: the only way a trainer gets them.

    The rule is ``datasets.select_validation``'s (``paper``: what the method's original selected on). The
    trainer records that it read validation data, and what, for ``metrics.json``.
    """
    cfg = trainer.cfg
    items, trainer.selection = select_validation(trainer.dm.dataset, cfg.DATASET.NAME, cfg.DATASET.TRACK, paper,
                                                 int(cfg.DATASET.NUM_SHOTS), int(cfg.SEED))
    trainer.read_validation = True
    return items


def add_clip_config(cfg) -> None:
    """Config keys shared by every CLIP method (the feature cache; only ENABLED and NUM_VIEWS change results)."""
    from yacs.config import CfgNode as CN

    if "FEATURE_CACHE" in cfg:
        return
    cfg.FEATURE_CACHE = CN()
    cfg.FEATURE_CACHE.ENABLED = True
    cfg.FEATURE_CACHE.DIR = ""  # "" -> <OUTPUT_DIR>/feature_cache; the launch scripts share one per output root
    # Augmented views per training image. 0 (default, the paper's protocol): one view per epoch
    # (V = OPTIM.MAX_EPOCH), so training sees what the original's fresh augmentation shows it.
    # k > 0: fast mode, epoch e trains on view e % k (recorded in metrics.json, marked in reports).
    cfg.FEATURE_CACHE.NUM_VIEWS = 0
    cfg.FEATURE_CACHE.BATCH_SIZE = 0     # views per encoder call when extracting; 0: 512 on CUDA, 64 on a CPU
    cfg.FEATURE_CACHE.NUM_WORKERS = -1   # extraction loader workers; -1: from the machine's cores
    cfg.FEATURE_CACHE.MAX_GB = 0.0       # bound on the cache folder's size (0: none; free disk space is always checked)


def add_method_config(cfg, node: str, **defaults) -> None:
    """A method's ``cfg.TRAINER.<node>`` with ``defaults`` (in their order), unless it exists (idempotent)."""
    from yacs.config import CfgNode as CN

    if node not in cfg.TRAINER:
        cfg.TRAINER[node] = CN(defaults)


def check_state_shapes(module: nn.Module, state: dict, method: str) -> None:
    """One clear line when a checkpoint's tensors are not this model's (other keys, or other shapes: e.g. a LoRA
    rank or a class count that differs), instead of torch's multi-line report."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"This checkpoint does not fit {method}'s model: missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}; check --trainer and the method's settings")
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
    if shapes:
        raise CheckpointError(f"The checkpoint's tensor shapes differ from this {method} configuration "
                              f"({'; '.join(shapes[:2])}); use the settings it was trained with")


class ClipClassifier(nn.Module):
    """Images or features in, logits out: ``head(encoder.encode_image(x))`` for images, ``head(x)`` for features.

    ``encoder`` (a ``ClipBackbone``, or a ``PreProjectionEncoder`` for a head that takes the features before the
    image projection) is no submodule, so checkpoints hold only what the method trains. ``image_adapted``: the
    method trains through the image encoder, so the graph is kept and cached features (made by the frozen
    encoder) are refused.
    """

    def __init__(self, encoder: Union[ClipBackbone, PreProjectionEncoder], head: nn.Module,
                 image_adapted: bool = False):
        super().__init__()
        self.head = head
        self.encoder = encoder
        self.image_adapted = image_adapted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = self.encoder.encode_image(x, grad=self.image_adapted)
        elif self.image_adapted:
            raise RuntimeError("The image encoder is adapted: precomputed image features cannot be used")
        return self.head(x)


# The engine's TrainerX supplies the model registry, device and data; the project's TrainingLoop (loop,
# checkpoints, resume, evaluation) goes first so it is the same code under Dassl and the built-in engine,
# whose TrainerX already is a TrainingLoop.
_TRAINER_BASES = (TrainerX,) if issubclass(TrainerX, TrainingLoop) else (TrainingLoop, TrainerX)


class ClipTrainer(*_TRAINER_BASES):
    """The shared trainer. A method's class declares ``SPEC`` (a ``MethodSpec``) and no other UPPER_CASE class
    attribute unless a base class has it: a leftover or misspelt declaration fails when the class is made."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        known = {"SPEC"} | {name for base in cls.__mro__[1:] for name in vars(base)}
        odd = [name for name in vars(cls) if re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and name not in known]
        if odd:
            hints = [f"{n} (SPEC field {m[0]}?)" if (m := difflib.get_close_matches(n.lower(), SPEC_FIELDS, 1)) else n
                     for n in odd]
            raise SpecError(f"{cls.__name__}: {', '.join(hints)} is no trainer attribute; a method declares itself "
                            "in SPEC = declare(...) (docs/add-a-method.md)")
        if "SPEC" in vars(cls) and not isinstance(cls.SPEC, MethodSpec):
            raise SpecError(f"{cls.__name__}.SPEC must be made by declare(...), not {type(cls.SPEC).__name__}")

    # The method's prompt templates: ``templates_for``'s policy keywords (none: the dataset's own template).
    template_policy: Dict[str, object] = {}
    # The method's original keeps the last partial batch: so do its cached-feature training loaders.
    keep_last_batch = False

    @property
    def spec(self) -> MethodSpec:
        return type(self).SPEC

    def __init__(self, cfg):
        super().__init__(cfg)
        # Evaluation is the project's under both engines (Dassl's __init__ builds its own evaluator).
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)

    def build_data_loader(self) -> None:
        """The engine's DataManager with the project's image reader (a corrupt file stops with its name; Dassl's
        retries forever). A val loader only for ``TEST.FINAL_MODEL best_val``, from ``validation_items``: the
        engine's is ``dataset.val``, for ImageNet the test list."""
        self.use_data_manager(DataManager(self.cfg, dataset_wrapper=ImageDatasetWrapper))
        self.val_items = validation_items(self) if self.cfg.TEST.FINAL_MODEL == "best_val" else None
        self.val_loader = None if self.val_items is None else build_data_loader(
            self.cfg, sampler_type=self.cfg.DATALOADER.TEST.SAMPLER, data_source=self.val_items,
            batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE, tfm=build_transform(self.cfg, is_train=False),
            is_train=False, dataset_wrapper=ImageDatasetWrapper)

    # ---- what a method provides -------------------------------------------------------------
    def build_head(self) -> nn.Module:
        raise NotImplementedError

    def fit(self) -> None:
        """Training-free methods fit here (e.g. a search on val)."""

    def build_optimization(self, head: nn.Module):
        """``(optimizer, scheduler)`` for the head; stepped by ``update_lr`` after each epoch's last batch (Dassl's
        convention)."""
        optim = build_optimizer(head, self.cfg.OPTIM)
        return optim, build_lr_scheduler(optim, self.cfg.OPTIM)

    def metrics_extra(self) -> dict:
        """Method-specific values worth recording in ``metrics.json`` (chosen hyper-parameters, ...)."""
        return {}

    def adapted_encoders(self) -> Tuple[str, ...]:
        """The declared ``adapted_encoders``, or a subset a method chooses from its config."""
        return tuple(self.spec.adapted_encoders)

    @property
    def valfree(self) -> bool:
        """``DATASET.TRACK valfree``: a method that selects on val uses its fixed setting instead."""
        return self.cfg.DATASET.TRACK == "valfree"

    @property
    def image_adapted(self) -> bool:
        return "image" in self.adapted_encoders()

    # ---- model ---------------------------------------------------------------------------------
    @property
    def head(self) -> nn.Module:
        return self.model.head

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.spec.config_node]

    def build_model(self) -> None:
        cfg = self.cfg
        start = time.time()
        self.precision = resolve_precision(self.method_cfg.PREC, self.device)
        self.clip = load_backbone(cfg.MODEL.BACKBONE.NAME, self.device, self.precision, input_size=cfg.INPUT.SIZE[0])
        self.timings = {"load_backbone_s": time.time() - start}
        dataset = self.dm.dataset
        pre = self.spec.cache.image_features == "pre_projection"
        encoder = PreProjectionEncoder(self.clip) if pre else self.clip
        self.feature_source = FeatureSource(cfg, encoder, dataset, self.timings)
        # Variants covering a subset of the training classes (ImageNet-A/-R) evaluate a model built for
        # the full class list and keep the logits of their classes.
        self.eval_label_map = getattr(dataset, "label_map_to_train_classes", None)
        self.classnames = list(getattr(dataset, "train_classnames", None) or dataset.classnames)
        self.templates = self.dataset_templates()
        head = self.build_head()
        self.model = ClipClassifier(encoder, head, image_adapted=self.image_adapted).to(self.device)
        self.check_trainable(head)
        if self.spec.adapted_encoders:
            self.check_adapted_encoders()
        optim = sched = None
        if any(p.requires_grad for p in head.parameters()):
            optim, sched = self.build_optimization(head)
        if head.state_dict():  # something to save (training-free zero-shot heads have nothing)
            self.register_model(self.spec.checkpoint_name, head, optim, sched)
        self.scaler = grad_scaler(self.precision, self.device)
        if cfg.FEATURE_CACHE.ENABLED:
            self.use_feature_loaders()

    def dataset_templates(self) -> Tuple[str, ...]:
        return templates_for(self.cfg.DATASET.NAME, **self.template_policy)

    def text_classifier(self, **options) -> torch.Tensor:
        """The zero-shot classifier of this run's class names and templates (``build_zero_shot_classifier``)."""
        return build_zero_shot_classifier(self.clip, self.classnames, self.templates, **options)

    def check_trainable(self, head: nn.Module) -> None:
        """Fail loudly when the trainable set is not what the method declares."""
        trainable = sorted(n for n, p in head.named_parameters() if p.requires_grad)
        leaked = [n for n, p in self.clip.model.named_parameters() if p.requires_grad]
        if leaked:
            raise RuntimeError(f"{type(self).__name__}: backbone parameters are trainable: {leaked[:5]}")
        declared, pattern = self.spec.trainable, self.spec.trainable_pattern
        if declared is not None and trainable != sorted(declared):
            raise RuntimeError(f"{type(self).__name__} must train exactly {sorted(declared)}, "
                               f"but the trainable parameters are {trainable}")
        if pattern is not None:
            odd = [n for n in trainable if not re.fullmatch(pattern, n)]
            if odd or not trainable:
                raise RuntimeError(f"{type(self).__name__} must train parameters named like "
                                   f"{pattern!r}, but the trainable parameters are {odd or 'none'}")
        n_train = sum(p.numel() for p in head.parameters() if p.requires_grad)
        n_total = n_train + sum(p.numel() for p in self.clip.model.parameters())
        logger.info("Trainable parameters: %s / %s total (%s)", f"{n_train:,}", f"{n_total:,}", ", ".join(trainable) or "none")

    def check_adapted_encoders(self) -> None:
        """Fail loudly unless the encoders whose output depends on a trainable parameter are exactly the
        declared ones (a wrongly undeclared image encoder would be read, stale, from the feature cache).

        One probe input per encoder, forward only, in eval mode (no dropout draw moves the RNG): an output
        requires grad iff a trainable parameter took part.
        """
        training = self.model.training
        self.model.eval()
        with torch.enable_grad():
            image = torch.zeros(1, 3, self.clip.image_size, self.clip.image_size, device=self.device)
            depends = {"image": self.clip.encode_image(image, grad=True).requires_grad,
                       "text": self.clip.encode_tokens(self.clip.tokenize(["a photo."]), grad=True).requires_grad}
        self.model.train(training)
        found = sorted(name for name, yes in depends.items() if yes)
        if found != sorted(self.adapted_encoders()):
            raise RuntimeError(f"{type(self).__name__} declares the adapted encoders {sorted(self.adapted_encoders())}, "
                               f"but trainable parameters change {found or 'none'}")
        self.cache_info["adapted_encoders"] = found
        if self.image_adapted:
            self.cache_info["images_from_cache"] = False

    # ---- feature cache (features.FeatureSource) ----------------------------------------------
    @property
    def cache_info(self) -> dict:
        """What the cache did in this run, for ``metrics.json``."""
        return self.feature_source.info

    def plain_features(self, split: str, items: Sequence) -> Tuple[torch.Tensor, torch.Tensor]:
        """Float32 features of ``items`` under the test transform (one view) and their labels, on the device."""
        entry = self.feature_source.get(split, items, build_transform(self.cfg, is_train=False), 1, None)
        return entry["features"][0].float().to(self.device), entry["labels"].to(self.device)

    def use_feature_loaders(self) -> None:
        """Replace the val/test image loaders by lazy loaders over cached features: an evaluation-only run
        encodes only the split it evaluates. The training loader is replaced when training starts."""
        if self.image_adapted:  # features of the frozen encoder would be wrong: images are encoded every time
            logger.info("The image encoder is adapted: images are encoded at every step, not read from the cache")
            return
        ds, bs = self.dm.dataset, self.cfg.DATALOADER.TEST.BATCH_SIZE
        if self.val_items and "val" in self.spec.cache.splits:  # only from validation_items, never ds.val
            self.val_loader = self.feature_source.eval_loader("val", self.val_items, bs, self.device)
        self.test_loader = self.feature_source.eval_loader("test", ds.test, bs, self.device)

    def train_views(self) -> int:
        """Views per training image: ``FEATURE_CACHE.NUM_VIEWS`` or, when 0, the method's pool or one per epoch."""
        return self.feature_source.train_views(self.spec.cache.pool or None, self.max_epoch)

    def use_train_features(self) -> None:
        if not self.cfg.FEATURE_CACHE.ENABLED or self.image_adapted:
            why = "image encoder adapted: no cache" if self.image_adapted else "no cache"
            self.feature_source.record_protocol(f"fresh augmentation every epoch ({why})")
            return
        request = self.spec.cache
        if request.train_views == "none" or isinstance(self.train_loader_x, FeatureLoader):
            return
        loader = self.feature_source.train_loader(request.train_views != "plain", request.pool or None,
                                                  self.spec.training_free, self.max_epoch,
                                                  self.cfg.DATALOADER.TRAIN_X.BATCH_SIZE, self.device)
        if loader is not None:
            loader.drop_last = loader.drop_last and not self.keep_last_batch
            self.train_loader_x = loader

    # ---- training ------------------------------------------------------------------------------
    def before_epoch(self) -> None:
        if hasattr(self.train_loader_x, "set_epoch"):
            self.train_loader_x.set_epoch(self.epoch)

    def run_epoch(self) -> None:
        start = time.time()
        super().run_epoch()
        self.timings["epochs_s"] = self.timings.get("epochs_s", 0.0) + time.time() - start
        self.timings["epochs_run"] = self.timings.get("epochs_run", 0) + 1

    def compute_loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, label)

    def forward_backward(self, batch) -> dict:
        x, label = self.parse_batch_train(batch)
        with autocast_context(self.device, self.scaler is not None):
            logits = self.model(x)
            loss = self.compute_loss(logits, label)
        if self.scaler is None:
            self.model_backward_and_update(loss)
        else:
            self.model_zero_grad()
            self.detect_anomaly(loss)
            self.scaler.scale(loss).backward()
            for name in self.get_model_names():
                self.scaler.step(self._optims[name])
            self.scaler.update()
        if self.spec.lr_step_every_batch or (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item()}

    def train(self, *args, **kwargs) -> None:
        self._train_start = time.time()
        self._train_s_before = 0.0  # training time spent before a resume (restored from the resume state)
        self.use_train_features()
        if not self.spec.training_free:
            super().train(*args, **kwargs)
            self.timings["train_s"] = self._train_s_before + time.time() - self._train_start
            return
        self.fit()
        if self.get_model_names():
            self.save_model(0, self.output_dir)
        self.timings["train_s"] = time.time() - self._train_start
        if not self.cfg.TEST.NO_TEST:
            self.test()

    # ---- evaluation ----------------------------------------------------------------------------
    def model_inference(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.eval_label_map is not None:
            logits = logits[:, torch.as_tensor(self.eval_label_map, device=logits.device)]
        return logits

    def test(self, split: Optional[str] = None) -> float:
        start, extracted = time.time(), self.timings.get("extract_s", 0.0)
        result = super().test(split)
        # A lazy loader may encode the split's features during the call: that time is the extraction phase's,
        # so the phases of the closing line stay disjoint.
        encoding = self.timings.get("extract_s", 0.0) - extracted
        self.timings[f"eval_{self.last_results['split']}_s"] = time.time() - start - encoding
        return result

    # ---- resume --------------------------------------------------------------------------------
    def extra_resume_state(self) -> dict:
        elapsed = self._train_s_before + time.time() - self._train_start
        return {"timings": {"train_s": elapsed, "epochs_s": self.timings.get("epochs_s", 0.0),
                            "epochs_run": self.timings.get("epochs_run", 0)}}

    def load_extra_resume_state(self, state: dict) -> None:
        # The time spent before the interruption counts, so metrics.json covers the whole run.
        timings = state.get("timings") or {}
        self._train_s_before = float(timings.get("train_s", 0.0))
        self.timings["epochs_s"] = float(timings.get("epochs_s", 0.0))
        self.timings["epochs_run"] = int(timings.get("epochs_run", 0))

    def resume_ignored_keys(self) -> tuple:
        """Besides the engine's: the cache's launch keys, the other methods' config nodes (a method added later
        must not stop a resume) and this method's launch-only keys."""
        node = self.spec.config_node
        others = tuple(f"TRAINER.{k}" for k in self.cfg.TRAINER if k not in ("NAME", node))
        return super().resume_ignored_keys() + CACHE_LAUNCH_KEYS + others + self.spec.launch_only_keys

    # ---- checkpoints ---------------------------------------------------------------------------
    def checkpoint_metadata(self) -> dict:
        return {**super().checkpoint_metadata(), "method": type(self).__name__,
                "backbone": self.cfg.MODEL.BACKBONE.NAME, "dataset": self.cfg.DATASET.NAME,
                "classnames": list(self.classnames), "shots": int(self.cfg.DATASET.NUM_SHOTS),
                "seed": int(self.cfg.SEED)}

    def load_state_for_eval(self, name: str, checkpoint: dict) -> None:
        theirs = checkpoint.get("classnames")
        if theirs is not None and list(theirs) != list(self.classnames):
            if not self.spec.class_agnostic:
                raise CheckpointError(f"This checkpoint was trained on {len(theirs)} classes of "
                                      f"{checkpoint.get('dataset')} but the evaluation expects {len(self.classnames)} "
                                      "other classes")
            logger.info("%s's state is class-agnostic: trained on %d classes of %s, evaluated on %d classes of %s",
                        type(self).__name__, len(theirs), checkpoint.get("dataset"), len(self.classnames),
                        self.cfg.DATASET.NAME)
        if checkpoint.get("backbone") not in (None, self.cfg.MODEL.BACKBONE.NAME):
            raise CheckpointError(f"This checkpoint was trained with backbone {checkpoint['backbone']}, "
                                  f"not {self.cfg.MODEL.BACKBONE.NAME}; pass --backbone {checkpoint['backbone']}")
        check_state_shapes(self._models[name], checkpoint["state_dict"], type(self).__name__)
        self._models[name].load_state_dict(checkpoint["state_dict"])

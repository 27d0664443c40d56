"""Classification evaluation: accuracy, error, macro-F1, optional per-class accuracy and confusion matrix."""
import logging
from collections import OrderedDict, defaultdict
from typing import Dict

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

logger = logging.getLogger(__name__)


def compute_accuracy(output: torch.Tensor, target: torch.Tensor, topk=(1,)):
    """Top-k accuracy in percent for each k."""
    maxk = max(topk)
    batch_size = target.size(0)
    if isinstance(output, (tuple, list)):
        output = output[0]
    _, pred = output.topk(maxk, 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
    return [correct[:k].reshape(-1).float().sum(0) * 100.0 / batch_size for k in topk]


class Classification:
    """Accumulates predictions over batches; ``evaluate()`` logs Dassl's ``* accuracy: X%`` lines."""

    def __init__(self, cfg, lab2cname=None, **kwargs):
        self.cfg = cfg
        self._lab2cname = lab2cname
        self.reset()

    def reset(self) -> None:
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []
        self._per_class = defaultdict(list) if self.cfg.TEST.PER_CLASS_RESULT else None

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        pred = mo.max(1)[1]
        matches = pred.eq(gt).int()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.cpu().tolist())
        self._y_pred.extend(pred.cpu().tolist())
        if self._per_class is not None:
            for label, match in zip(gt.cpu().tolist(), matches.cpu().tolist()):
                self._per_class[label].append(match)

    def evaluate(self) -> Dict[str, float]:
        if self._total == 0:
            raise RuntimeError("Evaluation saw no samples: the evaluation split is empty")
        acc = 100.0 * self._correct / self._total
        macro_f1 = 100.0 * f1_score(self._y_true, self._y_pred, average="macro", labels=np.unique(self._y_true))
        results = OrderedDict(accuracy=acc, error=100.0 - acc, macro_f1=macro_f1)
        logger.info("=> result\n* total: %s\n* correct: %s\n* accuracy: %.1f%%\n* error: %.1f%%\n* macro_f1: %.1f%%",
                    f"{self._total:,}", f"{self._correct:,}", acc, 100.0 - acc, macro_f1)
        if self._per_class is not None:
            accs = []
            logger.info("=> per-class result")
            for label in sorted(self._per_class):
                res = self._per_class[label]
                class_acc = 100.0 * sum(res) / len(res)
                accs.append(class_acc)
                name = self._lab2cname.get(label, str(label)) if self._lab2cname else str(label)
                logger.info("* class: %d (%s)\ttotal: %d\tcorrect: %d\tacc: %.1f%%",
                            label, name, len(res), sum(res), class_acc)
            results["perclass_accuracy"] = float(np.mean(accs))
            logger.info("* average: %.1f%%", results["perclass_accuracy"])
        if self.cfg.TEST.COMPUTE_CMAT:
            cmat = confusion_matrix(self._y_true, self._y_pred, normalize="true")
            import os
            save_path = os.path.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(cmat, save_path)
            logger.info("Confusion matrix is saved to %s", save_path)
        return results


def build_evaluator(cfg, **kwargs) -> Classification:
    if cfg.TEST.EVALUATOR != "Classification":
        raise ValueError(f"Unknown evaluator {cfg.TEST.EVALUATOR!r}; the built-in engine has 'Classification'")
    return Classification(cfg, **kwargs)

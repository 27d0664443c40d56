"""Classification evaluation: accuracy, error, macro-F1, optional per-class accuracy and confusion matrix."""
import logging
import os
from collections import OrderedDict
from typing import Dict

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

logger = logging.getLogger(__name__)


def compute_accuracy(output: torch.Tensor, target: torch.Tensor, topk=(1,)):
    """Top-k accuracy in percent for each k."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    _, pred = output.topk(max(topk), 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
    return [correct[:k].reshape(-1).float().sum(0) * 100.0 / target.size(0) for k in topk]


class Classification:
    """Accumulates predictions over batches; ``evaluate()`` logs Dassl's ``* accuracy: X%`` lines."""

    def __init__(self, cfg, lab2cname=None, **kwargs):
        self.cfg = cfg
        self._lab2cname = lab2cname or {}
        self.reset()

    def reset(self) -> None:
        self._y_true, self._y_pred = [], []

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        self._y_true.extend(gt.cpu().tolist())
        self._y_pred.extend(mo.max(1)[1].cpu().tolist())

    def evaluate(self) -> Dict[str, float]:
        if not self._y_true:
            raise RuntimeError("Evaluation saw no samples: the evaluation split is empty")
        y_true, y_pred = np.array(self._y_true), np.array(self._y_pred)
        matches = y_true == y_pred
        total, correct = len(y_true), int(matches.sum())
        acc = 100.0 * correct / total
        macro_f1 = 100.0 * f1_score(y_true, y_pred, average="macro", labels=np.unique(y_true))
        results = OrderedDict(accuracy=acc, error=100.0 - acc, macro_f1=macro_f1)
        logger.info("=> result\n* total: %s\n* correct: %s\n* accuracy: %.1f%%\n* error: %.1f%%\n* macro_f1: %.1f%%",
                    f"{total:,}", f"{correct:,}", acc, 100.0 - acc, macro_f1)
        if self.cfg.TEST.PER_CLASS_RESULT:
            accs = []
            logger.info("=> per-class result")
            for label in np.unique(y_true):
                res = matches[y_true == label]
                accs.append(100.0 * res.sum() / len(res))
                logger.info("* class: %d (%s)\ttotal: %d\tcorrect: %d\tacc: %.1f%%",
                            label, self._lab2cname.get(label, str(label)), len(res), res.sum(), accs[-1])
            results["perclass_accuracy"] = float(np.mean(accs))
            logger.info("* average: %.1f%%", results["perclass_accuracy"])
        if self.cfg.TEST.COMPUTE_CMAT:
            save_path = os.path.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(confusion_matrix(y_true, y_pred, normalize="true"), save_path)
            logger.info("Confusion matrix is saved to %s", save_path)
        return results


def build_evaluator(cfg, **kwargs) -> Classification:
    if cfg.TEST.EVALUATOR != "Classification":
        raise ValueError(f"Unknown evaluator {cfg.TEST.EVALUATOR!r}; the built-in engine has 'Classification'")
    return Classification(cfg, **kwargs)

"""Classification metrics, hand-written (tests compare them with scikit-learn's)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def classification_metrics(preds: Sequence[int], labels: Sequence[int], names: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 (F1 of each class that occurs in labels or preds, averaged), Matthews correlation,
    precision/recall/F1 of each class (`f1_<name>`), and for two classes `f1`, the F1 of the second (positive)
    class, as GLUE reports MRPC and QQP. A class never predicted has precision 0 (scikit-learn's zero_division=0)."""
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    num_labels = len(names)
    if not labels:
        return {"accuracy": 0.0, "macro_f1": 0.0, "mcc": 0.0}
    tp = [0] * num_labels
    fp = [0] * num_labels
    fn = [0] * num_labels
    for p, y in zip(preds, labels):
        if p == y:
            tp[y] += 1
        else:
            fp[p] += 1
            fn[y] += 1
    f1 = [2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) if tp[c] + fp[c] + fn[c] else 0.0 for c in range(num_labels)]
    present = [f1[c] for c in range(num_labels) if tp[c] + fp[c] + fn[c]]
    out = {"accuracy": sum(tp) / len(labels), "macro_f1": sum(present) / len(present), "mcc": matthews(preds, labels)}
    for c, name in enumerate(names):
        out[f"precision_{name}"] = tp[c] / (tp[c] + fp[c]) if tp[c] + fp[c] else 0.0
        out[f"recall_{name}"] = tp[c] / (tp[c] + fn[c]) if tp[c] + fn[c] else 0.0
        out[f"f1_{name}"] = f1[c]
    if num_labels == 2:
        out["f1"] = f1[1]
    return out


def matthews(preds: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation, multi-class (Gorodkin 2004; what scikit-learn computes). 0 for any constant
    prediction whatever the class balance, which is why the stability guard's chance level uses it."""
    n = len(labels)
    true_counts, pred_counts = Counter(labels), Counter(preds)
    correct = sum(p == y for p, y in zip(preds, labels))
    cov_yp = correct * n - sum(true_counts[c] * pred_counts[c] for c in true_counts)
    cov_pp = n * n - sum(v * v for v in pred_counts.values())
    cov_yy = n * n - sum(v * v for v in true_counts.values())
    if cov_pp == 0 or cov_yy == 0:
        return 0.0
    return cov_yp / math.sqrt(cov_pp * cov_yy)

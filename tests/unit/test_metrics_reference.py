"""The hand-written metrics against the libraries everyone else computes them with (scikit-learn, scipy, seqeval):
a metric that disagrees with them would rank trials differently from what users expect."""

from __future__ import annotations

import random

import pytest

from raytune_llm.tasks.metrics import classification_metrics
from raytune_llm.tasks.regression import pearson, spearman
from raytune_llm.tasks.token_classification import entity_scores

sklearn_metrics = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")
seqeval_metrics = pytest.importorskip("seqeval.metrics")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_labels", [2, 3, 5])
def test_classification_metrics_match_scikit_learn(seed: int, num_labels: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    labels = [rng.randrange(num_labels) for _ in range(n)]
    # Mostly right, some classes never predicted: the cases where definitions differ.
    preds = [y if rng.random() < 0.6 else rng.randrange(max(1, num_labels - 1)) for y in labels]
    names = [f"c{i}" for i in range(num_labels)]
    m = classification_metrics(preds, labels, names)
    present = sorted(set(labels) | set(preds))
    assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, preds))
    assert m["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(labels, preds, average="macro", labels=present,
                                                                    zero_division=0))
    assert m["mcc"] == pytest.approx(sklearn_metrics.matthews_corrcoef(labels, preds), abs=1e-12)
    p, r, f, _ = sklearn_metrics.precision_recall_fscore_support(labels, preds, labels=list(range(num_labels)),
                                                                 zero_division=0)
    for i, name in enumerate(names):
        assert m[f"precision_{name}"] == pytest.approx(p[i])
        assert m[f"recall_{name}"] == pytest.approx(r[i])
        assert m[f"f1_{name}"] == pytest.approx(f[i])
    if num_labels == 2:
        assert m["f1"] == pytest.approx(sklearn_metrics.f1_score(labels, preds, zero_division=0))  # MRPC's F1


def test_constant_predictions_have_zero_mcc_like_scikit_learn() -> None:
    labels = [0] * 7 + [1] * 3
    assert classification_metrics([0] * 10, labels, ["a", "b"])["mcc"] == sklearn_metrics.matthews_corrcoef(
        labels, [0] * 10) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed: int) -> None:
    rng = random.Random(seed)
    x = [rng.gauss(0, 1) for _ in range(40)]
    y = [v + rng.gauss(0, 1) for v in x]
    y[3] = y[7]  # ties, where Spearman's definitions can differ
    assert pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y).statistic)
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic)


@pytest.mark.parametrize("seed", range(8))
def test_entity_scores_match_seqeval_default_mode(seed: int) -> None:
    rng = random.Random(seed)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "B-ORG"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(20)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in seq] for seq in gold]
    s = entity_scores(pred, gold)
    assert s["f1"] == pytest.approx(seqeval_metrics.f1_score(gold, pred))
    assert s["precision"] == pytest.approx(seqeval_metrics.precision_score(gold, pred))
    assert s["recall"] == pytest.approx(seqeval_metrics.recall_score(gold, pred))

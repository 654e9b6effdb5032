"""Evaluation metrics against sklearn and against answers worked out by hand."""
import json, math, warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from relgraph.evaluate import (METRICS, choose_threshold, confusion_figure, embedding_figure, evaluate, evaluate_multiclass,
                               evaluate_regression, roc_pr_figure, summarize_seeds)
from relgraph.tasktypes import TASK_TYPES, task_type

Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
S = np.array([0.1, 0.6, 0.7, 0.4, 0.2, 0.9, 0.3, 0.65])


def test_exact_small_answers():
    r = evaluate(Y, S, threshold=0.5)
    # predicted positive at 0.5: rows 1, 2, 5, 7 -> TP = 2 (rows 2, 5), FP = 2 (rows 1, 7), FN = 1 (row 3), TN = 3
    assert r["confusion_matrix"] == [[3, 2], [1, 2]]
    assert (r["precision"], r["recall"], r["accuracy"], r["n"]) == (0.5, 2 / 3, 5 / 8, 8)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert r["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 5) / 2)
    # AUROC: of the 15 (positive, negative) pairs, the positive scores higher in 5 + 5 + 3 = 13
    assert r["auroc"] == pytest.approx(13 / 15)
    assert (r["positive_rate"], r["predicted_positive_rate"]) == (3 / 8, 4 / 8)
    json.dumps(r)  # plain values only: it goes into metrics.json


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500); s = rng.random(500) + 0.5 * y
    t = 0.8
    r = evaluate(y, s, threshold=t)
    p = (s >= t).astype(int)
    assert r["auroc"] == skm.roc_auc_score(y, s)
    assert r["average_precision"] == skm.average_precision_score(y, s)
    assert r["f1"] == skm.f1_score(y, p)
    assert r["accuracy"] == skm.accuracy_score(y, p)
    assert r["balanced_accuracy"] == skm.balanced_accuracy_score(y, p)
    assert r["precision"] == skm.precision_score(y, p) and r["recall"] == skm.recall_score(y, p)
    assert r["confusion_matrix"] == skm.confusion_matrix(y, p).tolist()
    assert r["classification_report"] == skm.classification_report(y, p, output_dict=True)


def test_choose_threshold_matches_brute_force():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200); s = np.round(rng.random(200) + 0.4 * y, 2)
    for metric in ("f1", "accuracy", "balanced_accuracy"):
        best = max(METRICS[metric](y, s, t) for t in np.unique(s))
        assert METRICS[metric](y, s, choose_threshold(y, s, metric, tol=0)) == pytest.approx(best)
    youden = max(skm.recall_score(y, s >= t) + skm.recall_score(1 - y, s < t) - 1 for t in np.unique(s))
    t = choose_threshold(y, s, tol=0)                  # the default is Youden's J
    assert skm.recall_score(y, s >= t) + skm.recall_score(1 - y, s < t) - 1 == pytest.approx(youden)
    t = choose_threshold(y, s)                         # within the default tolerance of the best J
    assert skm.recall_score(y, s >= t) + skm.recall_score(1 - y, s < t) - 1 >= youden - 0.01
    # F1 by threshold: 0.9 -> 2/4, 0.7 -> 4/5 (TP 2, FN 1), 0.65 -> 4/6, 0.6 -> 4/7, 0.4 -> 6/8 (TP 3, FP 2), lower: worse
    assert choose_threshold(Y, S, "f1") == 0.7
    assert METRICS["f1"](Y, S, 0.7) == pytest.approx(4 / 5)
    # J by threshold: 0.9 -> 1/3, 0.7 -> 2/3 (best), 0.65 -> 2/3 - 1/5, 0.4 -> 1 - 2/5
    assert choose_threshold(Y, S) == 0.7


def test_youden_is_not_degenerate_on_a_weak_signal():
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 1 / 3).astype(int); s = 1 / (1 + np.exp(-rng.normal(0.35 * y, 1.0)))
    ppr = {m: np.mean(s >= choose_threshold(y, s, m)) for m in ("f1", "youden")}
    assert ppr["f1"] > 0.6 and abs(ppr["youden"] - y.mean()) < 0.05


def test_single_class_is_nan_with_warning():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = evaluate([1, 1, 1], [0.2, 0.8, 0.9])
        t = choose_threshold([0, 0], [0.1, 0.2])
    assert math.isnan(r["auroc"]) and math.isnan(r["average_precision"])
    assert r["recall"] == 2 / 3 and r["confusion_matrix"] == [[0, 0], [1, 2]]
    assert t == 0.5
    msgs = " ".join(str(x.message) for x in w)
    assert "single class (all 1)" in msgs and "using the default threshold 0.5" in msgs


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="NaN label"):
        evaluate([0, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match="y_true has 3 values but y_score has 2"):
        evaluate([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        evaluate([], [])


def test_summarize_seeds():
    sm = summarize_seeds([dict(auroc=0.7), dict(auroc=0.8), dict(auroc=0.9)])
    assert sm["auroc"]["mean"] == pytest.approx(0.8) and sm["auroc"]["std"] == pytest.approx(0.1)
    assert sm["auroc"]["text"] == "0.800 ± 0.100" and sm["auroc"]["n"] == 3


def _inside(fig) -> bool:
    "Nothing clipped: everything the figure draws lies inside it."
    fig.draw_without_rendering(); b, box = fig.get_tightbbox(), fig.bbox_inches
    return box.x0 - 0.01 <= b.x0 and b.x1 <= box.x1 + 0.01 and box.y0 - 0.01 <= b.y0 and b.y1 <= box.y1 + 0.01


def _legend(ax) -> list[str]: return [t.get_text() for t in ax.get_legend().get_texts()]


def test_figures():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    rng = np.random.default_rng(0)
    fig = roc_pr_figure(Y, {"gnn": S, "mlp": rng.random(8)}, title="churn")
    roc, pr = fig.axes
    assert isinstance(fig, Figure) and fig.get_suptitle() == "churn" and _inside(fig)
    assert (roc.get_title(), pr.get_title()) == ("ROC curve", "precision-recall curve")
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in (roc, pr))
    assert _legend(roc)[0] == f"gnn (AUC = {skm.roc_auc_score(Y, S):.2f})" and _legend(roc)[-1] == "Chance level (AUC = 0.5)"
    assert _legend(pr)[0] == f"gnn (AP = {skm.average_precision_score(Y, S):.2f})" and _legend(pr)[-1] == "Chance level (AP = 0.38)"
    fig = confusion_figure(evaluate(Y, S)["confusion_matrix"], labels=["stays", "churns"], title="test split")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "2", "1", "2"] and _inside(fig)
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), fig.axes[1].get_ylabel()) == ("test split", "predicted label", "true label", "rows (count)")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["stays", "churns"]
    fig = confusion_figure(np.eye(4, dtype=int).tolist(), normalize=True)                  # multiclass, shares
    assert fig.axes[0].texts[0].get_text() == "1.00" and fig.axes[1].get_ylabel() == "share of the true class"
    fig = embedding_figure(rng.random((30, 5)), rng.integers(0, 2, 30))
    assert fig.axes[0].get_title() == "embeddings (t-SNE)" and fig.axes[0].get_xlabel() and _legend(fig.axes[0]) == ["label 0", "label 1"]
    with pytest.raises(ValueError, match="single class"):
        roc_pr_figure([1, 1], [0.2, 0.3])


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_and_multiclass_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=200); p = y + rng.normal(size=200)
    r = evaluate_regression(y, p)
    assert r["mae"] == skm.mean_absolute_error(y, p) and r["r2"] == skm.r2_score(y, p)
    assert r["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    yc = rng.integers(0, 4, 200); P = rng.dirichlet(np.ones(4), 200)
    m = evaluate_multiclass(yc, P)
    assert m["accuracy"] == skm.accuracy_score(yc, P.argmax(1))
    assert m["macro_f1"] == skm.f1_score(yc, P.argmax(1), average="macro")
    assert m["balanced_accuracy"] == skm.balanced_accuracy_score(yc, P.argmax(1))
    assert m["log_loss"] == pytest.approx(skm.log_loss(yc, P))
    assert m["confusion_matrix"] == skm.confusion_matrix(yc, P.argmax(1)).tolist()
    json.dumps(r); json.dumps(m)


def test_task_types_use_the_evaluate_metrics():
    bt, rt, mt = (TASK_TYPES[k] for k in ("binary_classification", "regression", "multiclass_classification"))
    rule = bt.decide(Y, S)
    assert rule == {"rule": "youden", "threshold": 0.7}
    ev = evaluate(Y, S, 0.7)
    assert bt.metrics(Y, S, rule) == {k: ev[k] for k in METRICS}
    assert bt.report(Y, S, rule)["confusion_matrix"] == ev["confusion_matrix"]
    assert (bt.val_metric, rt.val_metric, mt.val_metric) == ("auroc", "mae", "log_loss")
    assert (bt.higher_is_better, rt.higher_is_better, mt.higher_is_better) == (True, False, False)
    yc = np.array([0, 1, 2, 2]); P = np.full((4, 3), 1 / 3)
    assert mt.metrics(yc, P) == {k: v for k, v in evaluate_multiclass(yc, P).items() if k not in ("n", "confusion_matrix")}
    assert rt.metrics([1.0, 3.0], [2.0, 2.0]) == {"mae": 1.0, "rmse": 1.0, "r2": 0.0}
    assert task_type("regression") is rt


def test_heads_against_torch():
    import torch
    y = np.array([0, 0, 0, 1])
    h = task_type("binary_classification").head(y)
    lg = torch.tensor([0.3, -1.0, 2.0, 0.5])
    assert h.pos_weight == 3.0 and h.out_dim == 1
    ref = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0))(lg, torch.tensor(y, dtype=torch.float32))
    assert torch.isclose(h.loss(lg, torch.tensor(y)), ref)
    r = task_type("regression").head(np.array([1.0, 3.0]))
    assert (r.mean, r.std) == (2.0, 1.0) and r.score(torch.tensor([1.0])).item() == 3.0
    m = task_type("multiclass_classification").head(np.array([0, 1, 1, 1]), n_classes=3)
    lm = torch.randn(4, 3)
    ref = torch.nn.CrossEntropyLoss(weight=torch.tensor(m.class_weight))(lm, torch.tensor([0, 1, 1, 1]))
    assert m.out_dim == 3 and torch.isclose(m.loss(lm, torch.tensor([0.0, 1.0, 1.0, 1.0])), ref)
    assert torch.allclose(m.score(lm).sum(1), torch.ones(4))
    for hd in (h, r, m): json.dumps(hd.to_dict())

"""Link tasks end to end: the RelBench round trip (relbench's `evaluate` equals relgraph's MAP@K), metrics on hand-built
lists, planted future rows, the stated rules for bad input, and a baseline through `run_experiment`."""
import datetime as dt, os

import numpy as np
import polars as pl
import pytest
import relbench
import relbench.metrics

from relgraph.database import Database, TableSchema
from relgraph.experiment import check_predictions, resolve_config, run_experiment
from relgraph.io import save_relbench
from relgraph.linktasks import (LinkTask, load_link_task, make_interactions, relbench_pred, save_link_task,
                                user_item_purchase)
from relgraph.ranking import check_link_predictions, evaluate_links, hit_matrix, ranking_metrics
from relgraph.recommend import popularity_order, rank_items
from relgraph.registry import MODELS
from relgraph.synthetic import make_shop
from relgraph.tasktypes import TASK_TYPES, task_type

os.environ.setdefault("RELGRAPH_PROGRESS", "0")
TT = TASK_TYPES["link_prediction"]
BASELINES = ("popularity", "repeat", "itemknn")


@pytest.fixture(scope="module")
def shop():
    db = make_shop(300)
    task = user_item_purchase(db)
    return db, task, make_interactions(db, task)


@pytest.fixture(scope="module")
def runs(shop):
    return {m: MODELS[m]({"interactions": shop[2]}, TT) for m in BASELINES}


def test_relbench_evaluate_equals_relgraph_map(shop, runs, tmp_path):
    db, task, _ = shop
    save_relbench(db, tmp_path/"shop"); save_link_task(task, tmp_path/"shop")
    rt = relbench.load_dataset(tmp_path/"shop").load_task(task.name)
    assert rt.eval_k == task.eval_k == 10
    for m, (preds, info) in runs.items():
        ours = evaluate_links(preds, TT, info)
        for split in ("val", "test"):
            theirs = rt.evaluate(relbench_pred(preds, task, tmp_path/"shop", split), rt.get_table(split, mask_input_cols=False))
            assert abs(theirs["map"] - ours[f"{split}_map@10"]) < 1e-9, (m, split, theirs, ours[f"{split}_map@10"])
    back = load_link_task(tmp_path/"shop", task.name)
    assert [back.split(s).height for s in ("train", "val", "test")] == [task.split(s).height for s in ("train", "val", "test")]
    assert rt.get_table("test", mask_input_cols=False).df.shape[0] == task.split("test").height
    # the folder runs through the pipeline as a dataset: its stored link task, a baseline, RelBench's MAP again
    m = run_experiment(dict(dataset=str(tmp_path/"shop"), task=task.name, model="popularity"))
    assert abs(m["test_map@10"] - evaluate_links(runs["popularity"][0], TT)["test_map@10"]) < 1e-9


def test_metrics_on_hand_built_lists():
    y, pred = [[1, 2], [3], [4, 5, 6], []], [[2, 9, 1], [4, 3, 6], [7, 8, 9], [1, 2, 3]]
    r = ranking_metrics(y, pred, ks=(1, 3), n_items=10)
    assert r["map@3"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2 + 0) / 3)     # the row with no true item is dropped
    assert r["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert r["recall@1"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert r["ndcg@3"] == pytest.approx(((1 + 0.5) / (1 + 1 / np.log2(3)) + 1 / np.log2(3) + 0) / 3)
    assert r["hit_rate@1"] == pytest.approx(1 / 3) and r["mrr"] == pytest.approx((1 + 1 / 2) / 3)
    assert r["coverage@1"] == pytest.approx(3 / 10)                           # items 2, 4, 7 at rank 1
    # K beyond the list: the missing ranks are misses, precision still divides by K
    r = ranking_metrics([[1]], [[1]], ks=(5,))
    assert (r["precision@5"], r["map@5"], r["ndcg@5"], r["recall@5"]) == pytest.approx((0.2, 1.0, 1.0, 1.0))
    # relbench's own MAP on the same hits
    rng = np.random.default_rng(1)
    y = [list(rng.choice(30, rng.integers(1, 6), replace=False)) for _ in range(100)]
    p = np.stack([rng.permutation(30)[:10] for _ in range(100)])
    H, n = hit_matrix(y, p, 10)
    assert abs(relbench.metrics.map(H, n) - ranking_metrics(y, p, ks=(10,))["map@10"]) < 1e-12


def _plant(db, when, n=20):
    rv = db["review"]; top = rv["product_id"].mode()[0]
    extra = pl.DataFrame({"review_id": rv["review_id"].max() + 1 + np.arange(n), "customer_id": db["customer"]["customer_id"][:n],
                          "product_id": [top] * n, "review_time": [when] * n}).with_columns(pl.col("review_time").cast(rv.schema["review_time"]))
    return db._like({**{k: db[k] for k in db.table_names}, "review": pl.concat([rv, extra], how="diagonal_relaxed")})


def test_planted_future_rows_change_nothing_before_them(shop, runs):
    db, task, x = shop
    late = _plant(db, db.max_timestamp + dt.timedelta(days=1))                  # after every label window
    t2 = user_item_purchase(late)
    for s in ("train", "val", "test"): assert t2.split(s).equals(task.split(s))
    x2 = make_interactions(late, t2)
    assert (x2.matrix(db.test_timestamp) != x.matrix(db.test_timestamp)).nnz == 0
    mid = _plant(db, db.test_timestamp - dt.timedelta(hours=1))                 # after the val window, before test_timestamp
    t3 = user_item_purchase(mid)
    for s in ("train", "val"): assert t3.split(s).equals(task.split(s))
    for m in BASELINES:
        assert MODELS[m]({"interactions": x2}, TT)[0].equals(runs[m][0]), m
        p3 = MODELS[m]({"interactions": make_interactions(mid, t3)}, TT)[0]
        assert p3.filter(pl.col("split") != "test").equals(runs[m][0].filter(pl.col("split") != "test")), m


def _new_product_shop():
    "4 customers, 3 products (product 30 added on Feb 15), reviews Jan-Mar; split times set."
    d = lambda m, day: dt.datetime(2020, m, day)
    customer = pl.DataFrame({"customer_id": [1, 2, 3, 4], "signup_time": [d(1, 1)] * 3 + [d(2, 25)]})
    product = pl.DataFrame({"product_id": [10, 20, 30], "added": [d(1, 1), d(1, 1), d(2, 15)]})
    rv = [(1, 10, d(1, 5)), (2, 10, d(1, 8)), (1, 20, d(1, 12)), (3, 20, d(1, 20)), (2, 20, d(1, 28)), (1, 10, d(2, 2)),
          (3, 30, d(2, 16)), (2, 30, d(2, 18)), (1, 30, d(2, 21)), (3, 10, d(2, 24)), (4, 30, d(2, 26)), (2, 20, d(3, 1))]
    review = pl.DataFrame({"review_id": range(len(rv)), "customer_id": [r[0] for r in rv], "product_id": [r[1] for r in rv],
                           "review_time": [r[2] for r in rv]})
    schema = dict(customer=TableSchema("customer_id", time_col="signup_time"), product=TableSchema("product_id", time_col="added"),
                  review=TableSchema("review_id", {"customer_id": "customer", "product_id": "product"}, "review_time"))
    return Database(dict(customer=customer, product=product, review=review), schema, name="new-product",
                    val_timestamp=d(2, 10), test_timestamp=d(2, 20))


def test_bad_input_rules():
    db = _new_product_shop()
    task = user_item_purchase(db, timedelta=7)
    x = make_interactions(db, task)
    assert 30 in task.split("val")["product_id"].explode().to_list()           # bought after val: a true item ...
    for m in BASELINES:
        p, info = MODELS[m]({"interactions": x}, TT)
        val = p.filter(pl.col("split") == "val")
        assert 30 not in val["pred"].explode().to_list(), m                    # ... never recommended at val (added after it)
        assert val["pred"].list.len().to_list() == [2] * val.height             # K beyond the catalogue at t: every item once
        assert p.filter(pl.col("split") == "test")["pred"].list.len().max() == 3
        assert info["n_items"] == 3
    # an empty history at t: the catalogue at t in key order, the same list for everyone; no catalogue yet: empty lists
    t0 = dt.datetime(2020, 1, 2)
    assert x.upto(t0).height == 0 and x.matrix(t0).nnz == 0
    assert rank_items(None, popularity_order(x, t0), n_rows=2).tolist() == [[0, 1], [0, 1]]
    assert rank_items(None, popularity_order(x, dt.datetime(2019, 12, 1)), n_rows=2).tolist() == [[], []]
    # a source with no past interaction gets the popularity list (customer 4 signs up on Feb 25)
    p = MODELS["repeat"]({"interactions": x}, TT)[0]
    assert all(len(set(r)) == len(r) for r in p["pred"].to_list())
    # a user with no true item has no row (RelBench drops it); empty lists are refused at construction
    t = LinkTask("t", "customer", "customer_id", "product", "product_id", "review",
                 tables={"train": pl.DataFrame({"timestamp": [t0] * 2, "customer_id": [1, 2], "product_id": [[10], []]})})
    assert t.split("train")["customer_id"].to_list() == [1]
    with pytest.raises(ValueError, match="repeat an item"):
        check_link_predictions(pl.DataFrame({"entity": [1], "timestamp": [t0], "split": ["val"], "y": [[1]], "pred": [[2, 2]]}))
    with pytest.raises(ValueError, match="lack column"):
        check_predictions(pl.DataFrame({"entity": [1], "timestamp": [t0], "split": ["val"], "pred": [[2]]}))
    with pytest.raises(ValueError, match="needs a link task"):
        make_interactions(db, make_shop_churn(db))
    with pytest.raises(ValueError, match="both 'customer_id'"):
        LinkTask("t", "customer", "customer_id", "customer", "customer_id", "review")
    assert (task_type(task).name, task_type(task).val_metric) == (TT.name, TT.val_metric)


def make_shop_churn(db):
    from relgraph.tasks import churn_task
    return churn_task(db, "customer", "review", 7)


def test_baseline_through_run_experiment(tmp_path):
    cfg = dict(task="user-item-purchase", model="repeat", data={"customers": 150, "taste": 0.5})
    assert resolve_config(cfg)["builder"] == "none"
    m = run_experiment(cfg, tmp_path/"run")
    assert m["task_type"] == "link_prediction" and m["rule"]["k"] == 10
    for s in ("train", "val", "test"): assert 0 < m[f"{s}_map@10"] <= 1 and m[f"{s}_n"] > 0
    preds = pl.read_parquet(tmp_path/"run"/"predictions.parquet")
    assert preds.schema["pred"] == pl.List(pl.Int64) and (tmp_path/"run"/"figures"/"ranking.png").exists()
    with pytest.raises(ValueError, match="does not do link_prediction"):
        run_experiment(dict(task="user-item-purchase", model="lightgbm", data={"customers": 150}))


def test_synth_cli_writes_the_link_task(tmp_path):
    from relgraph.cli import main
    out = tmp_path/"shop"
    assert main(["synth", "--customers", "200", "--out", str(out), "--tasks", "user-churn,user-item-purchase", "--taste", "0"]) is None
    ds = relbench.load_dataset(out)
    assert ds.get_task_names() == ["user-churn", "user-item-purchase"]
    rt = ds.load_task("user-item-purchase")
    assert rt.eval_k == 10 and len(rt.get_table("val").df) == load_link_task(out, "user-item-purchase").split("val").height
    from relgraph.io import info_lines
    lines = info_lines(out)
    assert "task user-item-purchase (forecast, recommendation, customer -> product, window 91 days)" in lines
    assert any(l.startswith("  test: ") and l.endswith("product_id per row") for l in lines)

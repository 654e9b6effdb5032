"Snapshot sequences (relgraph.snapseq) and the shop's drift knob: point in time, the same rows for both models, the pipeline."
import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from relgraph.linktasks import Interactions, interactions, user_item_next_week
from relgraph.snapseq import SnapshotSequence, drifting_shop, fit_snapshots, seq_rows, snapshot_batch, snapshot_times
from relgraph.synthetic import make_shop
from relgraph.tasktypes import task_type


@pytest.fixture(scope="module")
def shop():
    db = make_shop(150, seed=1, rate=12.0, drift=0.5)
    task = user_item_next_week(db)
    return db, task, interactions(db, task)


def _plant(x: Interactions, when, src=0, dst=0) -> Interactions:
    row = pl.DataFrame({"src": [src], "dst": [dst], "time": [when]}, schema=x.events.schema)
    return Interactions(x.task, x.src_ids, x.dst_ids, pl.concat([x.events, row]).sort("time", maintain_order=True), x.tables, x.dst_since)


def _same(a: dict, b: dict) -> bool:
    d = lambda v: [w.to_dense() for w in v] if isinstance(v, tuple) else [v.to_dense()]
    return all(all(torch.equal(p, q) for p, q in zip(d(a[k]), d(b[k]))) for k in ("recent", "total", "counts", "repeat", "item_x"))


def test_a_future_row_changes_no_snapshot_and_no_score(shop):
    _, task, x = shop
    t = task.timestamps("test")[0]; src = np.arange(x.n_src)
    later = _plant(x, t + dt.timedelta(seconds=1))
    a, b = snapshot_batch(x, t, src, 4), snapshot_batch(later, t, src, 4)
    assert _same(a, b)
    m = SnapshotSequence(x.n_dst, 4, 8).eval()
    with torch.no_grad(): assert torch.equal(m(a), m(b))


def test_a_row_between_snapshots_reaches_only_the_later_ones(shop):
    _, task, x = shop
    t = task.timestamps("val")[0]; ts = snapshot_times(t, 3)
    mid = _plant(x, ts[1] - dt.timedelta(days=1), src=0, dst=1)      # after snapshot 0, before snapshot 1
    a, b = snapshot_batch(x, t, np.array([0]), 3), snapshot_batch(mid, t, np.array([0]), 3)
    diff = (a["total"].to_dense() != b["total"].to_dense()).any(1)   # rows: snapshot 0, 1, 2 of customer 0
    assert diff.tolist() == [False, True, True]


def test_both_models_are_judged_on_the_same_rows(shop):
    _, task, x = shop
    t = task.timestamps("val")[1]
    src, y, ranked = seq_rows(x, "val", t)
    table = x.tables["val"].filter(pl.col("timestamp") == t)
    assert sorted(src[ranked].tolist()) == sorted(table["src"].to_list())
    assert (y[ranked, :-1].sum(1) > 0).all() and ((y[:, :-1].sum(1) == 0).float() == y[:, -1]).all()


@pytest.mark.parametrize("length", [1, 3])
def test_fit_ranks_every_row_of_val_and_test(shop, length):
    _, task, x = shop
    tt = task_type("link_prediction").of_task(task)
    preds, info = fit_snapshots({"interactions": x}, tt, seed=0, length=length, train_timestamps=3, dim=8, epochs=2, device="cpu")
    for s in ("val", "test"):
        p = preds.filter(pl.col("split") == s)
        assert p.height == task.split(s).height and (p["pred"].list.len() == x.n_dst).all()
    assert info["epochs_run"] == 2 and 0 <= info["churn_auroc_test"] <= 1 and f"length={length}" in info["model"]


def test_drift_moves_products_not_activity():
    a, b = make_shop(200, seed=2, rate=6.0), make_shop(200, seed=2, rate=6.0, drift=1.0)
    assert a.sizes() == b.sizes()
    key = lambda db: db["review"].select("review_time", "customer_id").sort("review_time", "customer_id")
    assert key(a).equals(key(b)) and not a["review"]["product_id"].equals(b["review"]["product_id"])
    assert make_shop(200, seed=2, rate=6.0, drift=0.0)["click"].equals(a["click"])
    with pytest.raises(ValueError, match="drift must be at least 0"): make_shop(50, drift=-1)


def test_drifting_shop_runs_through_the_experiment(tmp_path):
    from relgraph.experiment import run_experiment
    m = run_experiment(dict(dataset="drifting_shop", data=dict(customers=120, drift=0.5), task="user-item-next-week",
                            model="last_snapshot", epochs=1, model_params=dict(train_timestamps=2, dim=8), device="cpu"), tmp_path/"run")
    assert 0 <= m["test_map@5"] <= 1 and "train_churn_auroc_test" in m

"""relgraph's polars churn labels equal the labels RelBench itself regenerates from the task's SQL.

The database is written as a RelBench v3 folder (manifest + parquet, keys re-indexed to 0..N-1 with time-ordered
entity rows, as RelBench requires), the task's manifest carries `EntityTask.sql`, and `relbench.load_dataset(...)
.load_task(name, regenerate=True).get_table(split)` produces the reference: RelBench's seed timestamps, its SQL run,
its dangling-entity filter, its sort.
"""
import datetime as dt

import pandas as pd
import polars as pl
import pytest

relbench = pytest.importorskip("relbench")
from relbench.manifest import DatasetManifest, TableSpec, TaskManifest

from relgraph.core import as_time, to_pandas
from relgraph.database import Database, TableSchema
from relgraph.tasks import TASKS, EntityTask, churn_task, make_task, next_class_task, spend_task


def tiny_shop() -> Database:
    d = lambda m, day: dt.datetime(2020, m, day)
    # customer 7 signs up after the test date but (a data glitch) reviews before it: RelBench drops it
    customer = pl.DataFrame({"customer_id": [11, 12, 13, 14, 15, 16, 17],
                             "signup_time": [d(1, 1)] * 5 + [d(2, 25), d(2, 27)]})
    product = pl.DataFrame({"product_id": [10, 20], "price": [12.0, 40.0]})
    rv = [(11, 10, d(1, 5)), (11, 20, d(1, 15)), (11, 10, d(1, 25)), (11, 20, d(2, 5)), (11, 10, d(2, 15)),
          (11, 10, d(2, 25)), (12, 10, d(1, 5)), (12, 20, d(1, 21)), (13, 20, d(2, 8)), (14, 10, d(2, 20)),
          (14, 20, d(3, 1)), (15, 10, d(1, 10)), (16, 20, d(2, 26)), (17, 20, d(2, 18))]
    review = pl.DataFrame({"review_id": range(len(rv)), "customer_id": [r[0] for r in rv],
                           "product_id": [r[1] for r in rv], "review_time": [r[2] for r in rv]})
    schema = dict(customer=TableSchema("customer_id", time_col="signup_time"), product=TableSchema("product_id"),
                  review=TableSchema("review_id", {"customer_id": "customer", "product_id": "product"}, "review_time"))
    return Database(dict(customer=customer, product=product, review=review), schema, name="tiny-shop",
                    val_timestamp=d(2, 10), test_timestamp=d(2, 20))


def write_relbench(db: Database, tasks: list[EntityTask], path):
    "A RelBench v3 folder of `db` (keys re-indexed, time-ordered) and `tasks` (manifest + SQL only); returns key maps."
    ordered = db._like({k: db[k].sort(s.time_col, maintain_order=True) if s.time_col and s.pkey else db[k]
                        for k, s in db.schema.items()})
    rdb, maps = ordered.reindex()
    (path / "db").mkdir(parents=True)
    for k in rdb.table_names: to_pandas(rdb[k]).to_parquet(path / "db" / f"{k}.parquet")
    DatasetManifest(name=db.name, val_timestamp=str(db.val_timestamp), test_timestamp=str(db.test_timestamp),
                    tables={k: TableSpec(pkey=s.pkey, time_col=s.time_col, fkeys=dict(s.fkeys)) for k, s in db.schema.items()}
                    ).save(path / "manifest.yaml")
    for t in tasks:
        (path / "tasks" / t.name).mkdir(parents=True)
        TaskManifest(**t.to_manifest()).save(path / "tasks" / t.name / "manifest.yaml")
    return maps


def relbench_labels(path, task: EntityTask, split: str, key_map: pl.DataFrame) -> pl.DataFrame:
    "RelBench's regenerated labels of `split`, with keys mapped back to the database's own ids."
    df = relbench.load_dataset(path).load_task(task.name, regenerate=True).get_table(split, mask_input_cols=False).df
    out = pl.from_pandas(df[[task.time_col, task.entity_col, task.target_col]])
    out = out.with_columns(as_time(task.time_col, out.schema[task.time_col]), pl.col(task.entity_col).cast(pl.Int64))
    back = key_map.rename({task.entity_col: "__id", "index": task.entity_col})
    return (out.join(back, on=task.entity_col, how="left").drop(task.entity_col).rename({"__id": task.entity_col})
            .select(task.time_col, task.entity_col, task.target_col).sort(task.time_col, task.entity_col))


def assert_same_labels(db, tasks, tmp_path):
    maps = write_relbench(db, tasks, tmp_path)
    for task in tasks:
        for split in ("train", "val", "test"):
            ours = task.split(split).sort(task.time_col, task.entity_col)
            theirs = relbench_labels(tmp_path, task, split, maps[task.entity_table])
            if ours.schema[task.target_col].is_float():   # sums in another order: equal to the last few bits
                ours, theirs = (d.with_columns(pl.col(task.target_col).round(6)) for d in (ours, theirs))
            assert ours.height > 0, (task.name, split)
            assert ours.rows() == theirs.rows(), (task.name, split)


def test_tiny_shop_labels_equal_relbench(tmp_path):
    db = tiny_shop()
    tasks = [churn_task(db, "customer", "review", "10 days", name="user-churn"),
             churn_task(db, "product", "review", "10 days", name="item-churn"),
             spend_task(db, timedelta="10 days", name="user-spend")]
    assert tasks[2].split("test").rows() == [(dt.datetime(2020, 2, 20), 11, 12.0), (dt.datetime(2020, 2, 20), 14, 40.0)]
    assert 17 not in tasks[0].split("test")["customer_id"].to_list()  # dropped: not a customer at test_timestamp
    assert_same_labels(db, tasks, tmp_path)


def test_synthetic_shop_labels_equal_relbench(tmp_path):
    synthetic = pytest.importorskip("relgraph.synthetic")
    db = synthetic.make_shop(customers=500, seed=0)
    tasks = [make_task(db, "user-churn"), make_task(db, "item-churn"), make_task(db, "user-spend")]
    for t in tasks[:2]:
        assert {"train", "val", "test"} <= set(t.tables) and t.split("train")["churn"].n_unique() == 2
    assert tasks[2].task_type == "regression" and tasks[2].split("train")["spend"].std() > 0
    assert_same_labels(db, tasks, tmp_path)


def plant_reviews(db: Database, customers, products, when) -> Database:
    "`db` with one review per (customer, product) at time `when` appended."
    rv = db["review"]
    new = pl.DataFrame({"review_id": range(rv["review_id"].max() + 1, rv["review_id"].max() + 1 + len(customers)),
                        "customer_id": customers, "product_id": products, "review_time": [when] * len(customers)})
    new = new.with_columns([pl.lit(None, dtype=d).alias(c) for c, d in rv.schema.items() if c not in new.columns])
    return db._like({**{k: db[k] for k in db.table_names}, "review": pl.concat([rv, new.select(rv.columns).cast(rv.schema)])})


def test_every_task_ignores_rows_after_its_windows():
    synthetic = pytest.importorskip("relgraph.synthetic")
    db = synthetic.make_shop(customers=400, seed=1)
    cust, prod = db["customer"]["customer_id"].head(60).to_list(), db["product"]["product_id"].sample(60, seed=0, with_replacement=True).to_list()
    td = make_task(db, "user-churn").timedelta
    assert db.val_timestamp + td < db.test_timestamp
    between = plant_reviews(db, cust, prod, db.test_timestamp - dt.timedelta(hours=12))   # after val's window, before test
    after = plant_reviews(db, cust, prod, db.test_timestamp + td + dt.timedelta(days=1))  # after every window
    entity = [k for k in TASKS if make_task(db, k).task_type != "link_prediction"]   # link tasks: tests/test_recommend.py
    assert set(entity) == {"user-churn", "item-churn", "user-spend", "user-next-category"}
    for name in entity:
        t0, t1, t2 = make_task(db, name), make_task(between, name), make_task(after, name)
        assert t0.task_type in ("binary_classification", "regression", "multiclass_classification")
        for split in ("train", "val"):
            assert t1.split(split).rows() == t0.split(split).rows(), (name, split)
        for split in ("train", "val", "test"):
            assert t2.split(split).rows() == t0.split(split).rows(), (name, split)
        assert t0.classes == t1.classes == t2.classes


def test_next_category_classes():
    synthetic = pytest.importorskip("relgraph.synthetic")
    db = synthetic.make_shop(customers=400, seed=0)
    t = make_task(db, "user-next-category")
    assert t.task_type == "multiclass_classification" and set(t.classes) <= set(synthetic.CATEGORIES)
    for split in ("train", "val", "test"):
        y = t.split(split)["category"]
        assert y.dtype == pl.Int64 and y.min() >= 0 and y.max() < len(t.classes)
    assert EntityTask.from_manifest(t.to_manifest(), t.tables).classes == t.classes

"""RelBench v3 folders between relgraph and the real `relbench` package, both ways."""
import datetime as dt, subprocess, sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

relbench = pytest.importorskip("relbench")
from relbench import load_dataset
from relbench.manifest import DatasetManifest, TableSpec, TaskManifest

from relgraph.core import TIME_DTYPE
from relgraph.database import Database, TableSchema
from relgraph.io import load_relbench, load_task, save_relbench
from relgraph.tasks import EntityTask

TD = dt.timedelta(days=30)
VAL, TEST = dt.datetime(2021, 1, 1), dt.datetime(2021, 3, 1)

CHURN_SQL = """
SELECT t.timestamp, c.customer_id,
       CAST(NOT EXISTS (SELECT 1 FROM review r WHERE r.customer_id = c.customer_id
                        AND r.review_time > t.timestamp AND r.review_time <= t.timestamp + INTERVAL '{timedelta}') AS BIGINT) AS churn
FROM timestamps t, customer c
WHERE EXISTS (SELECT 1 FROM review r WHERE r.customer_id = c.customer_id
              AND r.review_time > t.timestamp - INTERVAL '{timedelta}' AND r.review_time <= t.timestamp)
"""


def make_db(n_customers=40, n_reviews=600, seed=0) -> Database:
    "A random shop whose keys are not 0..n-1 and whose customers are not in time order (so saving re-indexes)."
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2020, 1, 1)
    ids = rng.permutation(np.arange(100, 100 + 3 * n_customers, 3))
    signup = [t0 + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, n_customers)]
    customer = pl.DataFrame({"customer_id": ids, "signup": signup, "region": rng.choice(["n", "s"], n_customers)})
    product = pl.DataFrame({"product_id": np.arange(8), "price": rng.random(8).round(2),
                            "category": [["a"], ["a", "b"], ["b"], ["c"], ["a", "c"], ["b"], ["c"], ["a"]]})
    last = {c: rng.integers(60, 500) for c in ids}  # each customer stops reviewing after its own day
    cust = rng.choice(ids, n_reviews)
    days = np.array([rng.integers(0, last[c]) for c in cust])
    review = pl.DataFrame({"review_id": rng.permutation(n_reviews) * 7 + 1, "customer_id": cust,
                           "product_id": rng.integers(0, 8, n_reviews),
                           "review_time": [t0 + dt.timedelta(days=int(d), seconds=int(s)) for d, s in zip(days, rng.integers(0, 86400, n_reviews))],
                           "rating": rng.integers(1, 6, n_reviews)}).with_columns(pl.col("review_time").dt.cast_time_unit("us"))
    review = pl.concat([review, review.head(1).with_columns(review_id=pl.lit(10**6, pl.Int64), review_time=pl.lit(dt.datetime(2021, 6, 1)).dt.cast_time_unit("us"))])
    schema = dict(customer=TableSchema("customer_id", time_col="signup"), product=TableSchema("product_id"),
                  review=TableSchema("review_id", {"customer_id": "customer", "product_id": "product"}, "review_time"))
    return Database(dict(customer=customer, product=product, review=review), schema, name="rel-test",
                    val_timestamp=VAL, test_timestamp=TEST)


def polars_churn(db: Database, times) -> pl.DataFrame:
    "Churn labels with polars: active in (t - TD, t], churn = no review in (t, t + TD]."
    pairs = pl.DataFrame({"timestamp": times}, schema={"timestamp": TIME_DTYPE}).join(db["review"].select("customer_id", "review_time"), how="cross")
    t, r = pl.col("timestamp"), pl.col("review_time")
    g = pairs.group_by("timestamp", "customer_id").agg(active=((r > t - TD) & (r <= t)).any(), future=((r > t) & (r <= t + TD)).any())
    keep = db.upto(TEST)["customer"].select("customer_id")
    return (g.filter("active").join(keep, on="customer_id", how="semi")
             .select("timestamp", "customer_id", (~pl.col("future")).cast(pl.Int64).alias("churn")).sort("timestamp", "customer_id"))


def make_task(db: Database) -> EntityTask:
    train = [VAL - TD * k for k in range(1, 100) if VAL - TD * k >= db.upto(TEST).min_timestamp]
    seen = db.upto(TEST)
    tables = dict(train=polars_churn(seen, train), val=polars_churn(seen, [VAL]), test=polars_churn(db, [TEST]))
    return EntityTask("customer-churn", "customer", "customer_id", "churn", timedelta=TD, tables=tables, sql=CHURN_SQL)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    db = make_db()
    task = make_task(db)
    path = save_relbench(db, tmp_path_factory.mktemp("rb") / "rel-test", tasks=[task])
    return db, task, path


def _pl(df: pd.DataFrame) -> pl.DataFrame:
    return pl.from_pandas(df.reset_index(drop=True))


def test_relgraph_folder_loads_in_relbench(written):
    db, _, path = written
    ds = load_dataset(path)
    test_db = ds.get_db()  # checks RelBench's key contract (keys 0..n-1 in row order)
    full = ds.get_db(upto_test_timestamp=False).table_dict
    ours = load_relbench(path)
    assert set(full) == set(db.table_names)
    ids = pl.read_parquet(path / "ids" / "customer.parquet")
    for name, s in db.schema.items():
        t = full[name]
        assert (t.pkey_col, t.fkey_col_to_pkey_table, t.time_col) == (s.pkey, s.fkeys, s.time_col)
        assert len(t.df) == db[name].height
        assert _pl(t.df.drop(columns=["category"], errors="ignore")).equals(ours[name].drop("category", strict=False))
        if s.time_col:  # nanoseconds on disk, so RelBench's astype(int64) // 10**9 gives true epoch seconds
            assert str(t.df[s.time_col].dtype) == "datetime64[ns]"
            secs = t.df[s.time_col].astype("int64").to_numpy() // 10**9
            want = np.array([int(x.replace(tzinfo=dt.timezone.utc).timestamp()) for x in t.df[s.time_col].dt.to_pydatetime()])
            assert (secs == want).all() and secs.min() > 1.5e9
    # the original ids come back through ids/, and every row of the input is there
    back = ours["customer"].join(ids.rename({"customer_id": "orig"}), left_on="customer_id", right_on="index")
    assert back.select(pl.col("orig").alias("customer_id"), "signup", "region").sort("customer_id").equals(db["customer"].sort("customer_id"))
    assert ours["review"]["review_time"].sort().equals(db["review"]["review_time"].sort())
    # RelBench's point-in-time view (upto test, dangling fkeys nulled) is relgraph's upto + fix_dangling
    ours_at_test = ours.upto(TEST).fix_dangling("null")
    for name, t in test_db.table_dict.items():
        assert _pl(t.df.drop(columns=["category"], errors="ignore")).equals(ours_at_test[name].drop("category", strict=False)), name


def test_tasks_load_and_regenerate_in_relbench(written):
    db, task, path = written
    ds = load_dataset(path)
    rb_task = ds.load_task("customer-churn")
    regen = ds.load_task("customer-churn", regenerate=True)
    assert rb_task.timedelta == pd.Timedelta(TD)
    for split in ("train", "val", "test"):
        stored = _pl(rb_task.get_table(split, mask_input_cols=False).df)
        assert stored.height == task.tables[split].height > 0
        assert stored.equals(pl.read_parquet(path / "tasks" / "customer-churn" / f"{split}.parquet"))
        again = _pl(regen.get_table(split, mask_input_cols=False).df).with_columns(pl.col("timestamp").dt.cast_time_unit("ns"))
        assert again.equals(stored), split
    assert _pl(rb_task.get_table("train").df)["churn"].n_unique() == 2  # both classes present: the test can fail


def test_relgraph_load_task_matches(written):
    db, task, path = written
    ids = pl.read_parquet(path / "ids" / "customer.parquet")
    t = load_task(path, "customer-churn")
    t2 = load_task(path, "customer-churn", regenerate=True)
    assert (t.entity_table, t.entity_col, t.target_col, t.timedelta) == ("customer", "customer_id", "churn", TD)
    for split in ("train", "val", "test"):
        assert t2.tables[split].equals(t.tables[split]), split
        orig = (t.tables[split].join(ids, left_on="customer_id", right_on="index")
                 .select("timestamp", pl.col("customer_id_right").alias("customer_id"), "churn").sort("timestamp", "customer_id"))
        assert orig.equals(task.tables[split]), split


def test_relbench_written_folder_loads_in_relgraph(tmp_path):
    "A folder made by relbench's own manifest classes, with pandas parquet in microseconds."
    n = 5
    customer = pd.DataFrame({"customer_id": np.arange(n), "signup": pd.date_range("2020-01-01", periods=n, freq="D").astype("datetime64[us]")})
    review = pd.DataFrame({"review_id": np.arange(12), "customer_id": [0, 1, 2, 3, 4, 7] * 2,  # 7: dangling
                           "review_time": pd.date_range("2020-01-10", periods=12, freq="20D").astype("datetime64[us]"),
                           "rating": np.arange(12) % 5})
    (tmp_path / "db").mkdir()
    customer.to_parquet(tmp_path / "db" / "customer.parquet"); review.to_parquet(tmp_path / "db" / "review.parquet")
    DatasetManifest(name="rel-own", val_timestamp="2020-05-01", test_timestamp="2020-06-01",
                    tables={"customer": TableSpec(pkey="customer_id", time_col="signup"),
                            "review": TableSpec(pkey="review_id", time_col="review_time", fkeys={"customer_id": "customer"})}).save(tmp_path / "manifest.yaml")
    labels = pd.DataFrame({"timestamp": pd.to_datetime(["2020-03-01", "2020-03-01"]), "customer_id": [0, 1], "churn": [1, 0]})
    tm = TaskManifest(name="churn", kind="external", task_type="binary_classification", entity_table="customer",
                      entity_col="customer_id", target_col="churn", time_col="timestamp", timedelta="30 days")
    tm.save(tmp_path / "tasks" / "churn" / "manifest.yaml")
    for s in ("train", "val", "test"): labels.to_parquet(tmp_path / "tasks" / "churn" / f"{s}.parquet")
    db = load_relbench(tmp_path)
    assert "lazy" in repr(db)  # nothing read yet
    assert db.schema["review"] == TableSchema("review_id", {"customer_id": "customer"}, "review_time")
    assert (db.val_timestamp, db.test_timestamp, db.name) == (dt.datetime(2020, 5, 1), dt.datetime(2020, 6, 1), "rel-own")
    assert db["review"]["review_time"].dtype == TIME_DTYPE
    assert db["review"]["review_time"].to_list() == [x.to_pydatetime() for x in review["review_time"]]
    assert db["review"]["customer_id"].to_list() == [0, 1, 2, 3, 4, None] * 2  # RelBench's dangling correction
    db.check_keys()
    t = load_task(tmp_path, "churn")
    assert t.tables["val"].equals(pl.from_pandas(labels).with_columns(pl.col("timestamp").dt.cast_time_unit("ns")))
    with pytest.raises(ValueError, match="has no SQL"):
        load_task(tmp_path, "churn", regenerate=True)


def test_info_cli(written):
    _, task, path = written
    out = subprocess.run([sys.executable, "-m", "relgraph.cli", "info", str(path)], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout:  # the module may have no __main__ guard: call the entry point
        out = subprocess.run([sys.executable, "-c", f"from relgraph.cli import main; main(['info', {str(path)!r}])"],
                             capture_output=True, text=True, check=True)
    n = task.tables["train"]
    assert "customer: 40 rows; pkey customer_id; time signup; fkeys -" in out.stdout
    assert f"train: {n.height} rows, {n['churn'].sum()} positive" in out.stdout


def test_churn_task_of_relgraph_tasks_roundtrips(tmp_path):
    "relgraph.tasks.churn_task's labels and SQL, written by save_relbench: RelBench regenerates the same labels."
    from relgraph.tasks import churn_task
    db = make_db(seed=1)
    task = churn_task(db, "customer", "review", TD)
    path = save_relbench(db, tmp_path / "rel-test", tasks=[task])
    ids = pl.read_parquet(path / "ids" / "customer.parquet")
    regen = load_dataset(path).load_task(task.name, regenerate=True)
    for split in ("train", "val", "test"):
        stored = pl.read_parquet(path / "tasks" / task.name / f"{split}.parquet")
        again = _pl(regen.get_table(split, mask_input_cols=False).df).with_columns(pl.col("timestamp").dt.cast_time_unit("ns"))
        assert again.equals(stored), split
        orig = (stored.join(ids, left_on="customer_id", right_on="index")
                      .select("timestamp", pl.col("customer_id_right").alias("customer_id"), "churn").sort("timestamp", "customer_id"))
        assert orig.equals(task.tables[split].sort("timestamp", "customer_id")), split


def test_synthetic_shop_folder_in_relbench(tmp_path):
    "The synthetic shop with its registered tasks: RelBench loads it and regenerates every split's labels."
    from relgraph.synthetic import make_shop
    from relgraph.tasks import make_task as make_named_task
    db = make_shop(customers=300, seed=0)
    tasks = [make_named_task(db, n) for n in ("user-churn", "item-churn")]
    path = save_relbench(db, tmp_path / "rel-shop", tasks=tasks)
    ds = load_dataset(path)
    assert set(ds.get_db().table_dict) == set(db.table_names)
    for t in tasks:
        stored, regen = ds.load_task(t.name), ds.load_task(t.name, regenerate=True)
        ours = load_task(path, t.name, regenerate=True)
        for split in ("train", "val", "test"):
            x = _pl(stored.get_table(split, mask_input_cols=False).df)
            y = _pl(regen.get_table(split, mask_input_cols=False).df).with_columns(pl.col("timestamp").dt.cast_time_unit("ns"))
            assert x.height == t.tables[split].height > 0
            assert x.equals(y) and ours.tables[split].equals(x), (t.name, split)

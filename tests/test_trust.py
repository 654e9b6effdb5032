"""Issue 15, trust: nothing executes from a data file, names cannot escape, loading is strict, bad records are skipped,
and the point-in-time semantics (untimed tables, fitting up to val) hold. Each test failed on the main before it."""
import datetime as dt, json, os, sqlite3, warnings

import duckdb
import polars as pl
import pytest
import torch

from relgraph.core import write_json
from relgraph.database import Database, DatabaseError, TableSchema
from relgraph.experiment import resolve_config
from relgraph.graphs import snapshot_graph, snapshot_key
from relgraph.io import load_relbench, read_sql, save_relbench
from relgraph.records import run_id
from relgraph.results import load_runs, summarize
from relgraph.tasks import EntityTask
from relgraph.testing import churn_shop, tiny_shop

T1, T2 = dt.datetime(2020, 1, 5), dt.datetime(2020, 1, 10)


def _task():
    return EntityTask("tiny-churn", "customer", "customer_id", "churn", timedelta=dt.timedelta(days=10), tables={
        "train": pl.DataFrame({"timestamp": [T2, T2], "customer_id": [1, 2], "churn": [1, 0]})})


class _Planted:
    "Unpickling it would create a folder: the proof that a cache file ran code."
    def __init__(self, target): self.target = target
    def __reduce__(self): return (os.mkdir, (self.target,))


def _caught(f):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = f()
    return out, [str(w.message) for w in caught]


# 1. no code runs from a data file
def test_planted_cache_is_refused_not_executed(tmp_path):
    db, task = tiny_shop(), _task()
    path = tmp_path / f"{snapshot_key(db, task, 'train', T2, 'co_interaction')}.pt"
    torch.save(_Planted(str(tmp_path / "pwned")), path)
    g, msgs = _caught(lambda: snapshot_graph(db, task, "train", T2, "co_interaction", cache_dir=tmp_path))
    assert not (tmp_path / "pwned").exists()
    assert any(f"graph cache {path}: refused" in m and "rebuilding" in m for m in msgs)
    ref = snapshot_graph(db, task, "train", T2, "co_interaction")
    assert torch.equal(g.edge_index, ref.edge_index) and torch.equal(g.x, ref.x) and g.feature_names == ref.feature_names
    again, msgs = _caught(lambda: snapshot_graph(db, task, "train", T2, "co_interaction", cache_dir=tmp_path))
    assert msgs == [] and again.snapshot_time == T2 and torch.equal(again.x, ref.x)  # the rebuilt file is read back


def test_truncated_cache_is_rebuilt(tmp_path):
    db, task = tiny_shop(), _task()
    g = snapshot_graph(db, task, "train", T2, "co_interaction", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.pt")
    path.write_bytes(path.read_bytes()[:100])
    h, msgs = _caught(lambda: snapshot_graph(db, task, "train", T2, "co_interaction", cache_dir=tmp_path))
    assert len(msgs) == 1 and str(path) in msgs[0] and torch.equal(h.x, g.x)


# 2. names cannot escape
def test_table_name_cannot_leave_the_folder(tmp_path):
    shop = churn_shop()
    evil = Database({**{k: shop[k] for k in shop.table_names}, "../../x": shop["product"]},
                    {**shop.schema, "../../x": TableSchema("product_id")}, val_timestamp=shop.val_timestamp,
                    test_timestamp=shop.test_timestamp)
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(DatabaseError, match=r"table name '\.\./\.\./x' cannot be a file name"):
        save_relbench(evil, target)
    assert [p for p in tmp_path.rglob("*")] == []


def test_manifest_table_name_cannot_leave_the_folder(tmp_path):
    out = save_relbench(churn_shop(), tmp_path / "rel")
    m = (out / "manifest.yaml").read_text().replace("  product:", "  ../product:")
    (out / "manifest.yaml").write_text(m)
    with pytest.raises(DatabaseError, match=r"table name '\.\./product' cannot be a file name"):
        load_relbench(out)


def test_quotes_in_sql_names(tmp_path):
    con = sqlite3.connect(tmp_path / "q.db")
    con.execute('CREATE TABLE "we""ird" (id INTEGER PRIMARY KEY, "na""me" TEXT)')
    con.execute('CREATE TABLE r (rid INTEGER PRIMARY KEY, "w""id" INTEGER REFERENCES "we""ird"(id))')
    con.execute("INSERT INTO \"we\"\"ird\" VALUES (1, 'a')"); con.execute("INSERT INTO r VALUES (5, 1)")
    con.commit(); con.close()
    db = read_sql(tmp_path / "q.db")
    assert db['we"ird']['na"me'].to_list() == ["a"] and db.schema["r"].fkeys == {'w"id': 'we"ird'}
    duck = duckdb.connect(str(tmp_path / "q.duckdb"))
    duck.execute('CREATE TABLE "c""x" (id INTEGER PRIMARY KEY, "na""me" VARCHAR)'); duck.execute("INSERT INTO \"c\"\"x\" VALUES (1, 'a')")
    duck.close()
    assert read_sql(tmp_path / "q.duckdb")['c"x']['na"me'].to_list() == ["a"]


# 4. strict loading
def _folder(tmp_path, **tables):
    out = save_relbench(churn_shop(), tmp_path / "rel")
    for k, f in tables.items(): f(pl.read_parquet(out / "db" / f"{k}.parquet")).write_parquet(out / "db" / f"{k}.parquet")
    return out


def test_duplicate_primary_key_is_named_at_load(tmp_path):
    out = _folder(tmp_path, review=lambda df: df.with_columns(review_id=pl.when(pl.col("review_id") == 3).then(7).otherwise("review_id")))
    with pytest.raises(DatabaseError, match=r"table 'review': primary key 'review_id' has 1 duplicated value\(s\): 7"):
        load_relbench(out)


def test_null_primary_key_and_empty_entity_table(tmp_path):
    out = _folder(tmp_path, review=lambda df: df.with_columns(review_id=pl.when(pl.col("review_id") < 2).then(None).otherwise("review_id")),
                  customer=lambda df: df.head(0))
    with pytest.raises(DatabaseError) as e:
        load_relbench(out)
    assert "table 'customer' is empty" in e.value.problems
    assert "table 'review': primary key 'review_id' has 2 null value(s)" in e.value.problems


def test_null_times_and_dangling_keys_are_counted(tmp_path):
    out = _folder(tmp_path, review=lambda df: df.with_columns(
        review_time=pl.when(pl.col("review_id") < 3).then(None).otherwise("review_time"),
        product_id=pl.when(pl.col("review_id") == 4).then(99).otherwise("product_id")))
    db, msgs = _caught(lambda: load_relbench(out))
    assert any("time column 'review_time' has 3 null value(s)" in m for m in msgs)
    assert any("foreign key 'product_id' has 1 value(s) with no row in 'product'; set to null" in m for m in msgs)
    assert db["review"]["product_id"].null_count() == 1


# 7. results survive bad records
def _record(runs, seed, status="ok", auroc=0.7):
    cfg = resolve_config(builder="none", model="mlp", seed=seed)
    d = runs / run_id(cfg); d.mkdir(parents=True)
    write_json(cfg, d / "config.json")
    write_json({"status": status, "error": None, "seconds": 1.0}, d / "status.json")
    write_json({"test_auroc": auroc, "val_auroc": auroc}, d / "metrics.json")
    return d


def test_corrupt_records_are_skipped_by_path(tmp_path):
    for s in range(3): _record(tmp_path, s, auroc=0.7 + s / 100)
    _record(tmp_path, 3, status="failed")
    bad_m, bad_s = _record(tmp_path, 4), _record(tmp_path, 5)
    (bad_m / "metrics.json").write_text('{"test_auroc": 0.')
    (bad_s / "status.json").write_text("")
    df, msgs = _caught(lambda: load_runs(tmp_path))
    assert df.height == 4 and sorted(df["seed"].to_list()) == [0, 1, 2, 3]
    assert any(str(bad_m / "metrics.json") in m for m in msgs) and any(str(bad_s / "status.json") in m for m in msgs)
    assert summarize(df)["n"].to_list() == [3]  # the ok seeds only


def test_n_counts_ok_runs_with_the_metric(tmp_path):
    for s in range(2): _record(tmp_path, s)
    (_record(tmp_path, 2) / "metrics.json").write_text(json.dumps({"val_auroc": 0.5}))
    assert summarize(load_runs(tmp_path))["n"].to_list() == [2]


# 9. semantics written down and tested
def test_untimed_tables_visible_at_every_t():
    db = churn_shop()
    for t in ("1900-01-01", "1969-12-31", "2020-06-01", "2200-01-01"):
        assert db.upto(t)["product"].equals(db["product"])


def test_vocabularies_fitted_up_to_val():
    from relgraph.features import feature_plan
    from relgraph.tasks import class_vocabulary
    db = churn_shop()
    late = pl.DataFrame({"review_id": [5000], "customer_id": [20], "product_id": [3], "rating": [5],
                         "review_time": [dt.datetime(2020, 9, 15)]}).with_columns(pl.col("review_time").dt.cast_time_unit("ns"))
    tables = {k: db[k] for k in db.table_names}
    tables["review"] = pl.concat([tables["review"], late.select(tables["review"].columns)]).with_columns(
        channel=pl.when(pl.col("review_id") == 5000).then(pl.lit("app")).otherwise(pl.lit("web")))
    tables["product"] = pl.concat([tables["product"], pl.DataFrame({"product_id": [3], "brand": ["zz"], "category": [["new"]]})])
    db2 = db._like(tables)
    assert class_vocabulary(db2, "customer", "review", "product.brand") == ["a", "b"]  # 'zz' is first reviewed after val
    assert class_vocabulary(db2, "customer", "review", "product.brand", upto="2020-12-31") == ["a", "b", "zz"]
    assert feature_plan(db2, "customer").relations[0].cols.categorical["channel"] == ["web"]  # 'app' is first seen after val
    assert feature_plan(db2, "customer", vocab_time="2020-12-31").relations[0].cols.categorical["channel"] == ["web", "app"]
    # product is untimed: visible at every t, so its vocabulary holds all its rows ('new' included), by the first rule
    assert "new" in feature_plan(db2, "customer").relations[0].hops[0].cols.lists["category"]


def test_graph_input_plans_on_rows_up_to_val(monkeypatch):
    import relgraph.graphs as graphs
    seen = {}
    def spy(db, entity_table, name, params=None):
        seen["max"] = db.max_timestamp
        return {}
    monkeypatch.setattr(graphs, "builder_params", spy)
    monkeypatch.setattr(graphs, "snapshots", lambda *a, **k: "snapshots")
    db = churn_shop()
    assert db.max_timestamp > db.val_timestamp
    graphs.graph_input(db, _task(), dict(builder="co_interaction"))
    assert seen["max"] <= db.val_timestamp

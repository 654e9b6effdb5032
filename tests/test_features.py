"""history_features on random shops: the contract, a brute-force reference, point-in-time correctness, usefulness."""
import datetime as dt

import numpy as np
import polars as pl
import pytest

from relgraph.database import Database, TableSchema
from relgraph.features import feature_plan, history_features
from relgraph.tasks import make_task

WINDOWS = (7, 30, 91)


def random_shop(n=300, seed=0) -> Database:
    "A small random shop: customers with a lifetime, products with categories, reviews and clicks within the lifetime."
    rng = np.random.default_rng(seed)
    t0, span = np.datetime64("2020-01-01", "ns"), np.timedelta64(700, "D").astype("timedelta64[ns]").astype(np.int64)
    signup = t0 + (rng.random(n) * span * 0.5).astype("timedelta64[ns]")
    life = rng.exponential(span * 0.3, n).astype(np.int64)
    cats = np.array(["books", "games", "music", "tools", "toys"])
    m = 40
    product = pl.DataFrame({"product_id": np.arange(100, 100 + m), "category": [list(rng.choice(cats, rng.integers(1, 3), replace=False)) for _ in range(m)],
                            "brand": rng.choice(["a", "b", "c"], m), "price": rng.gamma(2, 20, m)})
    def events(k):
        c = rng.integers(0, n, n * k)
        tm = signup[c] + (rng.random(n * k) * life[c]).astype(np.int64).astype("timedelta64[ns]")
        keep = tm < t0 + np.timedelta64(span, "ns")
        return c[keep], 100 + rng.integers(0, m, keep.sum()), tm[keep]
    c, p, tm = events(8)
    review = pl.DataFrame({"review_id": np.arange(len(c)), "customer_id": c, "product_id": p, "review_time": tm,
                           "rating": rng.integers(1, 6, len(c)), "verified": rng.random(len(c)) < 0.7})
    c, p, tm = events(12)
    click = pl.DataFrame({"click_id": np.arange(len(c)), "customer_id": c, "product_id": p, "click_time": tm})
    customer = pl.DataFrame({"customer_id": np.arange(n), "signup_time": signup, "region": rng.choice(["n", "s"], n)})
    schema = dict(customer=TableSchema("customer_id", time_col="signup_time"), product=TableSchema("product_id"),
                  review=TableSchema("review_id", {"customer_id": "customer", "product_id": "product"}, "review_time"),
                  click=TableSchema("click_id", {"customer_id": "customer", "product_id": "product"}, "click_time"))
    return Database(dict(customer=customer, product=product, review=review, click=click), schema, name="random-shop",
                    val_timestamp="2021-05-01", test_timestamp="2021-08-15")


@pytest.fixture(scope="module")
def shop(): return random_shop()


@pytest.fixture(scope="module")
def task(shop): return make_task(shop, "user-churn", timedelta=91)


def test_contract(shop, task):
    rows = task.split("train").sample(fraction=1.0, shuffle=True, seed=1)
    X = history_features(shop, "customer", rows, windows=WINDOWS)
    assert X.height == rows.height and X.select(rows.columns).equals(rows)            # same rows, same order
    feats = [c for c in X.columns if c not in rows.columns]
    assert len(feats) > 50 and all(X.schema[c] == pl.Float32 for c in feats)
    assert X.select(feats).null_count().sum_horizontal().item() == 0
    assert np.isfinite(X.select(feats).to_numpy()).all()
    other = history_features(shop, "customer", task.split("test"), windows=WINDOWS)
    assert other.columns[3:] == X.columns[3:]                                         # same columns in every split


def test_brute_force_reference(shop, task):
    "A few features recomputed row by row with plain filters."
    rows = task.split("train").sample(40, seed=2)
    X = history_features(shop, "customer", rows, windows=WINDOWS, top_k=3)
    rv = shop["review"].join(shop["product"], on="product_id")
    vocab = feature_plan(shop, "customer", top_k=3).relations[0].hops[0].cols.lists["category"]
    for r in X.iter_rows(named=True):
        t, c = r["timestamp"], r["customer_id"]
        h = rv.filter((pl.col("customer_id") == c) & (pl.col("review_time") <= t))
        age = (t - h["review_time"]).dt.total_microseconds().to_numpy() / 86400e6
        assert r["review_count"] == h.height
        assert r["review_count_30d"] == (age < 30).sum()
        assert r["review_trend_30d"] == (age < 30).sum() - ((age >= 30) & (age < 60)).sum()
        if h.height:
            assert r["review_recency_days"] == pytest.approx(age.min(), rel=1e-6)
            assert r["review_rating_mean"] == pytest.approx(h["rating"].mean(), rel=1e-6)
            assert r["review_product_price_sum_91d"] == pytest.approx(h.filter(pl.lit(age < 91))["price"].sum(), rel=1e-5, abs=1e-4)
            assert r["review_product_distinct"] == h["product_id"].n_unique()
            share = h["category"].list.contains(vocab[0]).mean()
            assert r[f"review_product_category={vocab[0]}_share"] == pytest.approx(share, rel=1e-6)
        else:
            assert r["review_rating_mean"] == 0 and r["review_product_distinct"] == 0


def test_rows_after_t_change_nothing(shop, task):
    rows = task.split("val")
    t = rows["timestamp"].max()
    rng = np.random.default_rng(3)
    k = 300
    after = np.datetime64(t, "ns") + np.concatenate([[1], rng.integers(1, 400 * 86400 * 10**9, k - 1)]).astype("timedelta64[ns]")
    tabs = {n: shop[n] for n in shop.table_names}
    for name, tc in [("review", "review_time"), ("click", "click_time")]:
        old = tabs[name]
        new = old.sample(k, with_replacement=True, seed=4).with_columns(
            pl.Series(tc, after).cast(old.schema[tc]), (pl.int_range(k) + old[old.columns[0]].max() + 1).alias(old.columns[0]))
        tabs[name] = pl.concat([new.head(k // 2), old, new.tail(k - k // 2)])              # before and after the old rows
    planted = shop._like(tabs)
    assert planted["review"].height == shop["review"].height + k
    a = history_features(shop, "customer", rows, windows=WINDOWS)
    b = history_features(planted, "customer", rows, windows=WINDOWS)
    assert a.equals(b)
    later = rows.with_columns(pl.col("timestamp") + dt.timedelta(days=30))
    assert not history_features(shop, "customer", later, windows=WINDOWS).equals(history_features(planted, "customer", later, windows=WINDOWS))


def test_features_predict_churn(shop, task):
    "The baseline must be a real one: LightGBM on the features beats chance clearly on val."
    lgb = pytest.importorskip("lightgbm")
    from sklearn.metrics import roc_auc_score
    tr, va = (history_features(shop, "customer", task.split(s), windows=WINDOWS) for s in ("train", "val"))
    cols = tr.columns[3:]
    m = lgb.LGBMClassifier(n_estimators=100, learning_rate=0.05, num_leaves=15, verbose=-1, random_state=0)
    m.fit(tr.select(cols).to_numpy(), tr["churn"].to_numpy())
    auc = roc_auc_score(va["churn"].to_numpy(), m.predict_proba(va.select(cols).to_numpy())[:, 1])
    assert auc > 0.65, auc


def test_synthetic_shop_features():
    synthetic = pytest.importorskip("relgraph.synthetic")
    db = synthetic.make_shop(customers=500, seed=0)
    for name in ("user-churn", "item-churn"):
        task = make_task(db, name)
        rows = task.split("val")
        X = history_features(db, task.entity_table, rows, task.entity_col, task.time_col)
        assert X.height == rows.height and X.select(X.columns[3:]).null_count().sum_horizontal().item() == 0

"""The synthetic shop end to end: the CLI folder in the real `relbench`, determinism across processes and blocks,
and the planted structure: signal a graph can see with `structure=1`, none with `structure=0`."""
import datetime as dt, os, subprocess, sys

import numpy as np
import pandas as pd
import polars as pl
import pytest

from relgraph.cli import main
from relgraph.synthetic import BLOCK, community_churn, make_shop, structure_summary
from relgraph.tasks import make_task

os.environ.setdefault("RELGRAPH_PROGRESS", "0")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "shop"
    assert main(["synth", "--customers", "800", "--out", str(out), "--seed", "3"]) is None  # None: exit status 0
    return out


def _pl(df: pd.DataFrame) -> pl.DataFrame:
    "A sorted polars copy with nanosecond times (pandas keeps whatever unit it read)."
    out = pl.from_pandas(df.reset_index(drop=True))
    return out.with_columns(pl.col(pl.Datetime).dt.cast_time_unit("ns")).sort(out.columns)


def test_cli_folder_loads_in_relbench(folder):
    relbench = pytest.importorskip("relbench")
    ds = relbench.load_dataset(folder)
    db = make_shop(800, seed=3)
    full = ds.get_db(upto_test_timestamp=False).table_dict
    assert {k: len(v.df) for k, v in full.items()} == db.sizes()
    assert (ds.val_timestamp, ds.test_timestamp) == (pd.Timestamp(db.val_timestamp), pd.Timestamp(db.test_timestamp))
    for name in ("user-churn", "item-churn"):
        stored, regen = ds.load_task(name), ds.load_task(name, regenerate=True)  # RelBench's own SQL on our tables
        for split in ("train", "val", "test"):
            a, b = (_pl(t.get_table(split, mask_input_cols=False).df) for t in (stored, regen))
            assert a.height > 0 and a["churn"].n_unique() == 2, (name, split)
            assert a.equals(b), (name, split)


def test_same_seed_same_database_in_another_process():
    code = "from relgraph.synthetic import make_shop; print(make_shop(1500, seed=7).fingerprint())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"}).stdout.split()[-1]
    assert other == make_shop(1500, seed=7).fingerprint()
    assert other != make_shop(1500, seed=8).fingerprint()


def test_blocks_do_not_depend_on_size():
    "The first block's customers and events are the same whether more blocks follow or not (bounded-memory chunks)."
    small, big = make_shop(BLOCK, products=2000, check_keys=False), make_shop(BLOCK + 700, products=2000, check_keys=False)
    assert big["customer"].head(BLOCK).equals(small["customer"])
    first = lambda db: db["review"].filter(pl.col("customer_id") < BLOCK).drop("review_id")
    assert first(big).equals(first(small))
    assert big["product"].equals(small["product"])


@pytest.mark.parametrize("seed", [1, 2])
def test_structure_knob(seed):
    on, off = (structure_summary(community_churn(*make_shop(2000, seed=seed, structure=s, return_truth=True))) for s in (1, 0))
    assert on["dispersion"] > 2.5 and on["corr"] > 0.25 and on["corr_latent"] < -0.4, on
    assert off["dispersion"] < 1.8 and abs(off["corr_latent"]) < 0.25, off


def _features(db, truth, labels):
    "Own history (log counts of reviews and clicks over several windows) and the community mean of recent reviews."
    out = labels
    for name, table, col in (("r", "review", "review_time"), ("c", "click", "click_time")):
        ev = db[table].select("customer_id", t=col)
        for w in (30, 91, 182, 365, 5000):
            n = (labels.select("timestamp", "customer_id").join(ev, on="customer_id")
                 .filter(pl.col("t").is_between(pl.col("timestamp") - dt.timedelta(days=w), pl.col("timestamp"), closed="right"))
                 .group_by("timestamp", "customer_id").agg(pl.len().alias(f"{name}{w}")))
            out = out.join(n, on=["timestamp", "customer_id"], how="left")
    own = [c for c in out.columns if c[0] in "rc" and c[1:].isdigit()]
    out = out.with_columns(pl.col(own).fill_null(0).cast(pl.Float64).log1p()).join(truth.customer, on="customer_id")
    # what same-community neighbours' recent activity tells: their mean, relative to everyone's at that timestamp
    nb = (pl.col("r91").mean().over("timestamp", "community") - pl.col("r91").mean().over("timestamp")).alias("nb")
    return out.with_columns(nb), own


@pytest.mark.parametrize("structure", [1.0, 0.0])
def test_graph_signal_beyond_own_history(structure):
    "Neighbours' recent activity adds AUROC over own history with the planted structure, and nothing without it."
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    gains = []
    for seed in (0, 1):
        db, truth = make_shop(4000, seed=seed, structure=structure, return_truth=True)
        task = make_task(db, "user-churn")
        tr, _ = _features(db, truth, task.split("train"))
        te, own = _features(db, truth, pl.concat([task.split("val"), task.split("test")]))
        auc = {}
        for name, cols in (("own", own), ("own+nb", own + ["nb"])):
            m = LogisticRegression(max_iter=2000).fit(tr.select(cols).to_numpy(), tr["churn"].to_numpy())
            auc[name] = roc_auc_score(te["churn"].to_numpy(), m.predict_proba(te.select(cols).to_numpy())[:, 1])
        gains.append(auc["own+nb"] - auc["own"])
    if structure: assert np.mean(gains) > 0.03, gains
    else: assert abs(np.mean(gains)) < 0.01, gains

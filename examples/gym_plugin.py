"""A gym's database, its churn task, a builder and a model of one's own: one registered function each."""
import datetime as dt

import numpy as np
import polars as pl

from relgraph.builders import EDGE_BUILDERS
from relgraph.database import Database
from relgraph.datasets import DATASETS
from relgraph.edges import canonical
from relgraph.registry import MODELS
from relgraph.tasks import TASKS, churn_task


@DATASETS.register("gym")
def gym(members: int = 300,   # number of members
        seed: int = 0,        # generator seed
       ) -> Database:
    "Members who visit classes of a few kinds; members of a crew visit the same classes and quit together."
    rng = np.random.default_rng(seed)
    start, days = dt.datetime(2021, 1, 1), 720
    crew = rng.integers(0, max(members // 10, 1), members)
    quit_day = rng.integers(60, days, crew.max() + 1)[crew] + rng.integers(-20, 20, members)
    member = pl.DataFrame({"member_id": np.arange(members), "joined": [start] * members,
                           "plan": rng.choice(["basic", "premium"], members)})
    klass = pl.DataFrame({"class_id": np.arange(40), "kind": rng.choice(["yoga", "spin", "boxing", "swim"], 40)})
    n = members * 60
    who = rng.integers(0, members, n); day = rng.integers(0, days, n)
    keep = day < quit_day[who]
    visit = pl.DataFrame({"visit_id": np.arange(keep.sum()), "member_id": who[keep],
                          "class_id": (crew[who[keep]] * 3 + rng.integers(0, 3, keep.sum())) % 40,
                          "time": [start + dt.timedelta(days=int(d)) for d in day[keep]]})
    schema = {"member": dict(pkey="member_id", time_col="joined"), "class": dict(pkey="class_id"),
              "visit": dict(pkey="visit_id", fkeys={"member_id": "member", "class_id": "class"}, time_col="time")}
    return Database({"member": member, "class": klass, "visit": visit}, schema, name="gym",
                    val_timestamp=start + dt.timedelta(days=540), test_timestamp=start + dt.timedelta(days=630))


@TASKS.register("member-churn")
def member_churn(db: Database, timedelta=30):
    "Members who visited in the last 30 days and do not in the next 30."
    return churn_task(db, "member", "visit", timedelta, name="member-churn")


def _same_plan(db, entity_table):
    return {"column": "plan"}


@EDGE_BUILDERS.register("same_column", plan=_same_plan)
def same_column(db, entity_table, ids, t, column: str = "plan"):
    "Entities with the same value in one of their own columns, as of `t` (a clique per value, weight 1)."
    pk = db.schema[entity_table].pkey
    vals = pl.DataFrame({pk: ids}).join(db.upto(t)[entity_table].select(pk, column), on=pk, how="left", maintain_order="left")[column]
    codes = vals.rank("dense").to_numpy().astype(np.int64)
    i, j = np.nonzero(codes[:, None] == codes[None, :])
    return canonical(i, j, np.ones(len(i)), len(ids))


@MODELS.register("logreg_probe", consumes=("features",), task_types=("binary_classification",))
def logreg_probe(inputs, task_type, seed: int = 0,
                 C: float = 0.1,   # inverse L2 strength
                ):
    "A logistic regression on the history features: a probe of how much the features alone say."
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    tabs = inputs["features"]
    feats = [c for c in tabs["train"].columns if c not in ("entity", "timestamp", "y")]
    scale = StandardScaler().fit(tabs["train"].select(feats).to_numpy())
    X = {s: scale.transform(t.select(feats).to_numpy()) for s, t in tabs.items()}
    m = LogisticRegression(C=C, max_iter=1000, random_state=seed).fit(X["train"], tabs["train"]["y"].to_numpy())
    preds = pl.concat([t.select("entity", "timestamp", pl.lit(s).alias("split"), "y")
                       .with_columns(score=pl.Series(m.predict_proba(X[s])[:, 1])) for s, t in tabs.items()])
    return preds, {"features": len(feats), "C": C}

"Sessions, (X, T, Y) sequences, uplift and session purchase workflows: the invariants, the rules for bad input, the CLI."
import datetime as dt

import numpy as np
import polars as pl
import pytest

from relgraph.database import Database
from relgraph.records import read_json
from relgraph.sessions import (BOS, EVENT_SCHEMA, PAD, UNK, SessionDataset, Vocab, collate, make_event_shop, session_data,
                               sessions, split_users, sweep_summary, sweep_table, workflow_record, workflow_sweep, xty)
from relgraph.session_purchase import purchase_features, purchase_rows


def _h(x): return dt.datetime(2024, 1, 1) + dt.timedelta(hours=x)


def _db(events: dict) -> Database:
    users = sorted({u for u in events["user_id"] if u is not None})
    return Database(dict(user=pl.DataFrame({"user_id": users, "signup_time": [_h(0)] * len(users)}),
                         item=pl.DataFrame({"item_id": [5]}), event=pl.DataFrame(events)), EVENT_SCHEMA, check_keys=False)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_x_strictly_before_first_treatment_and_outcome(seed):
    db = make_event_shop(300, seed=seed)
    X = xty(sessions(db))
    ev = X.explode("x_time").drop_nulls("x_time")
    assert ev.filter(pl.col("x_time") >= pl.col("t_time")).height == 0
    first_buy = sessions(db).events.filter(pl.col("event_type") == "purchase").group_by("session_id").agg(pl.col("event_time").min().alias("b"))
    assert ev.join(first_buy, on="session_id").filter(pl.col("x_time") >= pl.col("b")).height == 0
    assert not set(X["x_type"].explode().drop_nulls().to_list()) & {"click", "purchase"}


def test_x_excludes_events_at_the_treatment_time():
    db = _db({"event_id": [0, 1, 2, 3], "user_id": [1] * 4, "item_id": [5] * 4,
              "event_type": ["impression", "impression", "click", "purchase"], "event_time": [_h(0), _h(1), _h(1), _h(2)]})
    row = xty(sessions(db)).row(0, named=True)
    assert row["x_type"] == ["impression"] and (row["T"], row["Y"]) == (1, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_no_user_crosses_splits(seed):
    sd = session_data(make_event_shop(400, seed=seed), seed=seed)
    assert sd.table.group_by("user").agg(pl.col("split").n_unique())["split"].max() == 1
    users = {s: set(sd.split(s)["user"].to_list()) for s in ("train", "val", "test")}
    assert not (users["train"] & users["val"]) and not (users["train"] & users["test"]) and not (users["val"] & users["test"])
    sp = split_users(np.arange(1000), seed=seed)
    assert sp["split"].value_counts().sort("split")["count"].to_list() == [150, 700, 150]


def test_vocab_fitted_on_training_users_only():
    sd = session_data(make_event_shop(400, seed=0), seed=0)
    train_items = set(sd.split("train")["x_item"].explode().drop_nulls().to_list())
    assert set(sd.vocabs["item"].tokens[3:]) == train_items
    v = Vocab.fit(["a", "b", "a"])
    assert v.tokens[:3] == ["<pad>", "<unk>", "<s>"] and (PAD, UNK, BOS) == (0, 1, 2)
    assert v.encode(["a", "never-seen"]).to_list() == [3, UNK]


def test_dataset_and_collate_pad_and_mask():
    sd = session_data(make_event_shop(200, seed=0), seed=0)
    ds = SessionDataset(sd, "train", max_len=6)
    b = collate([ds[i] for i in range(5)])
    assert (b["types"][:, 0] == BOS).all() and b["types"].shape[1] <= 6
    assert (b["types"][~b["mask"]] == PAD).all() and (b["mask"].sum(1) >= 1).all()


def test_bad_input_rules():
    ev = {"event_id": [0, 1, 2, 3, 4], "user_id": [1, 1, None, 2, 2], "item_id": [5] * 5,
          "event_type": ["impression", "impression", "click", "impression", "impression"],
          "event_time": [_h(0), _h(1), _h(1), None, _h(3)]}
    se = sessions(_db(ev))
    assert se.dropped["null_events"] == 2 and se.dropped["short_sessions"] == 1
    with pytest.raises(ValueError, match="null 'user_id' or 'event_time'"): sessions(_db(ev), on_null="error")
    with pytest.raises(ValueError, match="no treatment events: event_type never equals 'click'"): xty(se)
    with pytest.raises(ValueError, match="no outcome events"): xty(se, treatment="impression")
    with pytest.raises(ValueError, match="more than max_events=1"): sessions(_db(ev), min_events=1, max_events=1, too_long="error")
    assert sessions(_db(ev), min_events=1, max_events=1, too_long="truncate").events.height == 2


def test_purchase_features_ignore_the_future():
    base = {"event_id": [0, 1, 2, 3, 4], "user_id": [1] * 5, "item_id": [5] * 5,
            "event_type": ["impression", "search", "impression", "click", "purchase"],
            "event_time": [_h(0), _h(0.1), _h(0.2), _h(0.3), _h(0.4)]}
    def feats(ev):
        db = _db(ev); se = sessions(db)
        F, names = purchase_features(db, se, purchase_rows(se, observe=3))
        return F.select("y", *names).rows()
    more = {k: v + w for (k, v), w in zip(base.items(), ([9], [1], [5], ["click"], [_h(0.25)]))}
    assert feats(base) == feats(more) and feats(base)[0][0] == 1


def test_uplift_record_and_sweep(tmp_path):
    spec = {"name": "t", "base": {"workflow": "uplift", "data": {"users": 300}, "model": "t_learner"}, "grid": {"data.effect": [1.0, 0.0]}}
    res = workflow_sweep(spec, tmp_path)
    assert sorted(res.values()) == ["ok", "ok"]
    m = read_json(tmp_path/sorted(res)[0]/"metrics.json")
    assert {"test_auroc", "test_uplift_auc", "test_qini", "test_uplift_auc_z", "all_uplift_auc_z", "uplift_on"} <= set(m)
    src = "ab" if m["uplift_on"] == "randomized" else "all"   # the headline is the A/B slice's when the test sessions hold one
    assert m["test_uplift_auc_z"] == m[f"{src}_uplift_auc_z"] and (src == "ab") == ("ab_uplift_auc_z" in m)
    assert workflow_sweep(spec, tmp_path) == res   # finished records are not run again
    summ = sweep_summary(sweep_table(res, tmp_path))
    assert summ.height == 2 and sorted(summ["data.effect"].to_list()) == [0.0, 1.0] and summ["runs"].to_list() == [1, 1]


@pytest.mark.parametrize("nonlinear", [0.0, 1.0])
def test_event_shop_interactions(nonlinear):
    _, tr = make_event_shop(3000, seed=0, nonlinear=nonlinear, return_truth=True)
    s = tr.sessions.with_columns(prime=((pl.col("session_start").dt.hour() - 4 * (pl.col("segment") % 3) + 24) % 24) < 4)
    r = s.group_by("prime").agg(pl.col("p0").mean()).sort("prime")["p0"].to_list()
    assert (r[1] / r[0] > 2) if nonlinear else (0.75 < r[1] / r[0] < 1.33)   # the segment's prime time buys more only with the knob on


def test_purchase_record(tmp_path):
    p = workflow_record({"workflow": "session-purchase", "data": {"users": 1500, "purchase_rate": 0.05}, "model": "logreg"}, tmp_path)
    st = read_json(p/"status.json")
    assert st["status"] == "ok", st["error"]
    m = read_json(p/"metrics.json")
    assert {"test_pr_auc", "test_brier", "test_brier_calibrated", "threshold", "seconds_features"} <= set(m)


def test_cli(tmp_path, capsys):
    from relgraph.cli import main
    main(["sessions", "users=200", "--out", str(tmp_path/"s")])
    assert (tmp_path/"s"/"sessions.parquet").exists() and "sessions of" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e: main(["sessions", "users=200", "--treatment", "add_to_cart", "--out", str(tmp_path/"t")])
    assert e.value.code == 2 and "no treatment events" in capsys.readouterr().err


def test_cli_sweep_prints_the_summary(tmp_path, capsys):
    from relgraph.cli import main
    spec = tmp_path/"u.yaml"
    spec.write_text("name: u\nbase: {workflow: uplift, data: {users: 300}, model: t_learner}\ngrid: {data.seed: [0, 1]}\n")
    main(["sessions", "--sweep", str(spec), "--runs", str(tmp_path/"runs")])
    out = capsys.readouterr().out
    assert "2 runs: 2 ok" in out and "test_uplift_auc_z" in out and "±" in out

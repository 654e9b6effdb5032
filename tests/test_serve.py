"""`relgraph serve` over a real socket (httpx against a server in a subprocess): the record's scores, bad input, refusals."""
import datetime as dt
import os
import subprocess
import sys

import httpx
import numpy as np
import polars as pl
import pytest

from relgraph.io import save_relbench
from relgraph.records import run_record
from relgraph.serve import ServedRun, _free_port, _start
from relgraph.synthetic import make_shop

os.environ["RELGRAPH_PROGRESS"] = "0"
MODELS = {"sage": dict(epochs=5), "lightgbm": dict(model_params={"n_estimators": 200})}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "A SAGE and a LightGBM record of the 300-customer shop's churn task."
    d = tmp_path_factory.mktemp("runs")
    return {m: run_record(dict(model=m, data={"customers": 300}, **kw), d, engine="inprocess") for m, kw in MODELS.items()}


@pytest.fixture(scope="module", params=list(MODELS))
def server(request, runs):
    "(model, record, client) of `relgraph serve RECORD` listening on a free loopback port."
    port = _free_port()
    proc = _start(runs[request.param], port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=300) as c:
        yield request.param, runs[request.param], c
    proc.terminate()
    proc.wait(30)


def _preds(rec, split):
    p = pl.read_parquet(rec/"predictions.parquet").filter(pl.col("split") == split)
    return p.filter(pl.col("timestamp") == p["timestamp"].max())


@pytest.mark.parametrize("split", ["val", "test"])
def test_predict_matches_record(server, split):
    "/predict gives the record's scores for the same entities and t, labels at the record's threshold."
    model, rec, c = server
    p = _preds(rec, split)
    r = c.post("/predict", json={"entities": p["entity"].to_list(), "t": p["timestamp"][0].isoformat()})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [g["entity"] for g in got] == p["entity"].to_list()
    assert np.abs(np.array([g["score"] for g in got]) - p["score"].to_numpy()).max() < 1e-6, model
    thr = c.get("/model").json()["rule"]["threshold"]
    assert [g["label"] for g in got] == (p["score"].to_numpy() >= thr).astype(int).tolist()


def test_bad_input_is_json_and_the_server_keeps_serving(server):
    _, rec, c = server
    cases = [({"entities": [10**9]}, 404, "unknown customer id(s) [1000000000]"),
             ({"entities": [0], "t": "1990-01-01T00:00:00"}, 422, "before the data"),
             ({"entities": [0], "t": "not a time"}, 422, None), ({"entities": []}, 422, None),
             ({"entities": ["x"]}, 422, None), ({}, 422, None)]
    for body, code, text in cases:
        r = c.post("/predict", json=body)
        assert r.status_code == code and "detail" in r.json(), (body, r.status_code, r.text)
        if text: assert text in r.json()["detail"]
    assert c.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    r = c.post("/recommend", json={"users": [0], "k": 5})
    assert r.status_code == 501 and "link-prediction" in r.json()["detail"]
    assert c.post("/recommend", json={"users": [0], "k": 0}).status_code == 422
    assert c.get("/health").json()["status"] == "ok"
    e = _preds(rec, "test")["entity"][0]
    assert c.post("/predict", json={"entities": [int(e)]}).status_code == 200      # default t: the data's last row


def test_model_and_docs(server):
    model, rec, c = server
    m = c.get("/model").json()
    assert m["model"] == model and m["config"]["model"] == model and 0 <= m["metrics"]["test_auroc"] <= 1
    assert m["fingerprints"]["record"]["data"] == m["fingerprints"]["served_data"]
    assert m["task"]["task_type"] == "binary_classification" and m["rule"]["rule"] == "youden"
    assert c.get("/docs").status_code == 200
    assert {"/health", "/model", "/predict", "/recommend"} <= set(c.get("/openapi.json").json()["paths"])


def _cli(*args):
    return subprocess.run([sys.executable, "-c", "from relgraph.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def newer_db(tmp_path_factory):
    "The shop as a RelBench folder with a customer who signed up after the data's end and new reviews (customer 0 too)."
    db = make_shop(customers=300)
    later = db.max_timestamp + dt.timedelta(days=60)
    new = db.schema["customer"].pkey
    cust = pl.concat([db["customer"], pl.DataFrame({new: [300], "signup_time": [later], "region": ["north"]}, schema=db["customer"].schema)])
    rev = db["review"]
    add = pl.DataFrame({"review_id": [rev["review_id"].max() + 1, rev["review_id"].max() + 2], "customer_id": [300, 0], "product_id": [1, 2],
                        "review_time": [later + dt.timedelta(hours=1), later + dt.timedelta(hours=2)], "rating": [5, 4], "verified": [True, True]},
                       schema=rev.schema)
    tables = {k: db[k] for k in db.table_names} | {"customer": cust, "review": pl.concat([rev, add])}
    from relgraph.database import Database
    newer = Database(tables, db.schema, db.name, db.val_timestamp, db.test_timestamp)
    return save_relbench(newer, tmp_path_factory.mktemp("db")/"shop", reindex="never"), later + dt.timedelta(hours=3)


def test_refusals_are_one_line(runs, newer_db, tmp_path):
    bad = tmp_path/"failed-run"
    bad.mkdir()
    (bad/"status.json").write_text('{"status": "failed", "error": "ValueError: no labelled rows"}')
    r = _cli("serve", bad)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["relgraph: error: run failed-run is 'failed', not 'ok' (ValueError: no labelled rows); only a finished run can be served"]
    r = _cli("serve", runs["lightgbm"], "--db", newer_db[0])
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "differs from the one run" in r.stderr and "--accept-db" in r.stderr


@pytest.mark.parametrize("model", list(MODELS))
def test_new_rows_are_served_point_in_time(runs, newer_db, model):
    "Served from a database with newer rows: the record's scores at the test time are unchanged, the new customer is scored later."
    path, later = newer_db
    run = ServedRun(runs[model], db=path, accept_db=True)
    assert "served anyway" in run.warnings[0]
    p = _preds(runs[model], "test")
    got = run.predict(p["entity"].to_list(), p["timestamp"][0])["predictions"]
    assert np.abs(np.array([g["score"] for g in got]) - p["score"].to_numpy()).max() < 1e-6
    with pytest.raises(LookupError, match=r"\[300\]"): run.predict([300], p["timestamp"][0])   # not signed up yet
    old = run.predict([0], later - dt.timedelta(days=1))["predictions"][0]           # before customer 0's new review
    now = run.predict([300, 0], later)["predictions"]
    assert now[0]["entity"] == 300 and 0 <= now[0]["score"] <= 1 and now[1]["score"] != old["score"]


def test_recommend_over_http(tmp_path):
    "A link run (ItemKNN): /recommend gives the record's lists, leaves out past items by default; unknown users 404."
    rec = run_record(dict(model="itemknn", task="user-item-purchase", data={"customers": 300}), tmp_path, engine="inprocess")
    p = pl.read_parquet(rec/"predictions.parquet").filter(pl.col("split") == "test")
    t, k = p["timestamp"][0].isoformat(), int(p["pred"].list.len().max())
    port = _free_port()
    proc = _start(rec, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=300) as c:
            r = c.post("/recommend", json={"users": p["entity"].to_list(), "k": k, "t": t, "exclude_seen": False})
            assert r.status_code == 200, r.text
            assert [x["items"] for x in r.json()["recommendations"]] == p["pred"].to_list()
            five = c.post("/recommend", json={"users": p["entity"][:3].to_list(), "k": 5, "t": t}).json()["recommendations"]
            assert all(len(x["items"]) == 5 for x in five)
            r = c.post("/recommend", json={"users": [10**9], "t": t})
            assert r.status_code == 404 and "unknown customer id(s)" in r.json()["detail"]
            assert c.post("/recommend", json={"users": [0], "k": -1}).status_code == 422
            assert c.post("/predict", json={"entities": [0]}).status_code == 501
            assert c.get("/model").json()["recommend"] == "available"
    finally:
        proc.terminate()
        proc.wait(30)

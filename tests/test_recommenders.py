"""GNN recommenders: point-in-time graphs, the validate hook of fit_loop, the model entries and their predictions."""
import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

import relgraph.ranking  # registers the link_prediction task type
from relgraph.linktasks import interactions
from relgraph.recommenders import (PairLoss, build_recommender, link_pairs, negative_probs, rec_graph,
                                   recommend_at)
from relgraph.registry import MODELS, consumes
from relgraph.synthetic import make_shop
from relgraph.tasks import TASKS
from relgraph.tasktypes import TASK_TYPES
from relgraph.train import fit_loop

torch.set_num_threads(1)
TT = TASK_TYPES["link_prediction"]


@pytest.fixture(scope="module")
def shop():
    db = make_shop(120, seed=1)
    task = TASKS["user-item-purchase"](db)
    return db, task, interactions(db, task)


def test_graph_at_t_ignores_planted_future(shop):
    _, task, inter = shop
    t = task.timestamps("train")[2]
    future = inter.events.filter(pl.col("time") > t)
    late = pl.DataFrame({"src": [0, 1], "dst": [0, 1], "time": [t + dt.timedelta(seconds=1), t + dt.timedelta(days=30)]}).cast(inter.events.schema)
    planted = dataclasses.replace(inter, events=pl.concat([inter.events, late]).sort("time"))
    g, g2 = rec_graph(inter, t, item_k=5), rec_graph(planted, t, item_k=5)
    assert future.height > 0 and g.counts.sum() == inter.upto(t).height
    assert (g.counts != g2.counts).nnz == 0 and (g.recent != g2.recent).nnz == 0
    assert torch.equal(g.item_x, g2.item_x) and torch.equal(g.user_x, g2.user_x) and torch.equal(g.item_edges, g2.item_edges)
    # an interaction exactly at t is visible (time <= t)
    at = pl.DataFrame({"src": [0], "dst": [2], "time": [t]}).cast(inter.events.schema)
    g3 = rec_graph(dataclasses.replace(inter, events=pl.concat([inter.events, at]).sort("time")), t)
    assert g3.counts[0, 2] == g.counts[0, 2] + 1


def test_losses_and_negatives(shop):
    _, task, inter = shop
    g = rec_graph(inter, task.timestamps("val")[0])
    for how in ("uniform", "popularity"):
        q = negative_probs(g, how)
        assert abs(float(q.sum()) - 1) < 1e-5 and (q[~torch.from_numpy(g.catalogue)] == 0).all()
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    assert PairLoss("bpr").loss(logits, None) > 0 and PairLoss("softmax").loss(logits, None) > 0
    with pytest.raises(ValueError, match="negatives must be one of"): negative_probs(g, "hard")


def test_fit_loop_validate_hook():
    model = torch.nn.Linear(1, 1)
    seen = []
    def validate(m): seen.append(1); return 0.0, float(len(seen) == 2)   # best metric at the second epoch
    head = PairLoss("bpr")
    passes = lambda ep: iter([(model(torch.ones(4, 1)).repeat(1, 2), torch.zeros(4))])
    _, hist = fit_loop(model, head, passes, None, TT, epochs=5, patience=2, progress=False, validate=validate)
    assert hist["best_epoch"] == 1 and hist["epochs_run"] == 4 and hist["best_val_map@10"] == 1.0


def test_recommend_at_exclusion_and_catalogue(shop):
    _, task, inter = shop
    g = rec_graph(inter, task.timestamps("val")[0])
    model = build_recommender("sage", inter.n_src, inter.n_dst, dim=4)
    users = np.flatnonzero(np.asarray(g.counts.sum(1)).ravel() > 0)[:5]
    top = recommend_at(model, g, users, 10, exclude_past=True)
    for i, u in enumerate(users): assert not set(top[i][top[i] >= 0]) & set(g.counts[u].indices)
    g.catalogue[:3] = False
    assert not set(recommend_at(model, g, users, 10).ravel()) & {0, 1, 2}


@pytest.mark.parametrize("name,kw", [("sage_rec", dict(dim=8)), ("lightgcn", dict(dim=8, loss="softmax", negatives="popularity")),
                                     ("sage_rec_items", dict(dim=8, user_ids=False))])
def test_entries_predict_in_link_schema(shop, name, kw):
    _, task, inter = shop
    assert consumes(name)[0] == "interactions" and MODELS[name].task_types == ("link_prediction",)
    preds, info = MODELS[name]({"interactions": inter}, TT, epochs=2, **kw)
    assert preds.columns == ["entity", "timestamp", "split", "y", "pred"]
    assert preds.filter(pl.col("split") == "test").height == task.split("test").height
    assert preds["pred"].list.len().max() == min(100, inter.n_dst) and info["n_items"] == inter.n_dst
    assert set(preds["entity"].unique()) <= set(inter.src_ids) and set(preds["pred"].explode()) <= set(inter.dst_ids)
    assert len(info["history"]["val_map@10"]) == info["epochs_run"]


def test_user_graph_tower(shop):
    from relgraph.graphs import snapshots
    db, task, inter = shop
    ug = snapshots(db, task.as_entity_task(db), "shared_attribute", {"path": "review.customer_id -> review.product_id -> product.category"})
    preds, info = MODELS["sage_rec_graph"]({"interactions": inter, "graph": ug}, TT, epochs=1, dim=8)
    assert "user_graph_in=0" not in info["model"] and preds.height > 0


@pytest.mark.parametrize("model", ["sage_rec", "sage_rec_graph"])
def test_through_run_experiment(model, tmp_path):
    "Each recommender through the experiment: sage_rec_graph gets the `graph` input built on the link task's sources."
    from relgraph.experiment import run_experiment
    m = run_experiment(dict(data={"customers": 120}, task="user-item-purchase", model=model, epochs=2, model_params={"dim": 8}), tmp_path)
    assert 0 <= m["test_map@10"] <= 1 and "val_map@10" in m
    assert (tmp_path/"model"/"model.json").is_file()   # the trained model, saved without pickle


def test_graph_input_of_a_link_task_holds_every_visible_source(shop):
    "The user graph is built on every customer visible at t, not on the task rows (those who buy in the window)."
    from relgraph.builders import entity_ids
    from relgraph.registry import INPUTS
    db, task, _ = shop
    g = INPUTS["graph"](db, task, {"builder": "shared_attribute", "builder_params": {}, "seed": 0})
    for split in ("train", "test"):
        d, t = g[split][0], task.timestamps(split)[0]
        visible = entity_ids(db.upto(t), "customer").to_numpy()
        assert np.array_equal(np.sort(d.node_id.numpy()), visible)
        assert len(visible) > task.split(split).filter(pl.col("timestamp") == t).height   # more nodes than buyers


def test_record_holds_embeddings_and_figure(tmp_path):
    from relgraph.experiment import run_experiment
    run_experiment(dict(data={"customers": 120}, task="user-item-purchase", model="lightgcn", epochs=1, model_params={"dim": 4}), tmp_path)
    items = pl.read_parquet(tmp_path/"embeddings"/"items.parquet")
    assert items.columns[:2] == ["key", "group"] and items.width == 2 + 4 + 1   # dim + the bias coordinate
    assert (tmp_path/"figures"/"embeddings.png").stat().st_size > 0
    assert "embeddings" not in (tmp_path/"train.json").read_text()


def test_link_sampler_planted_future_on_the_shop(shop):
    from relgraph.sampling import LinkSampler, interaction_graph
    _, task, inter = shop
    ev = inter.events
    secs = lambda s: torch.from_numpy(s.dt.epoch("s").to_numpy()).long()
    t = task.timestamps("val")[0]
    seeds = torch.from_numpy(inter.tables["val"]["src"].to_numpy()[:20]).long()
    tt_ = torch.full((len(seeds),), int(dt.datetime.timestamp(t.replace(tzinfo=dt.timezone.utc))))
    full = interaction_graph(torch.from_numpy(ev["src"].to_numpy()), torch.from_numpy(ev["dst"].to_numpy()), secs(ev["time"]), inter.n_src, inter.n_dst)
    past = ev.filter(pl.col("time") <= t)
    cut = interaction_graph(torch.from_numpy(past["src"].to_numpy()), torch.from_numpy(past["dst"].to_numpy()), secs(past["time"]), inter.n_src, inter.n_dst)
    a = LinkSampler(full, (5, 5)).sample(seeds, tt_, torch.Generator().manual_seed(0))
    b = LinkSampler(cut, (5, 5)).sample(seeds, tt_, torch.Generator().manual_seed(0))
    assert ev.filter(pl.col("time") > t).height > 0 and a.edge_index.shape[1] > 0
    for k in ("src_id", "dst_id", "edge_index", "edge_time"): assert torch.equal(a[k], b[k])
    assert (a.edge_time <= tt_[0]).all()

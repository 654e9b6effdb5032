"""Models, sampler, training loop and model entries: checks too slow or too end-to-end for a notebook cell."""
import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from relgraph.models import LAYERS, build_model
from relgraph.registry import MODELS
from relgraph.sampling import neighbor_loader, sample_neighbors, sampling_backend
from relgraph.tasktypes import TASK_TYPES
from relgraph.testing import random_graph, toy_snapshot
import relgraph.train as T
from relgraph.train import fit_loop, predict, train_gnn

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def snapshots():
    train = [toy_snapshot(150, seed=s, snapshot_time=dt.datetime(2020, s + 1, 1)) for s in range(2)]
    val = [toy_snapshot(150, seed=10, snapshot_time=dt.datetime(2020, 4, 1))]
    return train, val


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("opts", [{}, dict(residual=False, jk="cat", norm="batch"), dict(layers=3, jk="max", norm=None)])
def test_every_model_and_option_trains(name, opts, snapshots):
    train, val = snapshots
    m, h = train_gnn(build_model(name, 4, hidden=8, heads=2, **opts), train, val, epochs=15, lr=0.02, patience=100,
                     progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert len(h["epoch"]) == 15 and h["batch"] == "full"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_permutation_equivariance_random_graph(name):
    g = random_graph(n=30, e=120, seed=2)
    m = build_model(name, 4, hidden=8, heads=2).eval()
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm); inv[perm] = torch.arange(30)
    ref = m(g.x, g.edge_index, g.edge_weight)
    out = m(g.x[perm], inv[g.edge_index], g.edge_weight)
    torch.testing.assert_close(out, ref[perm], atol=1e-5, rtol=1e-5)


def test_auto_switches_to_minibatches_for_large_graphs(snapshots, monkeypatch):
    train, val = snapshots
    monkeypatch.setattr(T, "FULL_BATCH_MAX_NODES", 100)
    m, h = train_gnn(build_model("sage", 4, hidden=8), train, val, epochs=3, batch_size=32, progress=False)
    assert h["batch"] == "neighbor" and h["sampler"] == sampling_backend()
    p = predict(m, val)
    assert p.height == int(val[0].label_mask.sum()) and p["score"].is_between(0, 1).all()


def test_sampler_seeds_edges_and_fanout_on_a_larger_graph():
    g = random_graph(n=2000, e=20000, seed=5)
    for b in neighbor_loader(g, torch.arange(0, 2000, 7), [10, 5], batch_size=100, shuffle=True, seed=0, backend="torch"):
        assert torch.equal(g.edge_index[:, b.e_id], b.n_id[b.edge_index])
        hop = torch.repeat_interleave(torch.arange(2), torch.tensor(b.num_sampled_edges))
        for k, fan in enumerate([10, 5]):
            assert torch.bincount(b.edge_index[1, hop == k]).max() <= fan
        assert b.n_id.unique().numel() == b.num_nodes


def test_predictions_match_evaluate(snapshots):
    ev = pytest.importorskip("relgraph.evaluate")
    from sklearn.metrics import roc_auc_score
    train, val = snapshots
    m, _ = train_gnn(build_model("gcn", 4, hidden=8), train, val, epochs=5, progress=False)
    p = predict(m, val)
    assert p.columns == ["entity", "timestamp", "y", "score"]
    assert ev.evaluate(p["y"].to_numpy(), p["score"].to_numpy())["auroc"] == pytest.approx(roc_auc_score(p["y"], p["score"]))


def test_one_training_entity_trains_and_predicts():
    "A snapshot with a single labelled training entity (BatchNorm used to fail: 'Expected more than 1 value per channel')."
    g = toy_snapshot(40, seed=3)
    g.label_mask = torch.zeros(40, dtype=torch.bool); g.label_mask[int(torch.nonzero(g.y == 0)[0])] = True
    val = toy_snapshot(40, seed=4)
    for name in sorted(LAYERS):
        m, h = train_gnn(build_model(name, 4, hidden=8, heads=2), [g], [val], epochs=2, progress=False)
        assert h["epochs_run"] == 2
        p = predict(m, g)
        assert p.height == 1 and p["score"].is_between(0, 1).all()
    single = g.subgraph(g.label_mask)                                  # one node, no edges
    m, _ = train_gnn(build_model("gcn", 4, hidden=8), [single], [val], epochs=2, progress=False)
    assert predict(m, single).height == 1


def test_fit_loop_early_stopping_and_best_state():
    "Stops `patience` epochs after the best, restores that epoch's weights, records the val metric of the task type."
    torch.manual_seed(0)
    X = torch.randn(200, 2); Y = (X[:, 0] > 0).float()
    tt = TASK_TYPES["binary_classification"]
    lin = torch.nn.Linear(2, 1)
    seen = {}
    def val():
        out = lin(X[100:]).squeeze(-1)
        return iter([(out, Y[100:])])
    def train(epoch):
        yield lin(X[:100]).squeeze(-1), Y[:100]
        seen[epoch] = {k: v.clone() for k, v in lin.state_dict().items()}
    lin, h = fit_loop(lin, tt.head(Y[:100].numpy()), train, val, tt, epochs=300, lr=0.1, patience=3, progress=False)
    assert h["epochs_run"] == h["best_epoch"] + 4 or h["epochs_run"] == 300
    assert h["best_val_auroc"] == max(h["val_auroc"])
    assert set(h) >= {"epoch", "train_loss", "val_loss", "val_auroc", "best_epoch", "epochs_run", "seconds"}


@pytest.mark.parametrize("task_type", sorted(TASK_TYPES))
def test_model_entries_every_task_type(task_type, snapshots):
    "Each MODELS entry of a layer runs on snapshot graphs of each task type and returns the prediction schema."
    train, val = snapshots
    def relabel(g):
        g = g.clone()
        if task_type == "regression": g.y = torch.where(g.label_mask, 10 + 3 * g.x[:, 0], float("nan"))
        if task_type == "multiclass_classification": g.y = torch.where(g.label_mask, torch.bucketize(g.x[:, 0], torch.tensor([-0.3, 0.6])).float(), float("nan"))
        return g
    inputs = {"graph": {"train": [relabel(g) for g in train], "val": [relabel(g) for g in val], "test": [relabel(g) for g in val]}}
    for name in sorted(LAYERS):
        preds, info = MODELS[name](inputs, task_type, seed=0, epochs=3, hidden=8, **({"heads": 2} if name == "gat" else {}))
        assert preds.columns == ["entity", "timestamp", "split", "y", "score"], name
        assert preds["split"].unique().sort().to_list() == ["test", "train", "val"]
        want = pl.List(pl.Float64) if task_type == "multiclass_classification" else pl.Float64
        assert preds.schema["score"] == want and preds.schema["entity"] == pl.Int64
        assert f"val_{TASK_TYPES[task_type].val_metric}" in info["history"]

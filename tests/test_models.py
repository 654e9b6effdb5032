"""Models, sampler, training and tabular baselines: checks too slow or too end-to-end for a notebook cell."""
import datetime as dt

import numpy as np
import polars as pl
import pytest
import torch

from relgraph.models import MODELS, build_model
from relgraph.sampling import neighbor_loader, sample_neighbors, sampling_backend, _random_graph
import relgraph.train as T
from relgraph.train import predict, toy_snapshot, train_gnn
from relgraph.tabular import TABULAR, fit_tabular, predict_tabular, _known_table

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def snapshots():
    train = [toy_snapshot(150, seed=s, time=dt.datetime(2020, s + 1, 1)) for s in range(2)]
    val = [toy_snapshot(150, seed=10, time=dt.datetime(2020, 4, 1))]
    return train, val


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("opts", [{}, dict(residual=True, jk="cat", norm="layer"), dict(layers=3, jk="max", norm=None)])
def test_every_model_and_option_trains(name, opts, snapshots):
    train, val = snapshots
    m, h = train_gnn(build_model(name, 4, hidden=8, heads=2, **opts), train, val, epochs=15, lr=0.02, patience=100,
                     progress=False)
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert len(h["epoch"]) == 15 and h["batch"] == "full"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_permutation_equivariance_random_graph(name):
    g = _random_graph(n=30, e=120, seed=2)
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
    g = _random_graph(n=2000, e=20000, seed=5)
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
    assert ev.evaluate(p["y"].to_numpy(), p["score"].to_numpy())["auroc"] == pytest.approx(roc_auc_score(p["y"], p["score"]))


def test_tabular_registry_on_known_table():
    tab = _known_table(1500, seed=1)
    tr, va, te = tab[:900], tab[900:1200], tab[1200:]
    from sklearn.metrics import roc_auc_score
    auc = {n: roc_auc_score(te["churn"], predict_tabular(fit_tabular(n, tr, tr["churn"], va, va["churn"]), te)) for n in TABULAR}
    assert auc["churn_rate"] == 0.5 and auc["lightgbm"] > 0.85 and auc["past_activity"] > 0.55

"""The heterogeneous RDL baseline against RelBench: same graph as `make_pkey_fkey_graph`, correct node times,
temporal sampling invariants on a random shop, and the training path end to end."""
import datetime as dt
import importlib.util

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from relgraph.core import ns_epoch
from relgraph.database import Database, TableSchema
from relgraph.hetero import hetero_graph, hetero_graph_with_keys, to_relbench_db, train_hetero
from relgraph.registry import INPUTS, MODELS
from relgraph.sampling import HeteroLoader, TemporalSampler

torch.set_num_threads(1)
HAS_TORCH_FRAME = importlib.util.find_spec("torch_frame") is not None
US = np.datetime64("2020-01-01", "us")


def random_shop(n=200, seed=0, dangling=True) -> Database:
    "A random shop in [us] time units; some reviews and clicks point at missing customers/products (set to null)."
    rng = np.random.default_rng(seed)
    day = 86_400 * 10**6
    m, c = 8 * n, 12 * n
    customer = pl.DataFrame({"customer_id": rng.permutation(n) * 7 + 3, "signup_time": US + rng.integers(0, 60 * day, n),
                             "region": rng.choice(["n", "s", "e", "w"], n), "age": rng.normal(40, 10, n)})
    product = pl.DataFrame({"product_id": np.arange(30) + 1000, "brand": rng.choice(["a", "b", "c"], 30),
                            "category": [[f"c{i % 5}", f"c{i % 3}"] for i in range(30)], "price": rng.gamma(2, 10, 30)})
    cust_ids = customer["customer_id"].to_numpy()
    review = pl.DataFrame({"review_id": np.arange(m), "customer_id": rng.choice(cust_ids, m),
                           "product_id": rng.integers(1000, 1030 + (5 if dangling else 0), m),
                           "review_time": US + rng.integers(0, 365 * day, m), "rating": rng.integers(1, 6, m)})
    click = pl.DataFrame({"click_id": np.arange(c), "customer_id": rng.choice(cust_ids, c), "product_id": rng.integers(1000, 1030, c),
                          "click_time": US + rng.integers(0, 365 * day, c)})
    schema = dict(customer=TableSchema("customer_id", time_col="signup_time"), product=TableSchema("product_id"),
                  review=TableSchema("review_id", {"customer_id": "customer", "product_id": "product"}, "review_time"),
                  click=TableSchema("click_id", {"customer_id": "customer", "product_id": "product"}, "click_time"))
    db = Database(dict(customer=customer, product=product, review=review, click=click), schema, name="random-shop",
                  val_timestamp="2020-10-01", test_timestamp="2020-11-15", check_keys=False)
    return db.fix_dangling("null")


def relbench_counts(rb) -> tuple[dict, dict]:
    "Node and edge counts per type by `make_pkey_fkey_graph`'s rules (read from relbench/modeling/graph.py)."
    nodes, edges = {}, {}
    for name, table in rb.table_dict.items():
        nodes[name] = len(table.df)
        for fkey, ref in table.fkey_col_to_pkey_table.items():
            n = int(table.df[fkey].notna().sum())  # dangling (null) foreign keys give no edge
            edges[(name, f"f2p_{fkey}", ref)] = edges[(ref, f"rev_f2p_{fkey}", name)] = n
    return nodes, edges


@pytest.mark.parametrize("t", [None, "2020-06-01"])
def test_counts_match_relbench_rules(t):
    db = random_shop()
    g = hetero_graph(db, t)
    nodes, edges = relbench_counts(to_relbench_db(db if t is None else db.upto(t)))
    assert {k: g[k].num_nodes for k in g.node_types} == nodes
    assert {et: g[et].num_edges for et in g.edge_types} == edges
    assert g["review", "f2p_product_id", "product"].num_edges < db["review"].height  # the dangling products are gone


@pytest.mark.skipif(not HAS_TORCH_FRAME, reason="relbench.modeling.graph needs pytorch-frame (pip install pytorch-frame)")
@pytest.mark.parametrize("t", [None, "2020-06-01"])
def test_graph_equals_make_pkey_fkey_graph(t):
    import torch_frame
    from relbench.modeling.graph import make_pkey_fkey_graph
    from relbench.modeling.utils import get_stype_proposal
    db = random_shop()
    rb = to_relbench_db(db if t is None else db.upto(t))
    stypes = {k: {c: torch_frame.categorical if s == torch_frame.text_embedded else s for c, s in v.items()}
              for k, v in get_stype_proposal(rb).items()}
    ref, _ = make_pkey_fkey_graph(rb, stypes)
    g = hetero_graph(db, t)
    assert sorted(ref.node_types) == sorted(g.node_types) and sorted(ref.edge_types) == sorted(g.edge_types)
    for nt in ref.node_types:
        assert ref[nt].num_nodes == g[nt].num_nodes
        assert ("time" in ref[nt]) == ("time" in g[nt])
        if "time" in ref[nt]: assert torch.equal(ref[nt].time, g[nt].time)  # ns at the boundary: same seconds
    for et in ref.edge_types:
        assert torch.equal(ref[et].edge_index, g[et].edge_index), et


def test_node_times_are_epoch_seconds():
    db = random_shop(dangling=False)
    g = hetero_graph(db)
    rv = db["review"]
    expect = ((rv["review_time"].to_numpy().astype("datetime64[s]") - np.datetime64("1970-01-01", "s")).astype(np.int64))
    assert g["review"].time.tolist() == expect.tolist()
    assert g["review"].time.min() > 1_577_836_800 - 1 and g["review"].time.max() < 1_609_459_200  # within 2020
    # the pandas boundary: to_relbench_db hands RelBench ns columns, so its `astype(int64) // 10**9` is right
    pdf = to_relbench_db(db).table_dict["review"].df
    assert str(pdf["review_time"].dtype) == "datetime64[ns]"
    assert (ns_epoch(pdf["review_time"]) == expect).all()
    # ... whereas a [us] column (pandas 3's default for these files) would come out 1000x too small
    us = pd.Series(rv["review_time"].dt.cast_time_unit("us").to_numpy())
    assert (us.astype("int64").to_numpy() // 10**9 != expect).all()


@pytest.mark.parametrize("strategy", ["uniform", "last"])
def test_sampler_invariants(strategy):
    db = random_shop()
    g, maps = hetero_graph_with_keys(db)
    k = (4, 3)
    rng = np.random.default_rng(1)
    seeds = torch.from_numpy(rng.integers(0, g["customer"].num_nodes, 300))
    times = torch.from_numpy(rng.integers(int(g["review"].time.min()), int(g["review"].time.max()), 300))
    edge_sets = {et: set(zip(*g[et].edge_index.tolist())) for et in g.edge_types}
    rt = g["review"].time; rc = g["review", "f2p_customer_id", "customer"].edge_index
    for b in HeteroLoader(g, "customer", seeds, times, k, batch_size=64, temporal_strategy=strategy, backend="torch"):
        ids, B = b["customer"].input_id, b["customer"].batch_size
        assert torch.equal(b["customer"].n_id[:B], seeds[ids]) and torch.equal(b["customer"].batch[:B], torch.arange(B))  # seeds first
        for nt in b.node_types:
            first = B if nt == "customer" else 0  # the seeds themselves are given, not sampled
            if "time" in b[nt]: assert (b[nt].time[first:] <= b["customer"].seed_time[b[nt].batch[first:]]).all(), nt  # no future row
        for et in b.edge_types:
            s, d = b[et].edge_index
            if s.numel() == 0: continue
            hop = 0 if et[2] == "customer" else 1
            assert torch.bincount(d).max() <= k[hop], et                                     # fan-out bound
            assert (b[et[0]].batch[s] == b[et[2]].batch[d]).all()                            # disjoint subgraphs
            assert set(zip(b[et[0]].n_id[s].tolist(), b[et[2]].n_id[d].tolist())) <= edge_sets[et]
        # hop 1: each seed gets exactly min(k, #reviews visible at its time), and with 'last' the most recent ones
        s, d = b["review", "f2p_customer_id", "customer"].edge_index
        d_seed = d[d < B]
        got = torch.bincount(d_seed, minlength=B)
        vis = (rc[1][None, :] == seeds[ids][:, None]) & (rt[rc[0]][None, :] <= times[ids][:, None])
        assert torch.equal(got, vis.sum(1).clamp(max=k[0]))
        if strategy == "last":
            for i in range(min(B, 10)):
                picked = sorted(rt[b["review"].n_id[s[d == i]]].tolist())
                assert picked == sorted(rt[rc[0][vis[i]]].tolist())[-len(picked):] if picked else True


def test_sampler_is_seeded():
    g = hetero_graph(random_shop())
    seeds, times = torch.arange(50), torch.full((50,), int(g["review"].time.max()))
    one = lambda s: next(iter(HeteroLoader(g, "customer", seeds, times, (5, 5), batch_size=50, seed=s, backend="torch")))
    assert torch.equal(one(0)["review"].n_id, one(0)["review"].n_id)
    assert not torch.equal(one(0)["review"].n_id, one(1)["review"].n_id)


def test_train_hetero_on_synthetic_shop():
    synthetic = pytest.importorskip("relgraph.synthetic")
    from relgraph.tasks import make_task
    db = synthetic.make_shop(customers=400, seed=0)
    task = make_task(db, "user-churn")
    res = train_hetero(db, task, hidden=32, num_neighbors=(8, 4), batch_size=256, epochs=3, device="cpu", progress=False)
    assert res["backend"] == "torch"
    p = res["predictions"]
    assert p.height == sum(task.split(s).height for s in task.tables)
    assert p.columns == ["entity", "timestamp", "split", "y", "score"]
    assert dict(p.schema) == {"entity": pl.Int64, "timestamp": pl.Datetime("ns"), "split": pl.String, "y": pl.Float64, "score": pl.Float64}
    assert all(np.isfinite(v) for v in res["history"]["train_loss"])
    y = task.split("train")["churn"].drop_nulls()
    assert res["head"] == {"head": "BinaryHead", "pos_weight": pytest.approx((y == 0).sum() / y.sum()), "out_dim": 1}  # weighting "auto"
    assert 0.0 <= res["metrics"]["test"]["auroc"] <= 1.0


@pytest.mark.parametrize("name", ["hetero_sage", "relbench_sage"])
def test_hetero_entries_run_from_the_registry(name):
    "Both hetero models run as MODELS entries on the `hetero` input, with the shared defaults (patience 10, weight auto)."
    if name == "relbench_sage" and not HAS_TORCH_FRAME: pytest.skip("relbench_sage needs pytorch-frame (pip install pytorch-frame)")
    import inspect
    synthetic = pytest.importorskip("relgraph.synthetic")
    from relgraph.tasks import make_task
    from relgraph.tasktypes import task_type
    db = synthetic.make_shop(customers=300, seed=0); task = make_task(db, "user-churn")
    entry = MODELS[name]
    assert entry.consumes == ("hetero",)
    defaults = {k: p.default for k, p in inspect.signature(entry).parameters.items()}
    assert defaults["patience"] == 10 and defaults["weight"] == "auto"
    preds, info = entry({"hetero": INPUTS["hetero"](db, task, {"split": "temporal"})}, task_type(task), seed=0, epochs=2,
                        hidden=16, num_neighbors=(4, 4))
    assert preds.columns == ["entity", "timestamp", "split", "y", "score"] and preds.height == sum(task.split(s).height for s in task.tables)
    assert info["epochs_run"] == 2 and "val_auroc" in info["history"]


def test_hetero_loader_uses_pyg_where_pyg_lib_is_installed(monkeypatch):
    "With pyg-lib importable, HeteroLoader hands the seeds and their times to PyG's NeighborLoader (mocked here)."
    import torch_geometric.loader, torch_geometric.typing
    calls = []
    class Fake:
        def __init__(self, data, **kw): calls.append(kw)
        def __iter__(self): return iter([])
    monkeypatch.setattr(torch_geometric.typing, "WITH_PYG_LIB", True)
    monkeypatch.setattr(torch_geometric.loader, "NeighborLoader", Fake)
    g = hetero_graph(random_shop())
    loader = HeteroLoader(g, "customer", torch.arange(5), torch.full((5,), 1_600_000_000), (3, 2), batch_size=2)
    assert loader.backend == "pyg" and list(loader) == []
    assert calls[0]["input_nodes"][0] == "customer" and calls[0]["time_attr"] == "time" and calls[0]["disjoint"]

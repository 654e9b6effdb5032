"""Exact chunked top-K: brute-force agreement, exclusion, chunk boundaries."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from relgraph.topk import bench_topk, chunk_rows, topk


def _brute(Q, I, k, ex=None):
    s = torch.from_numpy(Q).double() @ torch.from_numpy(I).double().T
    if ex is not None: s = s.masked_fill(torch.from_numpy(ex.toarray() != 0), float("-inf"))
    v, i = torch.topk(s, k)
    return i.numpy(), v.numpy()


@pytest.mark.parametrize("chunk", [1, 2, 7, 8, 9, 63, 64, 65, 1000])
def test_exact_across_chunk_boundaries(chunk):
    g = np.random.default_rng(1)
    Q, I = g.normal(size=(64, 5)).astype(np.float32), g.normal(size=(40, 5)).astype(np.float32)
    ex = sp.random(64, 40, density=0.2, random_state=1, format="csr")
    for e in (None, ex):
        idx, val = topk(Q, I, 6, exclude=e, chunk=chunk)
        bi, bv = _brute(Q, I, 6, e)
        np.testing.assert_array_equal(idx, bi)
        np.testing.assert_allclose(val, bv, rtol=1e-5, atol=1e-5)


def test_exclusion_never_returned_and_padded():
    Q = np.ones((2, 1), np.float32); I = np.arange(4, dtype=np.float32)[:, None]
    ex = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 1, 1, 0]]))
    idx, val = topk(Q, I, 3, exclude=ex, chunk=1)
    assert idx.tolist() == [[2, 1, 0], [3, -1, -1]]
    assert np.isneginf(val[1, 1:]).all()


def test_k_larger_than_catalogue_and_torch_inputs():
    idx, val = topk(torch.eye(3), torch.eye(3) * torch.tensor([[1.0], [2.0], [3.0]]), 10)
    assert idx.shape == (3, 3) and idx[:, 0].tolist() == [0, 1, 2]
    assert idx.dtype == np.int64 and val.dtype == np.float32


def test_bad_input():
    with pytest.raises(ValueError, match="sparse argument has shape"): topk(np.ones((2, 3)), np.ones((4, 3)), 1, exclude=sp.eye(2, 3))
    with pytest.raises(ValueError, match="dim"): topk(np.ones((2, 3)), np.ones((4, 2)), 1)


def test_chunk_rows_and_tiny_bench(capsys):
    assert chunk_rows(1000, 1) == 262
    r = bench_topk(users=300, items=500, dim=8, k=5)
    assert r["ratio"] > 0 and "ratio" in capsys.readouterr().out


def test_add_sparse_scores_matches_brute():
    g = np.random.default_rng(2)
    Q, I = g.normal(size=(30, 4)).astype(np.float32), g.normal(size=(20, 4)).astype(np.float32)
    add = sp.random(30, 20, density=0.2, random_state=2, format="csr", dtype=np.float32) * 3
    full = torch.from_numpy(Q).double() @ torch.from_numpy(I).double().T + torch.from_numpy(add.toarray()).double()
    for c in (1, 7, 30):
        np.testing.assert_array_equal(topk(Q, I, 5, add=add, chunk=c)[0], torch.topk(full, 5).indices.numpy())

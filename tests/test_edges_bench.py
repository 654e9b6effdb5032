"The edge benchmark end to end at a tiny size: co_interaction and PyG's AddMetaPaths must find the same edges."
import json
from relgraph.edges import bench_edges


def test_bench_edges_tiny(tmp_path, capsys):
    out = tmp_path / "bench.json"
    res = bench_edges(customers=300, scale_customers=3000, scale_reviews=20_000, scale_products=500, top_k=5, max_hub=100,
                      out=str(out))
    assert res["shop"]["same_edges"] is True
    assert res["shop"]["ours"]["edges"] == res["shop"]["pyg"]["edges"] > 0
    assert 0 < res["scale"]["edges"] <= 3000 * 5
    assert json.loads(out.read_text())["shop"]["customers"] == 300
    printed = capsys.readouterr().out
    assert "same edge set: True" in printed and "AddMetaPaths" in printed

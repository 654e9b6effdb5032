"The edge benchmark end to end at a tiny size: co_interaction and PyG's AddMetaPaths must find the same edges."
import json
from relgraph.bench import bench_edges


def test_bench_edges_tiny(tmp_path, capsys):
    out = tmp_path / "bench.json"
    res = bench_edges(sizes="300", scale_customers=3000, scale_reviews=20_000, scale_products=500, top_k=5, max_hub=100,
                      repeats=1, out=str(out))
    shop = res["shops"][0]
    assert shop["same_edges"] is True and shop["ours"]["exact_top_k"] is True and shop["ours"]["fused"] is True
    assert shop["ours"]["all_edges"] == shop["pyg"]["edges"] > shop["ours"]["edges"] > 0
    assert 0 < res["scale"]["edges"] <= 3000 * 5
    assert json.loads(out.read_text())["shops"][0]["customers"] == 300
    printed = capsys.readouterr().out
    assert "the same edge set: True" in printed and "exactly the top 5 of those pairs: True" in printed and "AddMetaPaths" in printed

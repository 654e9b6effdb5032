"""Entries of one's own, registered at run time from a plugin file, run through `relgraph run` and a sweep like built-in ones."""
import os, subprocess, textwrap
from pathlib import Path

from relgraph.records import read_json, record_status

PLUGIN = Path(__file__).resolve().parent.parent/"examples"/"gym_plugin.py"
ENV = {**os.environ, "RELGRAPH_PROGRESS": "0"}


def _run(*words, runs):
    return subprocess.run(["relgraph", *words, "--runs", str(runs)], capture_output=True, text=True, env=ENV)


def test_plugin_dataset_builder_and_model_through_run(tmp_path):
    runs = tmp_path/"runs"
    common = [f"plugins=[{PLUGIN}]", "dataset=gym", "data.members=150", "task=member-churn"]
    r = _run("run", *common, "builder=same_column", "model=sage", "epochs=3", runs=runs)   # papermill: the kernel imports the plugin
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run("run", *common, "model=logreg_probe", "model_params.C=0.5", "--engine", "inprocess", runs=runs)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = sorted(p for p in runs.iterdir() if (p/"status.json").exists())
    assert [record_status(p) for p in recs] == ["ok", "ok"]
    by_model = {read_json(p/"config.json")["model"]: p for p in recs}
    assert read_json(by_model["sage"]/"graph.json")["builder_params"] == {"column": "plan"}   # the builder's own plan
    assert (by_model["sage"]/"experiment.ipynb").exists()
    assert read_json(by_model["logreg_probe"]/"train.json")["C"] == 0.5


def test_plugin_entries_through_a_sweep(tmp_path):
    (tmp_path/"sweep.yaml").write_text(textwrap.dedent(f"""
        base: {{plugins: ["{PLUGIN}"], dataset: gym, data: {{members: 150}}, task: member-churn, epochs: 3}}
        grid:
          builder: [same_column, co_interaction]
          model: [logreg_probe, sage]
          seed: [0]
    """))
    r = _run("sweep", str(tmp_path/"sweep.yaml"), "--engine", "inprocess", runs=tmp_path/"runs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 configurations: 3 ok, 0 failed" in r.stdout, r.stdout   # logreg_probe consumes no graph: one run

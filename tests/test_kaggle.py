"""The Kaggle bundle: valid metadata and driver notebook; the driver run locally with /kaggle paths remapped; pull."""
import json, os, subprocess, textwrap

import nbformat
import papermill as pm
import pytest

from relgraph.experiment import DEFAULTS
from relgraph.records import read_json, record_status
from relgraph.kaggle import pull, validate_metadata

SPEC = textwrap.dedent("""
    grid:
      dataset: [synthetic, data/rel-shop]
      model: [gcn, mlp]
      seed: [0]
""")

STANDIN = '''
import json
from pathlib import Path
if model == "mlp": raise ValueError("deliberately broken configuration")
Path(run_dir, "metrics.json").write_text(json.dumps({"test_auroc": 0.6, "dataset": dataset}))
'''


@pytest.fixture
def standin(tmp_path, monkeypatch):
    params = "\n".join(f"{k} = {v!r}" for k, v in {**DEFAULTS, "run_dir": ""}.items())
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(STANDIN)]
    nbformat.write(nb, tmp_path/"standin.ipynb")
    monkeypatch.setenv("RELGRAPH_EXPERIMENT_NB", str(tmp_path/"standin.ipynb")); monkeypatch.setenv("RELGRAPH_PROGRESS", "0")


def bundle(tmp_path):
    (tmp_path/"sweep.yaml").write_text(SPEC)
    r = subprocess.run(["relgraph", "kaggle", "bundle", str(tmp_path/"sweep.yaml"), "--dataset", "alice/rel-shop",
                        "--out", str(tmp_path/"bundle"), "--commit", "0123456789abcdef0123"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return tmp_path/"bundle"


def test_bundle_is_valid(tmp_path):
    b = bundle(tmp_path)
    meta = json.loads((b/"kernel-metadata.json").read_text())
    validate_metadata(meta, b)
    assert meta["enable_gpu"] is True and meta["enable_internet"] is True and meta["dataset_sources"] == ["alice/rel-shop"]
    assert meta["kernel_type"] == "notebook" and meta["code_file"] == "driver.ipynb" and meta["id"] == "alice/relgraph-sweep"
    nb = nbformat.read(b/"driver.ipynb", as_version=4)
    nbformat.validate(nb)
    src = "\n".join(c.source for c in nb.cells)
    assert "0123456789abcdef0123" in src and "pip" in src and "drive(SPEC" in src


def test_driver_runs_locally_with_paths_remapped_and_pull_merges(tmp_path, standin, monkeypatch):
    b = bundle(tmp_path)
    inp, work = tmp_path/"input", tmp_path/"working"
    (inp/"rel-shop-dataset"/"rel-shop").mkdir(parents=True); (inp/"rel-shop-dataset"/"rel-shop"/"manifest.yaml").write_text("name: rel-shop\n")
    work.mkdir()
    monkeypatch.setenv("RELGRAPH_KAGGLE_INPUT", str(inp)); monkeypatch.setenv("RELGRAPH_KAGGLE_WORKING", str(work))
    monkeypatch.setenv("RELGRAPH_SKIP_INSTALL", "1")
    pm.execute_notebook(str(b/"driver.ipynb"), str(work/"driver.ipynb"), kernel_name="python3", progress_bar=False)
    recs = sorted(p for p in (work/"runs").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(recs) == 4                                   # 2 datasets x 2 models; the broken ones recorded as failed
    assert sorted(record_status(p) for p in recs) == ["failed", "failed", "ok", "ok"]
    datasets = {(lambda c: c["data"].get("path", c["dataset"]))(read_json(p/"config.json")) for p in recs}
    assert datasets == {"synthetic", str(inp/"rel-shop-dataset"/"rel-shop")}  # the database was found under the input
    local = tmp_path/"runs"
    assert {k: len(v) for k, v in pull(work, local).items()} == {"added": 4, "replaced": 0, "kept": 0}
    assert {k: len(v) for k, v in pull(work, local).items()} == {"added": 0, "replaced": 0, "kept": 4}
    r = subprocess.run(["relgraph", "kaggle", "pull", str(work), "--runs", str(local)], capture_output=True, text=True)
    assert r.returncode == 0 and "0 added" in r.stdout and "4 kept" in r.stdout


def test_bundle_without_internet_carries_the_source(tmp_path):
    "`--no-internet` bundles ship relgraph's source in the driver: nothing is cloned on Kaggle."
    import base64, io, zipfile
    from relgraph.kaggle import bundle_cli
    (tmp_path/"sweep.yaml").write_text(SPEC)
    bundle_cli(str(tmp_path/"sweep.yaml"), "alice/rel-shop", out=str(tmp_path/"b"), internet=False)
    nb = nbformat.read(tmp_path/"b"/"driver.ipynb", as_version=4)
    ns = {}; exec(nb.cells[1].source, ns)
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(ns["SOURCE"]))).namelist()
    assert "relgraph/experiment.py" in names and "nbs/experiment.ipynb" in names and "setup.py" in names
    assert json.loads((tmp_path/"b"/"kernel-metadata.json").read_text())["enable_internet"] is False
    assert "git\", \"clone" in nb.cells[2].source and "if SOURCE" in nb.cells[2].source

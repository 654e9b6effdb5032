"""Sweeps through papermill, end to end: failures recorded, killed sweeps resumed, reruns reproduced.

Most tests run a stand-in experiment notebook (same parameters cell, seconds per run) so they exercise the real
machinery (papermill, processes, records on disk) quickly; `test_real_experiment_*` runs the real notebook.
"""
import json, os, re, signal, subprocess, sys, textwrap, time
from pathlib import Path

import nbformat
import pytest

from relgraph.experiment import DEFAULTS, resolve_config
from relgraph.records import read_json, record_status, run_id
from relgraph.results import load_runs, summarize
from relgraph.sweep import expand_grid, parse_params, rerun, run_sweep

STANDIN = '''
import json, os, time
from pathlib import Path
if model == "mlp": raise ValueError("deliberately broken configuration")  # the stand-in fails every mlp run
time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
Path(run_dir, "metrics.json").write_text(json.dumps({"test_auroc": 0.5 + seed / 100 + len(builder) / 1000}))
'''


@pytest.fixture
def standin(tmp_path, monkeypatch):
    "A tiny experiment notebook with the real parameters cell, used through RELGRAPH_EXPERIMENT_NB."
    params = "\n".join(f"{k} = {v!r}" for k, v in {**DEFAULTS, "run_dir": ""}.items())
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(STANDIN)]
    path = tmp_path/"standin.ipynb"; nbformat.write(nb, path)
    monkeypatch.setenv("RELGRAPH_EXPERIMENT_NB", str(path)); monkeypatch.setenv("RELGRAPH_PROGRESS", "0")
    return path


SPEC = {"grid": {"model": ["gcn", "mlp", "sage"], "seed": [0, 1]}}


def test_failing_configuration_is_recorded_and_sweep_completes(standin, tmp_path):
    runs = tmp_path/"runs"
    res = run_sweep(SPEC, runs, jobs=2)
    assert sorted(res.values()) == ["failed"] * 2 + ["ok"] * 4
    for rid, status in res.items():
        d = runs/rid
        assert (d/"experiment.ipynb").exists() and (d/"config.json").exists() and (d/"environment.json").exists()
        st = read_json(d/"status.json")
        assert st["status"] == status and st["engine"] == "papermill"
        if status == "failed":
            assert "deliberately broken configuration" in st["error"] and "ValueError" in st["traceback"]
        else:
            assert read_json(d/"metrics.json")["test_auroc"] > 0.5
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]  # no work folders left behind
    df = load_runs(runs)
    assert df.height == 6 and df.filter(df["status"] == "failed").height == 2
    assert summarize(df).height == 2  # gcn and sage, two seeds each


def _listing(runs):
    return {p.name: (p/"status.json").stat().st_mtime_ns for p in runs.iterdir() if (p/"status.json").exists()}


def test_killed_sweep_resumes_without_lost_or_duplicated_records(standin, tmp_path):
    runs, spec = tmp_path/"runs", {"grid": {"model": ["gcn", "sage"], "seed": [0, 1, 2]}}
    (tmp_path/"spec.json").write_text(json.dumps(spec))
    code = f"from relgraph.sweep import run_sweep; import json; run_sweep(json.load(open({str(tmp_path/'spec.json')!r})), {str(runs)!r})"
    env = {**os.environ, "STANDIN_SLEEP": "1.5"}
    p = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(_listing(runs) if runs.exists() else {}) < 2: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    before = _listing(runs)
    assert 2 <= len(before) < 6, before                       # killed mid-sweep, finished records intact
    assert all(record_status(runs/r) == "ok" for r in before)
    res = run_sweep(spec, runs)                                # resume
    after = _listing(runs)
    assert sorted(after) == sorted(run_id(c) for c in expand_grid(spec))       # nothing lost, nothing twice
    assert all(after[r] == t for r, t in before.items())      # finished runs were skipped, not redone
    assert set(res.values()) == {"ok"}
    assert not [q for q in runs.iterdir() if q.name.startswith(".")]  # the killed run's work folder is gone


def test_rerun_reproduces_and_detects_changes(standin, tmp_path):
    runs = tmp_path/"runs"
    res = run_sweep({"grid": {"model": ["gcn"], "seed": [3]}}, runs)
    rec = runs/next(iter(res))
    assert rerun(rec) == {}
    m = read_json(rec/"metrics.json"); m["test_auroc"] += 0.1; (rec/"metrics.json").write_text(json.dumps(m))
    assert list(rerun(rec)) == ["test_auroc"]


def test_run_cli_and_rerun_cli(standin, tmp_path):
    runs = tmp_path/"runs"
    env = {**os.environ}
    r = subprocess.run(["relgraph", "run", "model=gcn", "seed=4", "model_params.hidden=8", "--runs", str(runs)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    rid = run_id(resolve_config(parse_params(["model=gcn", "seed=4", "model_params.hidden=8"])))
    assert record_status(runs/rid) == "ok" and rid in r.stdout
    r = subprocess.run(["relgraph", "rerun", str(runs/rid)], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "reproduced" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["relgraph", "run", "model=mlp", "--runs", str(runs)], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "deliberately broken configuration" in r.stdout


def test_sweep_cli_yaml(standin, tmp_path):
    (tmp_path/"sweep.yaml").write_text(textwrap.dedent("""
        grid:
          model: [gcn, mlp]
          seed: [0]
    """))
    r = subprocess.run(["relgraph", "sweep", str(tmp_path/"sweep.yaml"), "--runs", str(tmp_path/"runs")],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stderr                       # a failed run: the good one finishes, the status says so
    assert "2 configurations: 1 ok, 1 failed" in r.stdout and "deliberately broken" in r.stdout
    r = subprocess.run(["relgraph", "sweep", str(tmp_path/"sweep.yaml"), "--runs", str(tmp_path/"runs")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "1 skipped (done before)" in r.stdout and "1 failed" in r.stdout, r.stdout  # still failed


def test_sweep_cli_invalid_configuration_stops_before_any_run(standin, tmp_path):
    (tmp_path/"sweep.yaml").write_text(textwrap.dedent("""
        grid:
          model: [gcn, sagee]
          task: [user-churn, user-chrun]
    """))
    r = subprocess.run(["relgraph", "sweep", str(tmp_path/"sweep.yaml"), "--runs", str(tmp_path/"runs")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("relgraph: error: 3 configuration(s) cannot run"), r.stderr
    assert "did you mean 'sage'?" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path/"runs").exists() or not any((tmp_path/"runs").iterdir())


EXAMPLES = sorted(Path(__file__).parent.parent.glob("examples/*.yaml"))
def _runs_with(p: Path) -> str:
    "The command an example's `Run:` comment names (sweep, tune, sessions); sweep when it names none."
    m = re.search(r"Run: relgraph (\w+)", p.read_text())
    return m.group(1) if m else "sweep"

def test_every_example_says_how_to_run_it():
    assert {_runs_with(p) for p in EXAMPLES} <= {"sweep", "tune", "sessions"}

@pytest.mark.parametrize("path", [p for p in EXAMPLES if _runs_with(p) == "sweep"], ids=lambda p: p.name)
def test_example_sweeps_expand(path):
    cfgs = expand_grid(path)
    assert cfgs and len({run_id(c) for c in cfgs}) == len(cfgs)
    assert all(c["builder"] == "none" for c in cfgs if c["model"] in ("mlp", "lightgbm"))


@pytest.mark.parametrize("path", [p for p in EXAMPLES if _runs_with(p) != "sweep"], ids=lambda p: p.name)
def test_other_examples_are_valid(path):
    "A study is checked by relgraph.tune, a session workflow sweep by relgraph.sessions, before anything runs."
    import itertools, yaml
    if _runs_with(path) == "tune":
        from relgraph.tune import load_study
        assert load_study(path)["space"]
    else:
        from relgraph.sessions import _set, resolve_workflow
        spec = yaml.safe_load(path.read_text()); grid = spec.get("grid") or {}
        for vals in itertools.product(*grid.values()): resolve_workflow(_set(spec["base"], dict(zip(grid, vals))))


@pytest.mark.slow
def test_real_experiment_notebook_sweep_results_and_rerun(tmp_path, monkeypatch):
    "The real experiment notebook through papermill: records complete, results table, rerun reproduces."
    monkeypatch.delenv("RELGRAPH_EXPERIMENT_NB", raising=False); monkeypatch.setenv("RELGRAPH_PROGRESS", "0")
    runs = tmp_path/"runs"
    spec = {"base": {"epochs": 2, "model_params": {"hidden": 8}}, "grid": {"model": ["mlp", "gcn"], "seed": [0]}}
    res = run_sweep(spec, runs, jobs=2)
    assert set(res.values()) == {"ok"}, [read_json(runs/r/"status.json")["error"] for r in res]
    for rid in res:
        names = {p.name for p in (runs/rid).iterdir()}
        assert {"experiment.ipynb", "config.json", "metrics.json", "status.json", "predictions.parquet", "graph.json",
                "environment.json", "figures"} <= names
    df = load_runs(runs)
    assert df.height == 2 and "graph_edge_homophily" in df.columns and df["test_auroc"].is_between(0, 1).all()
    assert rerun(runs/next(iter(res))) == {}


def test_experiment_notebook_parameters_are_the_defaults():
    "The papermill parameters cell names every configuration key, typed, with DEFAULTS' values (and run_dir)."
    from papermill.inspection import inspect_notebook
    nb = Path(__file__).resolve().parent.parent/"nbs"/"experiment.ipynb"
    params = inspect_notebook(str(nb))
    assert set(params) == set(DEFAULTS) | {"run_dir"}
    for k, v in DEFAULTS.items():
        assert eval(params[k]["default"]) == v, k
        assert params[k]["inferred_type_name"] == type(v).__name__, k

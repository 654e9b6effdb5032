"""Optuna studies end to end: trial counts and uniqueness on SQLite and on a throw-away PostgreSQL server with two
workers, no test metric during trials, bad search spaces refused before any trial, crashes recorded, interrupted
trials retried (and, marked slow, a real `kill -9` of the tuner resumed by the same command)."""
import json, os, shutil, signal, socket, subprocess, sys, time
from pathlib import Path

import optuna
import pytest
import yaml

import relgraph.experiment as experiment
from relgraph.results import load_runs
from relgraph.tune import counted, load_study, storage_url, study_dir, trials_table, tune


@pytest.fixture(autouse=True)
def _quiet(monkeypatch): monkeypatch.setenv("RELGRAPH_PROGRESS", "0")


def spec(name="t", trials=3, **kw):
    "A tiny study: an MLP on an 80-customer shop, a few epochs a trial; no final runs unless asked."
    return load_study(dict(dict(name=name, base=dict(data={"customers": 80}, model="mlp", epochs=3),
                                space={"lr": {"low": 1e-3, "high": 0.3, "log": True}, "model_params.hidden": [4, 8, 16]},
                                trials=trials, seeds=0, sampler={"name": "tpe", "seed": 0}), **kw))


def study_of(s, runs, storage=None):
    return optuna.load_study(study_name=s["name"], storage=storage or storage_url(s, runs))


def check_counts(study, n, runs, s):
    "Exactly `n` counted trials, unique numbers, each complete trial linked to a record `results` reads."
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) and sum(map(counted, trials)) == n
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all((study_dir(s, runs)/"trials"/t.user_attrs["run_id"]/"status.json").exists() for t in done)
    rows = load_runs(study_dir(s, runs)/"trials")
    assert set(rows["run_id"]) >= {t.user_attrs["run_id"] for t in done}     # `relgraph results` reads the trial records
    return trials


def test_sqlite_one_worker(tmp_path):
    s = spec("sqlite", trials=3)
    rep = tune(s, tmp_path)
    assert (study_dir(s, tmp_path)/"study.db").exists() and rep["storage"].startswith("sqlite:///")
    check_counts(study_of(s, tmp_path), 3, tmp_path, s)
    assert rep["trials"]["counted"] == 3
    assert tune(s, tmp_path)["trials"]["counted"] == 3          # rerun of a finished study: nothing new


def _pg_bin(name):
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    return str(found) if found else None


@pytest.fixture
def postgres(tmp_path):
    "A throw-away PostgreSQL server in a temporary folder (unix socket only); its SQLAlchemy URL."
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl): pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql to run this test")
    root = Path(f"/tmp/rgpg-{os.getpid()}"); root.mkdir(); data, sock = root/"data", root/"sock"; sock.mkdir()
    as_user = []
    if os.geteuid() == 0:                 # initdb refuses root: run the server as an unprivileged user
        user = next((u for u in ("postgres", "nobody") if subprocess.run(["id", u], capture_output=True).returncode == 0), None)
        if user is None or not shutil.which("runuser"): pytest.skip("running as root without a 'postgres' user to run PostgreSQL as")
        shutil.chown(root, user); shutil.chown(sock, user); as_user = ["runuser", "-u", user, "--"]
    with socket.socket() as so: so.bind(("127.0.0.1", 0)); port = so.getsockname()[1]
    run = lambda *a: subprocess.run(as_user + list(a), check=True, capture_output=True, text=True)
    run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    run(pg_ctl, "-D", str(data), "-w", "-l", str(root/"log"), "-o", f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off", "start")
    try: yield f"postgresql+psycopg2://postgres@/postgres?host={sock}&port={port}"
    finally:
        subprocess.run(as_user + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_two_workers(tmp_path, postgres):
    s = spec("pg", trials=4)
    rep = tune(s, tmp_path, workers=2, storage=postgres)
    assert rep["storage"].startswith("postgresql") and not (study_dir(s, tmp_path)/"study.db").exists()
    trials = check_counts(study_of(s, tmp_path, postgres), 4, tmp_path, s)
    assert len({t.user_attrs.get("pid") for t in trials if counted(t)}) == 2     # both workers ran trials
    assert tune(s, tmp_path, workers=2, storage=postgres)["trials"]["counted"] == 4


def test_trials_compute_no_test_metric(tmp_path, monkeypatch):
    seen = []
    real_eval, real_report = experiment.evaluate_predictions, experiment.graph_report_of
    def spy_eval(preds, *a, **k):
        seen.append(sorted(preds["split"].unique())); return real_eval(preds, *a, **k)
    def spy_report(inputs, split="test"):
        seen.append(split); return real_report(inputs, split)
    monkeypatch.setattr(experiment, "evaluate_predictions", spy_eval); monkeypatch.setattr(experiment, "graph_report_of", spy_report)
    s = spec("notest", trials=2)
    tune(s, tmp_path)
    assert seen.count(["train", "val"]) == 2 and seen.count("val") == 2 and "test" not in str(seen)
    for m in (study_dir(s, tmp_path)/"trials").glob("*/metrics.json"):
        assert not [k for k in json.loads(m.read_text()) if k.startswith("test_")]
    for c in (study_dir(s, tmp_path)/"trials").glob("*/config.json"): assert json.loads(c.read_text())["test"] is False


@pytest.mark.parametrize("space, msg", [({"lrr": [0.1]}, "did you mean 'lr'"), ({"seed": [0, 1]}, "cannot be tuned"),
                                        ({"model_params.hiden": [8]}, "'hiden'"), ({"lr": {"low": 1, "high": 0.1}}, "'lr'"),
                                        ({"model": ["mlp", "lightgbm"], "model_params.hidden": [8]}, "model='lightgbm'")])
def test_bad_space_refused_before_any_trial(tmp_path, space, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(")): tune(spec(space=space), tmp_path)
    assert not (tmp_path/"studies").exists()


def test_crash_recorded_and_study_goes_on(tmp_path):
    s = spec("crash", trials=2, space={"lr": [0.01, -1.0]})
    study = optuna.create_study(study_name="crash", storage=storage_url(s, tmp_path), direction="maximize")
    study.enqueue_trial({"lr": -1.0}); study.enqueue_trial({"lr": 0.01})
    rep = tune(s, tmp_path)
    t = study_of(s, tmp_path).get_trials()
    assert [x.state.name for x in t] == ["FAIL", "COMPLETE"] and "learning rate" in t[0].user_attrs["error"]
    assert json.loads((study_dir(s, tmp_path)/"trials"/t[0].user_attrs["run_id"]/"status.json").read_text())["status"] == "failed"
    assert rep["trials"]["counted"] == 2


def test_interrupted_trial_is_retried_once(tmp_path):
    "A trial left running by a dead process is marked failed and run again with its parameters, once."
    s = spec("resume", trials=2)
    study = optuna.create_study(study_name="resume", storage=storage_url(s, tmp_path), direction="maximize")
    dead = subprocess.Popen(["true"]); dead.wait()
    t = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 0.3, log=True),
                   "model_params.hidden": optuna.distributions.CategoricalDistribution([4, 8, 16])})
    t.set_user_attr("host", socket.gethostname()); t.set_user_attr("pid", dead.pid)
    tune(s, tmp_path)
    trials = study_of(s, tmp_path).get_trials()
    retry = [x for x in trials if x.user_attrs.get("retry_of") == t.number]
    assert trials[0].state.name == "FAIL" and len(retry) == 1 and retry[0].params == trials[0].params
    assert retry[0].state.name == "COMPLETE" and sum(map(counted, trials)) == 2


@pytest.mark.slow
def test_kill_9_then_same_command_resumes(tmp_path):
    "A real `relgraph tune --workers 2`, killed with SIGKILL mid-study, then run again: no lost, no duplicated trial."
    s = spec("kill", trials=6); s["base"]["epochs"] = 20; s["pruner"] = "none"
    (tmp_path/"study.yaml").write_text(yaml.safe_dump(s))
    cmd = [sys.executable, "-c", "import sys; from relgraph.cli import main; main(sys.argv[1:])", "tune", str(tmp_path/"study.yaml"), "--runs", str(tmp_path/"runs"), "--workers", "2"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    db = tmp_path/"runs"/"studies"/"kill"/"study.db"
    for _ in range(600):
        time.sleep(0.5)
        if db.exists():
            try: st = [t.state.name for t in study_of(s, tmp_path/"runs").get_trials()]
            except Exception: continue
            if st.count("COMPLETE") >= 1 and "RUNNING" in st: break
    os.kill(p.pid, signal.SIGKILL); p.wait()
    time.sleep(1)
    killed = [t.number for t in study_of(s, tmp_path/"runs").get_trials() if t.state.name == "RUNNING"]
    assert killed, "nothing was running when the tuner was killed"
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    trials = study_of(s, tmp_path/"runs").get_trials()
    assert sum(t.state.name == "COMPLETE" for t in trials) == 6 and sum(map(counted, trials)) == 6
    for k in killed:
        assert trials[k].state.name == "FAIL" and sum(t.user_attrs.get("retry_of") == k for t in trials) == 1

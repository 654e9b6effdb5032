"""The console command as a user runs it: help for every group and command, --version, -v/-q, skipped runs, results."""
import argparse, csv, io, json, logging, subprocess
from pathlib import Path

import pytest

import relgraph
from relgraph.cli import COMMANDS, groups, load, main, parser, usage
from relgraph.core import get_logger, write_json
from relgraph.experiment import resolve_config
from relgraph.records import ENGINES, run_id


@ENGINES.register("_test_cli")
def _engine(cfg, run_dir):
    "A stand-in experiment: metrics from the seed, in no time."
    write_json({"task_type": "binary_classification", "val_auroc": 0.6 + cfg["seed"] / 100, "test_auroc": 0.62 + cfg["seed"] / 100,
                "val_average_precision": 0.4, "test_average_precision": 0.41}, Path(run_dir)/"metrics.json")


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    get_logger().setLevel(logging.NOTSET); get_logger().propagate = True


def _main(capsys, *argv):
    "stdout, stderr and exit code of `relgraph argv` run in this process."
    code, msg = 0, ""
    try: main(list(argv))
    except SystemExit as e:                     # a message as the exit "code" goes to stderr, with status 1
        code = e.code if isinstance(e.code, int) else 1 if e.code else 0
        msg = e.code if isinstance(e.code, str) else ""
    out, err = capsys.readouterr()
    return out, err + msg, code


def test_help_lists_commands():
    out = subprocess.run(["relgraph", "--help"], capture_output=True, text=True, check=True).stdout
    assert "synth" in out and "sweep" in out and "--version" in out and "-q, --quiet" in out


def test_unknown_command_is_a_clear_error():
    r = subprocess.run(["relgraph", "frobnicate"], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown command 'frobnicate'" in r.stderr


def test_version():
    r = subprocess.run(["relgraph", "--version"], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == f"relgraph {relgraph.__version__}"


@pytest.mark.parametrize("group", sorted(groups()))
def test_group_help_lists_the_group(group, capsys):
    out, _, code = _main(capsys, group, "--help")
    assert code == 0 and out.startswith(f"usage: relgraph {group} <command>")
    assert all(c in out for c in groups()[group]) and "synth" not in out
    _, err, code = _main(capsys, group)                        # the group alone: its list, as an error
    assert code != 0 and f"usage: relgraph {group} <command>" in err
    _, err, code = _main(capsys, group, "frob")
    assert code != 0 and f"unknown command '{group} frob'" in err and f"usage: relgraph {group}" in err


def test_group_help_as_a_user_runs_it():
    r = subprocess.run(["relgraph", "kaggle", "--help"], capture_output=True, text=True, check=True)
    assert "kaggle bundle" in r.stdout and "kaggle pull" in r.stdout and "demo" not in r.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name, capsys):
    out, _, code = _main(capsys, *name.split(), "--help")
    assert code == 0 and out.startswith(f"usage: relgraph {name}") and (load(name).__doc__ or "").split("`")[0][:30] in out


def test_negated_flags_say_what_they_do():
    def cmd(internet: bool = True,   # enable internet
            retry: bool = False,     # redo failed runs
           ): ...
    helps = {a.option_strings[0]: a.help for a in parser(cmd, "x")._actions if a.option_strings}
    assert helps["--no-internet"] == "turn off: enable internet (on unless this flag is given)"
    assert helps["--retry"] == "redo failed runs (off unless this flag is given)"
    for name in COMMANDS:                                   # no command says "(default: True)" beside a --no- flag
        for a in parser(load(name), "x")._actions:
            if any(o.startswith("--no-") for o in a.option_strings): assert "default: True" not in (a.help or ""), (name, a.help)


def _sweep(tmp_path) -> Path:
    spec = tmp_path/"sweep.yaml"
    spec.write_text("base: {data: {customers: 100}}\ngrid: {model: [gcn, sage], seed: [0, 1]}\n")
    return spec


def test_sweep_says_which_configurations_were_skipped(tmp_path, capsys):
    spec, runs = _sweep(tmp_path), tmp_path/"runs"
    _, err, code = _main(capsys, "sweep", str(spec), "--runs", str(runs), "--engine", "_test_cli")
    assert code == 0 and "skipped" not in err
    out, err, code = _main(capsys, "sweep", str(spec), "--runs", str(runs), "--engine", "_test_cli")
    lines = [l for l in err.splitlines() if l.startswith("skipped (done): ")]
    assert code == 0 and len(lines) == 4 and all(l.endswith("(ok)") for l in lines)
    assert {l.split()[2] for l in lines} == {p.name for p in runs.iterdir() if not p.name.startswith(".")}
    _, err, _ = _main(capsys, "-q", "sweep", str(spec), "--runs", str(runs), "--engine", "_test_cli")
    assert "skipped" not in err                              # -q: warnings and errors only


def test_run_says_it_was_skipped(tmp_path, capsys):
    args = ("run", "model=gcn", "seed=3", "data.customers=100", "--runs", str(tmp_path), "--engine", "_test_cli")
    out, _, code = _main(capsys, *args)
    assert code == 0 and "skipped (done)" not in out and ": ok in" in out
    out, _, code = _main(capsys, *args)
    assert code == 0 and out.startswith("skipped (done): ") and "(ok)" in out.splitlines()[0]


def test_verbose_and_quiet_set_the_log_level(tmp_path, capsys):
    for argv, level in ((["-v"], logging.DEBUG), ([], logging.INFO), (["-q"], logging.WARNING), (["--quiet"], logging.WARNING)):
        _main(capsys, *argv, "results", str(tmp_path/"none"))
        assert get_logger().level == level, argv


def _records(runs: Path):
    "Two builders x two seeds and a failed run, with val and test of two metrics."
    for seed in (0, 1):
        for builder, model, a in (("none", "mlp", 0.70), ("shared_attribute", "gcn", 0.80)):
            cfg = resolve_config(builder=builder, model=model, seed=seed); d = runs/run_id(cfg); d.mkdir(parents=True)
            write_json(cfg, d/"config.json"); write_json({"status": "ok", "seconds": 1.0}, d/"status.json")
            write_json({"task_type": "binary_classification", "val_auroc": a + seed / 100, "test_auroc": a + 0.01 + seed / 100,
                        "val_average_precision": a - 0.3, "test_average_precision": a - 0.29}, d/"metrics.json")
    cfg = resolve_config(builder="knn", model="gat", seed=0); d = runs/run_id(cfg); d.mkdir()
    write_json(cfg, d/"config.json"); write_json({"status": "failed", "error": "boom"}, d/"status.json")


def test_results_positional_val_and_test_several_metrics(tmp_path, capsys):
    runs = tmp_path/"runs"; _records(runs)
    out, _, code = _main(capsys, "results", str(runs))
    head = next(l for l in out.splitlines() if l.startswith("| data"))
    cols = [c.strip() for c in head.strip("|").split("|")]
    assert code == 0 and cols.index("val_auroc") + 1 == cols.index("test_auroc")          # val beside test
    assert "val_average_precision" in cols and "test_average_precision" in cols
    rows = [l for l in out.splitlines() if l.startswith("| ") and "gcn" in l]
    assert "0.805 ± 0.007" in rows[0] and "failed: " in out and "5 records (1 failed)" in out
    assert (runs/"comparison.png").exists()
    out2, _, _ = _main(capsys, "results", "--runs", str(runs))                                # the option still works
    assert out2 == out


def test_results_seeds_and_formats(tmp_path, capsys):
    runs = tmp_path/"runs"; _records(runs)
    out, _, _ = _main(capsys, "results", str(runs), "--seeds")
    assert "0.815 ± 0.007 (0.810, 0.820)" in out                                   # test AUROC of gcn, each seed
    out, err, code = _main(capsys, "results", str(runs), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["model"] for r in rows] == ["gcn", "mlp"] and float(rows[0]["test_auroc_mean"]) == pytest.approx(0.815)
    assert "failed: " in err and "failed" not in out                                # stdout is the table only
    out, _, _ = _main(capsys, "results", str(runs), "--format", "json", "--seeds")
    rows = json.loads(out)
    assert rows[0]["seeds"] == [0, 1] and rows[0]["val_auroc_seeds"] == pytest.approx([0.80, 0.81])
    assert rows[0]["task_type"] == "binary_classification" and rows[1]["val_average_precision_std"] == pytest.approx(0.0)
    _, err, code = _main(capsys, "results", str(runs), "--format", "xml")
    assert code != 0 and "--format must be markdown, csv or json" in err

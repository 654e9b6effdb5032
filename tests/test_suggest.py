"""`relgraph suggest` as a user runs it (issue 22): a RelBench folder whose events reference a table of bare keys, the
files it writes, a bad task named in one line, no val or test label read; on the 10k shop (slow) the planted category
graph first (its time printed, not asserted: `relgraph suggest` prints it too), and with the structure off no graph's
residual homophily apart from its control's."""
import time

import numpy as np
import polars as pl
import pytest

from relgraph.cli import main
from relgraph.io import save_relbench
from relgraph.suggest import suggest
from relgraph.sweep import expand_grid
from relgraph.testing import shaped_db


def _main(capsys, *argv):
    code = 0
    try: main(list(argv))
    except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return out, err, code


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    db, task = shaped_db(entities=40, seed=3)
    return save_relbench(db, tmp_path_factory.mktemp("shaped") / "shaped", tasks=[task])


def test_suggest_cli_on_a_key_only_table(folder, tmp_path, capsys):
    out, err, code = _main(capsys, "suggest", str(folder), "--task", "member-churn", "--out", str(tmp_path / "s"), "--top", "2")
    assert code == 0, err
    t = pl.read_parquet(tmp_path / "s" / "suggest.parquet")
    assert "co_interaction: shift.member_id -> shift.slot_id" in t["candidate"].to_list()
    assert "co_interaction: shift.member_id -> shift.slot_id" in out and "candidates in" in out
    assert (tmp_path / "s" / "suggest.png").stat().st_size > 1000
    cfgs = expand_grid(str(tmp_path / "s" / "sweep.yaml"))
    assert {c["builder"] for c in cfgs if c["model"] == "sage"} >= {"random"} and len(cfgs) == 2 * 2 * 2 + 2


def test_suggest_cli_unknown_task_is_one_line(folder, tmp_path, capsys):
    out, err, code = _main(capsys, "suggest", str(folder), "--task", "member-chrun", "--out", str(tmp_path / "s"))
    assert code == 2 and err.startswith("relgraph: error:") and len(err.strip().splitlines()) == 1 and "member-chrun" in err


def test_suggest_reads_training_labels_only():
    db, task = shaped_db(entities=40, seed=4)
    before = suggest(db, task)
    for s in ("val", "test"): task.tables[s] = task.tables[s].with_columns(1 - pl.col("churn"))   # flip every val and test label
    after = suggest(db, task)
    assert before.drop("seconds", "control_seconds").equals(after.drop("seconds", "control_seconds"))


@pytest.mark.slow
@pytest.mark.parametrize("structure", [1.0, 0.0])
def test_suggest_on_the_10k_shop(structure):
    from relgraph.synthetic import make_shop
    from relgraph.tasks import make_task
    db = make_shop(10_000, structure=structure); task = make_task(db, "user-churn")
    t0 = time.perf_counter(); t = suggest(db, task); took = time.perf_counter() - t0
    assert t.height >= 5
    print(f"suggest on the 10k shop (structure {structure}): {took:.1f} s")
    if structure:
        assert t["candidate"][0] == "shared_attribute: review.customer_id -> review.product_id -> product.category"
    else:                                                           # nothing planted: no interval lies apart from its control's
        apart = t.filter((pl.col("residual_lo") > pl.col("control_residual_hi")) | (pl.col("residual_hi") < pl.col("control_residual_lo")))
        assert apart.height == 0, apart.select("candidate", "residual_lo", "residual_hi", "control_residual_lo", "control_residual_hi")


def test_signals_averaged_over_time_splits():
    db, task = shaped_db(entities=40, seed=4)
    one, two = suggest(db, task, splits=1), suggest(db, task, splits=2)
    assert one["splits"].unique().to_list() == [1] and two["splits"].unique().to_list() == [2]
    j = one.join(two, on="candidate", suffix="_2")
    assert j.height == one.height == two.height
    assert (j["residual_homophily"] == j["residual_homophily_2"]).all()            # the table shows the last split's figures
    lift = j.filter(pl.col("lift").is_not_null() & pl.col("lift").is_not_nan())
    assert (lift["lift"] == lift["lift_mean"]).all()                                # one split: the mean is that split's value
    assert (two["seconds"] >= 0).all() and two["rank"].to_list() == list(range(1, two.height + 1))


@pytest.mark.parametrize("task_name", ["user-spend", "user-next-category"])
def test_suggest_ranks_regression_and_multiclass(task_name):
    from relgraph.synthetic import make_shop
    from relgraph.tasks import make_task
    db = make_shop(400, seed=2); task = make_task(db, task_name)
    t = suggest(db, task, boot=20)
    assert t.height >= 5 and t["rank"].to_list() == list(range(1, t.height + 1))
    gain = t["residual_vote_gain_mean"].to_numpy()
    assert np.isfinite(gain).all() and (np.diff(gain) <= 1e-12).all()     # the rank is the residual vote over the control's
    assert t["residual_vote"].is_between(-1, 1).all()

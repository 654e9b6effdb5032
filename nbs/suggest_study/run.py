"""The study of issue 22: does `relgraph suggest`'s order agree with SAGE's validation AUROC on the same candidates?

For each shop setting (structure 0.5 and 1, data seeds 0-2 or `--data-seeds`) it runs `relgraph suggest` as a user would, then the sweep
that command writes, widened to every listed candidate (random controls left out) with model sage and `--seeds` model
seeds, and writes one row per setting and candidate (suggest's rank and signals, SAGE's val AUROC mean and std) to
`--csv`. Run (from the repository root; 198 SAGE runs, ~45 min on 2 cores at 10,000 customers):

    python nbs/suggest_study/run.py --customers 10000 --seeds 3 --jobs 2 --work /tmp/suggest_study
"""
import argparse, json, subprocess, sys
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from relgraph.results import load_runs
from relgraph.sweep import expand_grid, run_sweep

STRUCTURES = (0.5, 1.0)
KEEP = ("rank", "candidate", "builder", "score", "edges", "coverage", "class_homophily", "residual_homophily", "residual_lo",
        "control_residual_hi", "residual_vote", "control_residual_vote", "residual_vote_gain", "vote", "vote_gain", "lift", "beats_control",
        "residual_vote_gain_mean", "lift_mean", "residual_lo_mean", "vote_gain_mean", "splits")


def suggest_setting(structure, seed, customers, seeds, out: Path, splits: int = 2) -> Path:
    "Run `relgraph suggest` on one shop setting (every candidate into the sweep yaml, sage only); the folder it wrote."
    params = f"customers={customers} structure={structure:g} seed={seed}"
    subprocess.run(["relgraph", "suggest", "synthetic", "--task", "user-churn", "--params", params, "--top", "1000",
                    "--models", "sage", "--seeds", str(seeds), "--splits", str(splits), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def candidate_runs(folder: Path) -> list[dict]:
    "The configurations of the sweep `relgraph suggest` wrote into `folder`, random controls left out."
    spec = yaml.safe_load((folder/"sweep.yaml").read_text())
    spec["grid"]["graph"] = [g for g in spec["grid"]["graph"] if g["builder"] != "random"]
    return expand_grid(spec)


def _matches(run: dict, cfg: dict) -> bool:
    "Whether run record row `run` (load_runs) executed configuration `cfg` (matched by content: ids change with relgraph's code)."
    data, bp = json.loads(run["data_params"]), json.loads(run["builder_params"])
    return (run["builder"] == cfg["builder"] and run["seed"] == cfg["seed"] and run["model"] == cfg["model"] and run["status"] == "ok"
            and all(data.get(k) == v for k, v in cfg["data"].items()) and all(bp.get(k) == v for k, v in cfg["builder_params"].items()))


def setting_rows(folder: Path, cfgs: list[dict], runs: pl.DataFrame) -> pl.DataFrame:
    "One row per candidate: suggest's columns beside the mean, std and count of SAGE's val AUROC over model seeds."
    table = pl.read_parquet(folder/"suggest.parquet")
    key = lambda b, p: json.dumps([b, p], sort_keys=True, default=str)
    name = {key(r["builder"], json.loads(r["params"])): r["candidate"] for r in table.iter_rows(named=True)}
    rows = list(runs.filter(pl.col("model") == "sage").iter_rows(named=True))
    auc = lambda c: next((r["val_auroc"] for r in rows if _matches(r, c)), None)
    got = pl.DataFrame([dict(candidate=name[key(c["builder"], c["builder_params"])], model_seed=c["seed"], val_auroc=auc(c))
                        for c in cfgs], schema_overrides={"val_auroc": pl.Float64})
    agg = got.group_by("candidate").agg(sage_val_auroc=pl.col("val_auroc").mean(), sage_val_std=pl.col("val_auroc").std(),
                                        sage_runs=pl.col("val_auroc").count())
    per_seed = got.pivot(on="model_seed", index="candidate", values="val_auroc")
    agg = agg.join(per_seed.rename({c: f"sage_s{c}" for c in per_seed.columns if c != "candidate"}), on="candidate")
    return table.select([c for c in KEEP if c in table.columns]).join(agg, on="candidate", how="left").sort("rank")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--work", default="/tmp/suggest_study")
    ap.add_argument("--csv", default=str(Path(__file__).with_name("results.csv")))
    ap.add_argument("--splits", type=int, default=2, help="suggest's time splits (1: its signals on the last split only)")
    ap.add_argument("--jobs", type=int, default=2, help="SAGE runs in parallel (each on its share of the cores)")
    ap.add_argument("--data-seeds", default="0,1,2", help="the shop's data seeds, comma-separated (each with every structure)")
    ap.add_argument("--suggest-only", action="store_true", help="rerun suggest, reuse the finished runs")
    a = ap.parse_args(argv)
    work, parts = Path(a.work), []
    for st, s in [(st, int(s)) for st in STRUCTURES for s in a.data_seeds.split(",")]:
        folder = suggest_setting(st, s, a.customers, a.seeds, work/(f"st{st:g}-s{s}" + ("" if a.splits == 2 else f"-splits{a.splits}")), a.splits)
        cfgs = candidate_runs(folder)
        if not a.suggest_only: run_sweep(cfgs, work/"runs", jobs=a.jobs)
        runs = load_runs(work/"runs")
        parts.append(setting_rows(folder, cfgs, runs).select(pl.lit(st).alias("structure"), pl.lit(s).alias("data_seed"), pl.all()))
        out = pl.concat(parts, how="diagonal_relaxed").with_columns(customers=pl.lit(a.customers), model_seeds=pl.lit(a.seeds))
        out.write_csv(a.csv)                                   # after every setting: a partial study is readable
        print(f"structure {st:g} seed {s}: done", flush=True)
    print(out.group_by("structure", "data_seed", maintain_order=True).agg(
        spearman=pl.corr(-pl.col("rank"), "sage_val_auroc", method="spearman")))


if __name__ == "__main__": main()

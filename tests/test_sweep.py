"""Sweeps and the comparison report: planning, collecting `dvc exp show --json` into the
tidy table, the report from whatever metrics exist, and a tiny real sweep through the DVC queue."""

from __future__ import annotations

import json
import os
import signal
import time

import pandas as pd
import pytest
import yaml
from support.processes import env, run, start_group, stop_group, tail
from support.repos import make_repo, tiny_params

from lsdm.orchestration.experiments import queue_workers
from lsdm.orchestration.sweep import collect, plan, queue_status
from lsdm.reports.comparison import paired_table, write_report
from lsdm.reports.stats import paired_difference, paired_verdict, pool_effects, pool_rows, summarise


def test_plan_skips_counts_larger_than_the_smallest_class():
    per_class = pd.Series([24, 30, 26])
    runs, skipped = plan([1, 100, 3, 24], [0, 1], per_class)
    assert runs == [("split.n_paired_per_class", n, s) for n in (1, 3, 24) for s in (0, 1)]
    assert [s["count"] for s in skipped] == [100] and "smallest class has 24" in skipped[0]["reason"]
    runs, skipped = plan([5, 50], [0], None, n_train=20)  # no classes: total pairs, capped by the train set
    assert runs == [("split.n_paired", 5, 0)] and skipped[0]["count"] == 50


def _exp(name: str, n: int, seed: int, fid: float, flow_fids: dict[int, float], tp: float = 1000.0) -> dict:
    params = {
        "params.yaml": {
            "data": {
                "split": {"n_paired_per_class": n, "n_paired": 100, "seed": seed},
                "task": "class_conditional",
                "data": {"source": "mnist5k"},
            }
        }
    }
    lsdm_eval = {
        "eval": {
            "fid_evalnet": fid,
            "label_accuracy": 0.9,
            "throughput_images_per_s": tp,
            "seeds": [0, 1],
            "per_class": {"fid_evalnet": {"0": 1.0}},
            "density": 1.25,
            "real_reference": {"density": 1.0},
            "over_seeds": {"fid_evalnet": {"mean": fid, "std": 0.5, "n": 2}},
        }
    }
    metrics = {
        "results/evaluate/metrics.json": {"data": lsdm_eval},
        "results/fit_matcher/metrics.json": {"data": {"matcher": {"train_seconds": 10.0}}},
        "results/fit_latent/metrics.json": {"data": {"latent": {"train_seconds": 50.0}}},
        "results/pseudo_label/metrics.json": {
            "data": {
                "pseudo": {
                    "unpaired": {"accuracy": 0.8 + n / 100, "coverage": 0.7, "accuracy_confident": 0.9, "n": 300},
                    "classifier": {"accuracy": 0.85 + n / 100, "coverage": 0.8, "accuracy_confident": 0.95, "n": 300},
                }
            }
        },
        "results/baselines/pixel_wgan/train/metrics.json": {"data": {"baseline": {"train_seconds": 30.0}}},
        "results/baselines/pixel_wgan/metrics.json": {
            "data": {"eval": {"fid_evalnet": fid * 3, "label_accuracy": 0.5, "throughput_images_per_s": 5 * tp}}
        },
        "results/baselines/latent_flow/train/metrics.json": {"data": {"baseline": {"train_seconds": 20.0}}},
        "results/baselines/latent_flow/eval/metrics.json": {
            "data": {
                "eval": {
                    f"latent_flow_nfe{k}": {
                        "fid_evalnet": v,
                        "label_accuracy": 0.95,
                        "throughput_images_per_s": tp / k,
                        "kid_evalnet_std": 0.25,
                        "nfe": k,
                    }
                    for k, v in flow_fids.items()
                }
            }
        },
        "results/baselines/unjudged/train/metrics.json": {"data": {"baseline": {"train_seconds": 40.0}}},
    }
    return {"rev": f"{name}rev", "name": name, "data": {"params": params, "metrics": metrics}}


def _show(exps: list[dict]) -> list[dict]:
    return [
        {"rev": "workspace", "name": None, "data": {}, "experiments": None},
        {"rev": "abc", "name": "main", "data": {}, "experiments": [{"name": e["name"], "revs": [e]} for e in exps]},
    ]


def _details(exps: list[dict]) -> dict[tuple[str, str], dict]:
    """Move every value of each evaluation's metrics file that the registry does not call headline into
    its details file (as evaluate and evaluate_baseline write them): {(rev, details path): JSON}."""
    from lsdm.evaluation.registry import split_results

    files = {}
    for e in exps:
        for path, m in e["data"]["metrics"].items():
            ev = m["data"].get("eval")
            if "/train/" in path or not ev:
                continue
            nested = all(isinstance(v, dict) for v in ev.values()) and "baselines" in path
            parts = {k: split_results(v) for k, v in ev.items()} if nested else {None: split_results(ev)}
            m["data"]["eval"] = {k: h for k, (h, _) in parts.items()} if nested else parts[None][0]
            rest = {k: d for k, (_, d) in parts.items()} if nested else parts[None][1]
            files[(e["rev"], path.replace("metrics.json", "details.json"))] = {"eval": rest}
    return files


def test_collect_and_report_from_synthetic_experiments(tmp_path):
    exps = [
        _exp(f"sw-n{n}-s{s}", n, s, fid=10.0 / n + s, flow_fids={10: 9.0 / n + s, 50: 8.0 / n + s})
        for n in (1, 10)
        for s in (0, 1)
    ]
    details = _details(exps)
    assert "seeds" not in exps[0]["data"]["metrics"]["results/evaluate/metrics.json"]["data"]["eval"]
    show = _show(exps + [_exp("other-n1-s0", 1, 0, 99.0, {10: 1.0})])
    df = collect(show, tag="sw-", read=lambda rev, path: details.get((rev, path)))
    assert df["experiment"].nunique() == 4 and "other-n1-s0" not in set(df["experiment"])
    assert set(df["sampler"]) == {"lsdm", "pixel_wgan", "latent_flow_nfe10", "latent_flow_nfe50", "unjudged"}
    assert len(df) == 4 * 5
    row = df[(df["sampler"] == "latent_flow_nfe50") & (df["n_paired_per_class"] == 10) & (df["seed"] == 1)].iloc[0]
    assert row["nfe"] == 50 and row["method"] == "latent_flow" and row["train_seconds"] == 20.0
    assert row["eval.fid_evalnet"] == pytest.approx(1.8)
    lsdm = df[df["sampler"] == "lsdm"].iloc[0]
    assert lsdm["train_seconds"] == 10.0 and lsdm["train_seconds_shared"] == 50.0 and lsdm["nfe"] == 1
    assert json.loads(lsdm["eval.seeds"]) == [0, 1] and lsdm["eval.per_class.fid_evalnet.0"] == 1.0
    # the details files' values keep the columns they had when everything was in metrics.json
    assert lsdm["eval.real_reference.density"] == 1.0 and lsdm["eval.over_seeds.fid_evalnet.std"] == 0.5
    assert row["eval.kid_evalnet_std"] == 0.25
    assert summarise(df).set_index("sampler").loc["lsdm", "density_gap|mean"].iloc[0] == pytest.approx(0.25)
    unjudged = df[df["sampler"] == "unjudged"].iloc[0]  # trained, not yet evaluated: a row all the same
    assert unjudged["train_seconds"] == 40.0 and pd.isna(unjudged["eval.fid_evalnet"])

    meta = {
        "tag": "sw-",
        "skipped": [{"count": 100, "reason": "split.n_paired_per_class = 100 skipped: smallest class has 24"}],
        "overrides": {"matcher.steps": 700},
        "wall_seconds": 600.0,
        "note": "Queued in two batches.",
    }
    report = write_report(df, meta, tmp_path).read_text()
    assert "`matcher.steps=700`" in report and "took 10.0 minutes" in report and "\nQueued in two batches.\n" in report
    assert (
        "| pixel_wgan | FID (evalnet features) | -21.0 [-33.7, -8.3] **better** | -3.00 [-15.71, +9.71] tie |" in report
    )
    figs = tmp_path / "reports/comparison"
    for png in ("fidelity_vs_pairs.png", "fid_vs_nfe.png", "throughput.png"):
        assert (figs / png).stat().st_size > 1000, png
        assert f"comparison/{png}" in report
    assert "Skipped:** split.n_paired_per_class = 100" in report
    assert "| lsdm | 10.50 ± 0.71 | 1.500 ± 0.707 |" in report  # FID mean ± std over the two seeds
    # the honest reading, seed by seed: LSDM is 1 FID behind latent_flow on both seeds (worse, however
    # small), while its lead over pixel_wgan at 10 pairs (2 and 4 FID) is within the seeds' spread (a tie)
    assert "FID (evalnet features): LSDM vs latent_flow_nfe10: **worse** at 1 (10.5 vs 9.5), 10 (1.5 vs 1.4)." in report
    assert (
        "FID (evalnet features): LSDM vs pixel_wgan: better at 1 (10.5 vs 31.5); within the seeds' spread at 10."
        in report
    )
    assert "pixel_wgan samples faster than LSDM" in report
    # the pseudo-labeller's measured quality, per count, from LSDM's own runs
    assert lsdm["pseudo_accuracy"] == pytest.approx(0.81) and pd.isna(row.get("pseudo_accuracy"))
    assert "## Pseudo-labels" in report and "| 10 | labels | 0.900 ± 0.000 | 0.700 ± 0.000 | 0.900 ± 0.000 |" in report
    assert lsdm["pseudo_classifier_accuracy"] == pytest.approx(0.86)  # and the image filter's classifier
    assert "| 10 | image classifier | 0.950 ± 0.000 | 0.800 ± 0.000 | 0.950 ± 0.000 |" in report
    assert "images/s is" in report and "x latent_flow_nfe10" in report


def test_a_variant_run_is_lsdm_alone_under_the_variant_name(tmp_path):
    """TAG-nN-sS--NAME is an LSDM-only run (methods: []): its LSDM row is named NAME, and the baselines'
    metrics files it carries from the commit are not taken as its own."""
    exp = _exp("sw-n1-s0--lsdm_paper", 1, 0, fid=7.0, flow_fids={10: 1.0})
    exp["data"]["metrics"]["results/fit_matcher/metrics.json"]["data"]["matcher"]["variant"] = "LSDM (concat critic)"
    df = collect(_show([_exp("sw-n1-s0", 1, 0, fid=5.0, flow_fids={10: 1.0}), exp]), tag="sw-")
    paper = df[df["experiment"] == "sw-n1-s0--lsdm_paper"]
    assert list(paper["sampler"]) == ["lsdm_paper"] and paper["eval.fid_evalnet"].iloc[0] == 7.0
    assert paper["matcher"].iloc[0] == "LSDM (concat critic)"
    assert (df["sampler"] == "latent_flow_nfe10").sum() == 1  # from the main run only
    report = write_report(df, {"jobs": 2, "wall_seconds": 60.0}, tmp_path).read_text()
    assert "`lsdm_paper` = LSDM (concat critic)" in report and "2 runs at a time" in report
    assert report.index("| lsdm_paper |") < report.index("| latent_flow_nfe10 |")  # LSDM's variants next to it


def test_super_resolution_sweep_has_a_bicubic_row(tmp_path):
    exp = _exp("sr-n100-s0", 10, 0, 50.0, {10: 40.0})
    exp["data"]["params"]["params.yaml"]["data"]["task"] = "super_resolution"
    exp["data"]["metrics"]["results/evaluate/metrics.json"]["data"]["eval"]["references"] = {
        "bicubic": {"fid_evalnet": 800.0, "psnr": 14.6}
    }
    df = collect(_show([exp]))
    bicubic = df[df["method"] == "bicubic"].iloc[0]
    assert bicubic["eval.fid_evalnet"] == 800.0 and bicubic["eval.psnr"] == 14.6 and bicubic["nfe"] == 0
    assert "| bicubic |" in write_report(df, {}, tmp_path).read_text()


def test_report_without_any_eval_metrics(tmp_path):
    exp = _exp("a-n1-s0", 1, 0, 1.0, {})
    for k in [k for k in exp["data"]["metrics"] if "evaluate" in k or k.endswith("baselines/pixel_wgan/metrics.json")]:
        exp["data"]["metrics"].pop(k)
    df = collect(_show([exp]))
    report = write_report(df, {}, tmp_path).read_text()
    assert "No evaluation metrics were found" in report and "training time" in report
    assert "not drawn" in report


def test_verdicts_pair_the_runs_on_each_split_seed():
    """Seeds differ a lot (some splits are harder), but on every seed LSDM is 1 FID better: paired,
    that is a win an unpaired mean ± std comparison would call a tie; a shuffled sign is a tie."""
    base = [40.0, 60.0, 80.0]
    rows = [
        {
            "experiment": f"e{s}",
            "sampler": m,
            "method": m,
            "nfe": 1,
            "n_paired_per_class": 10,
            "seed": s,
            "eval.fid_evalnet": base[s] + (0.0 if m == "lsdm" else 1.0 + 0.01 * s),
        }
        for s in range(3)
        for m in ("lsdm", "latent_flow_nfe10")
    ]
    df = pd.DataFrame(rows)
    mean, half, n = paired_difference(df, "lsdm", "latent_flow_nfe10", "n_paired_per_class", 10, "eval.fid_evalnet")
    assert n == 3 and mean == pytest.approx(-1.01) and half < 0.1
    assert paired_verdict(mean, half, higher=False) == "better" and paired_verdict(mean, half, higher=True) == "worse"
    assert paired_verdict(0.5, 2.0, higher=False) == "tie" and paired_verdict(-3.0, float("nan"), higher=False) == "tie"
    summary = summarise(df)
    std = summary.loc[summary["sampler"] == "lsdm", "eval.fid_evalnet|std"].iloc[0]
    assert std > 10  # the seeds' spread dwarfs the difference: only the pairing sees it


def test_density_is_judged_by_its_distance_to_the_real_reference(tmp_path):
    rows = [
        {
            "experiment": "e0",
            "sampler": m,
            "method": m,
            "nfe": 1,
            "n_paired_per_class": 10,
            "seed": 0,
            "eval.density": d,
            "eval.real_reference.density": 1.0 if m == "lsdm" else None,
        }
        for m, d in (("lsdm", 1.1), ("latent_flow_nfe10", 1.6))
    ]
    summary = summarise(pd.DataFrame(rows))
    gaps = summary.set_index("sampler")["density_gap|mean"]
    assert gaps["lsdm"] == pytest.approx(0.1) and gaps["latent_flow_nfe10"] == pytest.approx(0.6)
    report = write_report(pd.DataFrame(rows), {}, tmp_path).read_text()
    assert "density (closest to its real reference is better" in report and "|density − real density|" in report


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the sweep itself may take up to 1200 s (run's timeout below)
def test_tiny_sweep_through_the_dvc_queue(tmp_path):
    """2 counts x 1 seed x every method and one variant, through `dvc exp run --queue` and `dvc queue
    start -j 1`; a count above the smallest class is skipped, not run; table, report and plots appear.
    (One variant keeps the suite short: how variants are planned and named is tested without DVC.)"""
    variants = {"lsdm_paired_only": {"split.n_unpaired": 0, "matcher.critic": "concat"}}
    repo = make_repo(
        tmp_path / "repo",
        tiny_params(evaluate={"seeds": [0], "batch_size": 60, "grid_per_class": 2}, sweep={"variants": variants}),
    )
    every = ["-S", "methods=[pixel_wgan,latent_flow]"]
    log = tmp_path / "sweep.log"
    sweep = start_group(
        ["lsdm", "sweep", "--counts", "1", "2", "1000", "--seeds", "0", "--tag", "t", "--timeout", "900", *every],
        repo,
        env(),
        log,
    )
    try:
        deadline = time.monotonic() + 300
        while not (workers := queue_workers(repo)) or "Running" not in {t["status"] for t in queue_status(repo)}:
            assert sweep.poll() is None and time.monotonic() < deadline, tail(log)
            time.sleep(1)
        # the worker leaves after its first run (SIGTERM: celery's warm shutdown), as one that takes a
        # shutdown an earlier worker left in the broker does: the sweep starts another, runs every point
        os.kill(workers[1], signal.SIGTERM)
        assert sweep.wait(timeout=1200) == 0, tail(log)
    finally:
        stop_group(sweep)
    out = log.read_text()
    assert out.count("started queue worker 1") >= 2, out
    assert "split.n_paired_per_class = 1000 skipped" in out
    df = pd.read_parquet(repo / "results/sweep/sweep.parquet")
    assert sorted(df["experiment"].unique()) == [f"t-n{n}-s0{v}" for n in (1, 2) for v in ("", "--lsdm_paired_only")]
    assert set(df["method"]) == {"lsdm", "pixel_wgan", "lsdm_paired_only", "latent_flow"}
    pools = df[df["sampler"].isin(["lsdm", "lsdm_paired_only"])].set_index(["sampler", "n_paired_per_class"])[
        "pool_size"
    ]
    assert pools["lsdm_paired_only", 1] == 10 and pools["lsdm_paired_only", 2] == 20  # the pairs alone (10 classes)
    assert pools["lsdm", 1] == pools["lsdm", 2] > 100  # every training image, whatever the pairs
    assert set(df.loc[df["sampler"] == "lsdm_paired_only", "n_unpaired"]) == {0}
    variant = df[df["method"] == "lsdm_paired_only"]  # the variant runs LSDM alone, with its own matcher
    assert len(variant) == 2 and set(variant["experiment"].str.endswith("--lsdm_paired_only")) == {True}
    assert set(variant["matcher"]) == {"LSDM + class-aware marginal (concat critic)"}  # the default's terms, f concat
    assert (df["train_seconds"][df["method"] != "lsdm"] > 0).all()  # the baselines' own summaries
    lsdm = df[df["method"] == "lsdm"]
    assert lsdm["eval.fid_evalnet"].notna().all() and set(lsdm["n_paired_per_class"]) == {1, 2}
    assert len(pd.read_csv(repo / "results/sweep/sweep.csv")) == len(df)
    meta = json.loads((repo / "results/sweep/sweep.json").read_text())
    assert set(meta["status"].values()) == {"Success"}
    assert meta["skipped"][0]["count"] == 1000 and len(meta["status"]) == 4
    report = (repo / "reports/comparison.md").read_text()
    assert "n_paired_per_class ∈ [1, 2]" in report and "Skipped:** split.n_paired_per_class = 1000" in report
    assert (repo / "reports/comparison/fidelity_vs_pairs.png").exists()
    assert (repo / "reports/comparison/throughput.png").exists()
    assert "comparison/evaluate__samples.png" in report  # the grid of the smallest count
    assert "comparison/lsdm_paired_only__evaluate__samples.png" in report  # and the variant's, beside it
    flow = df[df["method"] == "latent_flow"]  # the baselines are judged too
    assert set(flow["sampler"]) == {"latent_flow_nfe2", "latent_flow_nfe4"} and set(flow["nfe"]) == {2, 4}
    assert df["eval.fid_evalnet"].notna().all()
    assert (repo / "reports/comparison/fid_vs_nfe.png").exists()
    # a new paired subset reruns the baselines, never the shared autoencoder (the second run reuses it)
    log = run(["dvc", "queue", "logs", "t-n2-s0"], repo).stdout
    for stage in ("split", "fit_matcher", "fit_baseline@pixel_wgan", "fit_baseline@latent_flow"):
        assert f"Running stage '{stage}'" in log, stage
    for stage in ("prepare", "fit_latent", "encode", "eval_net"):
        assert f"Running stage '{stage}'" not in log, stage
    # no unpaired images: a latent pool of its own, so its own autoencoder
    log = run(["dvc", "queue", "logs", "t-n2-s0--lsdm_paired_only"], repo).stdout
    assert "Running stage 'fit_latent'" in log and "Running stage 'encode'" in log
    # the workspace itself never ran the paired stages: the queue did, each in its own experiment
    assert not (repo / "data/baselines").exists()
    (repo / "reports/comparison.md").unlink()
    run(["lsdm", "compare"], repo)
    assert (repo / "reports/comparison.md").read_text() == report


def test_sweep_settings_are_checked_before_anything_is_queued(tmp_path):
    from lsdm.config import parse_assignments as parse_set
    from lsdm.errors import ParamsError
    from lsdm.orchestration.sweep import check

    repo = tmp_path / "repo"
    repo.mkdir()
    params = tiny_params(sweep={"set": {"matcher.steps": 7}})
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    assert check(repo) == ([1, 2], [0], {"matcher.steps": 7})
    assert check(repo, [5], [1, 2], parse_set(["methods=[pixel_wgan]"]))[2] == {
        "matcher.steps": 7,
        "methods": ["pixel_wgan"],
    }
    with pytest.raises(ParamsError, match=r"matcher.steps = 0"):
        check(repo, overrides={"matcher.steps": 0})
    with pytest.raises(ParamsError, match=r"unknown key 'matcher.stepz'"):
        check(repo, overrides={"matcher.stepz": 5})
    with pytest.raises(ParamsError, match=r"split.seed.*the sweep sets them"):
        check(repo, overrides={"split.seed": 3})
    with pytest.raises(ParamsError, match=r"KEY=VALUE"):
        parse_set(["matcher.steps"])


def test_comparison_plots_the_measured_bound_against_the_pairs(tmp_path):
    rows = [
        {
            "experiment": f"e{n}-{s}",
            "sampler": "lsdm",
            "method": "lsdm",
            "nfe": 1,
            "n_paired_per_class": n,
            "seed": s,
            "eval.fid_evalnet": 10.0 / n + s,
            "eval.bound.w1_pixel_exact": 5.0 / n + 1,
            "eval.bound.rhs": 20.0 / n + 3,
            "eval.bound.lip_times_w1": 17.0 / n,
            "eval.bound.recon_l2_test": 3.0,
        }
        for n in (1, 3, 10)
        for s in (0, 1)
    ]
    text = write_report(pd.DataFrame(rows), {}, tmp_path).read_text()
    assert "![LSDM's bound, measured, against the number of pairs](comparison/bound_vs_pairs.png)" in text
    assert (tmp_path / "reports/comparison/bound_vs_pairs.png").stat().st_size > 0
    without = write_report(
        pd.DataFrame(rows).drop(columns=["eval.bound.rhs", "eval.bound.w1_pixel_exact", "eval.bound.lip_times_w1"]),
        {},
        tmp_path,
    ).read_text()
    assert "bound, measured, against the number of pairs: not drawn" in without


def test_log_axes_are_ticked_at_the_counts_as_plain_numbers(tmp_path, monkeypatch):
    """The fidelity, bound and NFE figures put their log x axis's ticks at the counts (NFEs) the points
    sit at, labelled 3, 10, 30: matplotlib's own minor labels (3×10⁰, 4×10⁰, 6×10⁰) overlapped."""
    from lsdm.reports import plots

    figures = {}
    monkeypatch.setattr(plots, "_save", lambda fig, out: figures.__setitem__(out.name, fig))
    rows = [
        {
            "experiment": f"e{n}-{s}",
            "sampler": sampler,
            "method": method,
            "nfe": nfe,
            "n_paired_per_class": n,
            "seed": s,
            "eval.fid_evalnet": 10.0 / n + s + nfe,
            "eval.label_accuracy": 0.9,
            "eval.bound.w1_pixel_exact": 5.0 / n,
            "eval.bound.rhs": 20.0 / n,
            "eval.bound.lip_times_w1": 17.0 / n,
            "eval.bound.recon_l2_test": 3.0,
        }
        for n in (3, 10, 30)
        for s in (0, 1)
        for sampler, method, nfe in (
            ("lsdm", "lsdm", 1),
            ("latent_flow_nfe4", "latent_flow", 4),
            ("latent_flow_nfe50", "latent_flow", 50),
        )
    ]
    write_report(pd.DataFrame(rows), {}, tmp_path)
    for name, ticks in (
        (plots.FIDELITY_VS_PAIRS, ["3", "10", "30"]),
        (plots.BOUND_VS_PAIRS, ["3", "10", "30"]),
        (plots.FID_VS_NFE, ["1", "4", "50"]),
    ):
        for ax in figures[name].axes:
            assert [x.get_text() for x in ax.get_xticklabels()] == ticks, name
            assert list(ax.get_xticks(minor=True)) == [], name


def test_claim_one_section_pairs_pool_sizes_by_split_seed(tmp_path):
    """The unpaired-pool reading: rows of LSDM and of variants that only set split.n_unpaired, paired by
    split seed; the gain of all unpaired images over none is judged with its interval, per count."""
    rows = []
    for n, gain in ((3, 10.0), (10, 2.0)):  # all unpaired images lower FID by 10 at 3 pairs, by 2 at 10
        for s in range(3):
            pairs = 10 * n
            for sampler, unpaired in (("unpaired_0", 0), ("unpaired_300", 300), ("lsdm", None), ("lsdm_paper", None)):
                size = pairs + (3000 if unpaired is None else unpaired)
                fid = 50.0 + s - (gain if unpaired is None else gain * unpaired / 3000) + 0.1 * s * (sampler == "lsdm")
                rows.append(
                    {
                        "experiment": f"p-n{n}-s{s}--{sampler}",
                        "sampler": sampler,
                        "method": sampler,
                        "nfe": 1,
                        "n_paired_per_class": n,
                        "seed": s,
                        "n_unpaired": unpaired,
                        "pool_size": size,
                        "recon_test_mse": 0.01 + 10 / size,
                        "eval.fid_evalnet": fid,
                        "eval.coverage": 0.5,
                    }
                )
    df = pd.DataFrame(rows)
    variants = {
        "unpaired_0": {"split.n_unpaired": 0},
        "unpaired_300": {"split.n_unpaired": 300},
        "lsdm_paper": {"matcher.marginal_weight": 0.0},
    }
    pool = pool_rows(df, variants)
    assert set(pool["sampler"]) == {"lsdm", "unpaired_0", "unpaired_300"}  # the paper's variant is not a pool size
    assert sorted(pool["unpaired"].unique()) == [0, 300, 3000]  # the main run: pool size minus the pairs
    effects = pool_effects(pool, "n_paired_per_class").set_index(["n_paired_per_class", "metric"])
    fid3, fid10 = effects.loc[(3, "eval.fid_evalnet")], effects.loc[(10, "eval.fid_evalnet")]
    assert fid3["diff"] == pytest.approx(-10.0 + 0.1) and fid3["verdict"] == "better" and fid3["n"] == 3
    assert fid10["diff"] == pytest.approx(-2.0 + 0.1) and fid10["verdict"] == "better"
    assert effects.loc[(3, "eval.coverage"), "verdict"] == "tie"  # no difference at all
    report = write_report(df, {"name": "pool", "variants": variants}, tmp_path).read_text()
    assert report.startswith("# LSDM sweep `pool`") and "## Claim 1: what the unpaired images buy" in report
    assert "The gain is larger with fewer pairs (+9.9 at 3 vs +1.9 at 10" in report
    assert "![Fidelity against the unpaired pool size](comparison-pool/fidelity_vs_unpaired.png)" in report
    assert (tmp_path / "reports/comparison-pool/fidelity_vs_unpaired.png").exists()
    assert (tmp_path / "reports/comparison-pool.md").exists() and not (tmp_path / "reports/comparison.md").exists()


def test_training_seeds_cross_the_split_seeds_and_pair_the_runs():
    from lsdm.config import train_seed_keys
    from lsdm.orchestration.sweep import grid

    points = dict(
        grid(
            [("split.n_paired_per_class", 3, 0), ("split.n_paired_per_class", 3, 1)],
            "t",
            {"methods": []},
            {"lsdm_paper": {"matcher.marginal_weight": 0.0}},
            train_seeds=[0, 1],
        )
    )
    assert sorted(points) == sorted(f"t-n3-s{s}-t{t}{v}" for s in (0, 1) for t in (0, 1) for v in ("", "--lsdm_paper"))
    assert [("--" in name) for name in points] == [False] * 4 + [
        True
    ] * 4  # main runs first: variants hit the run cache
    assert all(points["t-n3-s1-t1--lsdm_paper"][k] == 1 for k in train_seed_keys())
    assert points["t-n3-s1-t1--lsdm_paper"]["split.seed"] == 1 and "pixel_wgan.seed" in train_seed_keys()
    assert sorted(dict(grid([("split.n_paired_per_class", 3, 0)], "t", {}, {}))) == ["t-n3-s0"]  # one seed: no suffix
    # two samplers paired on (split seed, training seed): 4 pairs, the difference exactly known
    rows = [
        {
            "sampler": m,
            "n_paired_per_class": 3,
            "seed": s,
            "train_seed": t,
            "eval.fid_evalnet": 10 * s + t + (2.0 if m == "a" else 0),
        }
        for m in ("a", "b")
        for s in (0, 1)
        for t in (0, 1)
    ]
    mean, half, n = paired_difference(pd.DataFrame(rows), "a", "b", "n_paired_per_class", 3, "eval.fid_evalnet")
    assert (mean, half, n) == (2.0, 0.0, 4)  # unpaired, the spread over seeds (10 FID) would swamp it


def test_paired_table_marks_verdicts_the_split_seeds_alone_do_not_carry():
    """3 split seeds x 2 training seeds: against pixel_wgan LSDM is better on every run; against the
    flow the six differences exclude zero but their three split-seed means do not (the runs of one
    split share its pairs), so that verdict carries a †."""
    diffs = {
        "pixel_wgan": [-5.0, -5.2, -4.8, -5.1, -4.9, -5.0],
        "latent_flow_nfe1": [-2.0, -2.1, -0.1, -0.2, -1.0, -1.1],
    }
    runs = [(s, t) for s in (0, 1, 2) for t in (0, 1)]
    rows = [{"sampler": "lsdm", "seed": s, "train_seed": t, "eval.fid_evalnet": 20.0 + s} for s, t in runs]
    rows += [
        {"sampler": m, "seed": s, "train_seed": t, "eval.fid_evalnet": 20.0 + s - d[i]}
        for m, d in diffs.items()
        for i, (s, t) in enumerate(runs)
    ]
    df = pd.DataFrame([{**r, "n_paired_per_class": 3, "experiment": f"e{r['seed']}{r['train_seed']}"} for r in rows])
    lines = paired_table(df, "n_paired_per_class", ["lsdm", "pixel_wgan", "latent_flow_nfe1"])
    wgan, flow = (next(row for row in lines if row.startswith(f"| {m} |")) for m in ("pixel_wgan", "latent_flow_nfe1"))
    assert "-5.00 [-5.15, -4.85]" in wgan and "**better**" in wgan and "†" not in wgan
    assert "**better**" in flow and flow.rstrip(" |").endswith("†")
    mean, half, n = paired_difference(
        df, "lsdm", "latent_flow_nfe1", "n_paired_per_class", 3, "eval.fid_evalnet", by_split=True
    )
    assert n == 3 and abs(mean) < half  # the stricter test: a tie


def test_the_grid_cell_is_one_run_per_sampler():
    """The grids come from one cell: smallest count, first split seed, first training seed (the rows of a
    second training seed would write the same grid files over the first's)."""
    from lsdm.orchestration.sweep import grid_cell

    df = pd.DataFrame(
        {
            "experiment": ["a", "a", "b", "c", "d"],
            "n_paired_per_class": [3, 3, 3, 3, 10],
            "n_paired": [None] * 5,
            "seed": [0, 0, 0, 1, 0],
            "train_seed": [1, 1, 0, 0, 0],
            "sampler": ["lsdm", "x", "lsdm", "lsdm", "lsdm"],
        },
        index=[4, 4, 2, 1, 0],
    )
    assert list(grid_cell(df)["experiment"]) == ["b"]
    assert list(grid_cell(df.assign(train_seed=None))["experiment"]) == ["a", "a", "b"]


def test_grids_come_from_the_experiment_not_from_a_committed_sweep(tmp_path):
    """An experiment's commit holds the committed sweeps' grids too (results/sweep/ and every named
    sweep's results/sweep-NAME/) and other plots (the benchmarks'): only the run's own sample grids
    are extracted."""
    from lsdm.orchestration.sweep import extract_grids

    repo = tmp_path / "repo"
    own = ["results/evaluate/samples.png", "results/baselines/pixel_wgan/eval/samples/pixel_wgan.png"]
    for rel in [
        *own,
        "results/sweep/grids/evaluate__samples.png",
        "results/sweep-pool/grids/evaluate__samples.png",
        "results/benchmarks/scale.png",
    ]:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(b"\x89PNG " + rel.encode())
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "exp"], repo)
    rev = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    df = pd.DataFrame([{"experiment": "t-n3-s0", "rev": rev, "n_paired_per_class": 3, "seed": 0}])
    found = sorted(p.name for p in extract_grids(df, repo))
    assert found == ["baselines__pixel_wgan__eval__samples__pixel_wgan.png", "evaluate__samples.png"]


def _piece(root, name: str, exps: list[dict], train_seed: int, overrides: dict, only: str | None = None) -> None:
    """A named sweep as `lsdm sweep --name NAME` leaves it: results/sweep-NAME/ with table, record, grids
    (with `only`, the rows of that sampler alone: a sweep of LSDM alone, `methods: []`)."""
    from lsdm.orchestration.sweep import write_table

    df = collect(_show(exps)).assign(train_seed=train_seed)
    df = df[df["sampler"] == only] if only else df
    grids = [
        root / f"results/sweep-{name}/grids/{g}"
        for g in ("evaluate__samples.png", "pixel_wgan.png")[: 1 if only else 2]
    ]
    for grid in grids:
        grid.parent.mkdir(parents=True, exist_ok=True)
        grid.write_bytes(b"\x89PNG " + name.encode())
    write_table(
        df,
        root,
        {
            "name": name,
            "tag": name,
            "baseline": "c0ffee" + name,
            "experiments": len(exps),
            "wall_seconds": 120.0,
            "jobs": 2,
            "overrides": overrides,
            "variants": {},
            "status": {e["name"]: "Success" for e in exps},
            "grids": [str(g.relative_to(root)) for g in grids],
        },
    )


def test_combined_sweep_is_one_grid_and_records_what_ran_twice(tmp_path):
    """Pieces of one grid run apart (another session, another commit) read as one sweep: every cell once,
    the first piece's run where a cell ran in two, and how far the repeat moved is in its record."""
    from lsdm.errors import ParamsError
    from lsdm.orchestration.sweep import main

    same = {"methods": ["latent_flow"], "evaluate.seeds": [0]}
    _piece(tmp_path, "a", [_exp(f"a-n1-s{s}", 1, s, fid=10.0 + s, flow_fids={10: 9.0}) for s in (0, 1)], 0, same)
    _piece(
        tmp_path,
        "b",
        [
            _exp(f"b-n{n}-s{s}", n, s, fid=12.5 if n == 1 else 5.0 + s, flow_fids={10: 9.0})
            for n, s in ((1, 0), (10, 0), (10, 1), (10, 2))
        ],
        0,
        same,
    )
    assert main(["--combine", "a", "b", "--repo", str(tmp_path)]) == 0
    df = pd.read_parquet(tmp_path / "results/sweep/sweep.parquet")
    assert sorted(df["experiment"].unique()) == [
        "a-n1-s0",
        "a-n1-s1",
        "b-n10-s0",
        "b-n10-s1",
        "b-n10-s2",
    ]  # b-n1-s0 repeats a-n1-s0
    assert len(df) == 5 * 4 and not df.duplicated(["n_paired_per_class", "seed", "train_seed", "sampler"]).any()
    meta = json.loads((tmp_path / "results/sweep/sweep.json").read_text())
    lsdm = [r for r in meta["repeats"] if r["sampler"] == "lsdm"]
    assert len(meta["repeats"]) == 4 and lsdm[0]["eval.fid_evalnet"] == [10.0, 12.5] and lsdm[0]["dropped"] == "b-n1-s0"
    assert meta["counts"] == [1, 10] and [p["baseline"] for p in meta["combined"]] == ["c0ffeea", "c0ffeeb"]
    assert sorted(meta["status"]) == sorted(df["experiment"].unique())
    assert (
        tmp_path / "results/sweep/grids/evaluate__samples.png"
    ).read_bytes() == b"\x89PNG a"  # the n1-s0 cell's piece
    report = (tmp_path / "reports/comparison.md").read_text()
    assert "`lsdm sweep --combine a b`" in report and "moved by at most label_accuracy 0, fid_evalnet 7.5" in report
    assert "| 10 |" in report  # both pieces' counts in one table
    assert "(2 / 3 pairs at 1 / 10 pairs per class)" in report  # the pieces' runs per count, as they are
    # pieces that ran with different settings are different experiments, not one grid
    _piece(tmp_path, "c", [_exp("c-n3-s0", 3, 0, fid=1.0, flow_fids={10: 1.0})], 0, {**same, "evaluate.seeds": [0, 1]})
    with pytest.raises(ParamsError, match="sweep 'c' ran with .*only pieces of one grid"):
        from lsdm.orchestration.sweep import combine_sweeps

        combine_sweeps(tmp_path, ["a", "c"])
    assert main(["--combine", "a", "missing", "--repo", str(tmp_path)]) == 2


def test_cells_match_across_tables_whatever_their_columns_dtype():
    """A count read as 3 from one table and as 3.0 from another (whose column also holds a NaN, so pandas
    stores floats) is one cell; so are two NaN counts; 3 and 30 are not."""
    from lsdm.orchestration.sweep import cell_ids, replace_samplers

    key = ["n_paired_per_class", "seed", "sampler"]
    ints = pd.DataFrame({"n_paired_per_class": [3, 30], "seed": [0, 0], "sampler": ["lsdm", "lsdm"]})
    floats = pd.DataFrame({"n_paired_per_class": [3.0, float("nan"), 30.0], "seed": [0, 0, 0], "sampler": ["lsdm"] * 3})
    assert list(cell_ids(ints, key)) == [cell_ids(floats, key)[0], cell_ids(floats, key)[2]]
    assert cell_ids(floats, key)[1] == cell_ids(floats.iloc[[1]], key).iloc[0] != cell_ids(ints, key)[0]
    new = ints.assign(experiment=["new-3", "new-30"], **{"eval.fid_evalnet": [1.0, 2.0]})
    old = floats.drop(index=1).assign(experiment=["old-3", "old-30"], **{"eval.fid_evalnet": [5.0, 6.0]})
    table, replaced = replace_samplers((new, {"name": "new", "overrides": {}}), old, [{"name": "old", "overrides": {}}])
    assert sorted(table["experiment"]) == ["new-3", "new-30"] and [r["dropped"] for r in replaced] == [
        "old-3",
        "old-30",
    ]


def test_a_sweep_rerun_for_lsdm_alone_replaces_its_rows_of_the_grid(tmp_path):
    """`--combine NEW OLD --replace`: LSDM rerun alone (`methods: []`, a new default) takes the place of the
    old grid's LSDM rows in every cell, keeps the other methods' rows and grids, and records what each
    replaced row was; a rerun that misses a cell, or ran with other settings, is refused."""
    from lsdm.errors import ParamsError
    from lsdm.orchestration.sweep import combine_sweeps, main

    grid = {"methods": ["latent_flow"], "latent_flow.steps": 500, "evaluate.seeds": [0]}
    _piece(tmp_path, "old", [_exp(f"old-n3-s{s}", 3, s, fid=30.0 + s, flow_fids={10: 9.0}) for s in (0, 1)], 0, grid)
    new = [_exp(f"new-n3-s{s}", 3, s, fid=20.0 + s, flow_fids={10: 1.0}) for s in (0, 1)]
    _piece(tmp_path, "new", new, 0, {"methods": [], "evaluate.seeds": [0]}, only="lsdm")
    assert main(["--combine", "new", "old", "--replace", "--repo", str(tmp_path)]) == 0
    df = pd.read_parquet(tmp_path / "results/sweep/sweep.parquet")
    lsdm, flow = df[df["sampler"] == "lsdm"], df[df["sampler"] == "latent_flow_nfe10"]
    assert sorted(lsdm["eval.fid_evalnet"]) == [20.0, 21.0] and set(lsdm["experiment"]) == {"new-n3-s0", "new-n3-s1"}
    assert set(flow["eval.fid_evalnet"]) == {9.0} and len(df) == len(df.drop_duplicates(["seed", "sampler"]))
    meta = json.loads((tmp_path / "results/sweep/sweep.json").read_text())
    assert [r["eval.fid_evalnet"] for r in meta["replaced"]] == [[20.0, 30.0], [21.0, 31.0]]
    assert meta["overrides"] == grid and "every row of lsdm is `new`'s" in meta["note"]
    grids = tmp_path / "results/sweep/grids"
    assert (grids / "evaluate__samples.png").read_bytes() == b"\x89PNG new" and (grids / "pixel_wgan.png").exists()
    _piece(
        tmp_path,
        "part",
        [_exp("part-n3-s0", 3, 0, fid=1.0, flow_fids={10: 1.0})],
        0,
        {"methods": [], "evaluate.seeds": [0]},
        only="lsdm",
    )
    with pytest.raises(ParamsError, match=r"'part' lacks 1 cell\(s\)"):
        combine_sweeps(tmp_path, ["part", "old"], replace=True)
    _piece(tmp_path, "other", new, 0, {"methods": [], "evaluate.seeds": [0, 1]}, only="lsdm")
    with pytest.raises(ParamsError, match=r"differ in \['evaluate.seeds'\]"):
        combine_sweeps(tmp_path, ["other", "old"], replace=True)

"""The pipeline for real: `dvc repro` on tiny params, the caching contract, and CLI errors.

These run DVC and every stage in subprocesses, as a user would (marked slow: about a minute each).
"""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
import yaml
from support.checkout import ROOT
from support.docs import readme_commands
from support.processes import env, run, start_group
from support.repos import PAIRED_STAGES, SHARED_STAGES, copy_repo, make_repo, ran_and_skipped, tiny_params

from lsdm.config import METHOD_NAMES, Params
from lsdm.data.schemas import IMAGES, LATENT_POOL, LATENTS, PAIRED
from lsdm.evaluation.registry import read_results
from lsdm.io import read_table
from lsdm.pipeline import STAGES


def dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_dvc_yaml_matches_cli_and_config():
    """Each stage is one `lsdm <stage>` call (a foreach stage over `methods`: `lsdm <stage> --method
    ${item}`, its `${item}` param a section per method) and every param it lists is a config field."""
    stages = dvc_stages()
    assert sorted(n for n, s in stages.items() if "foreach" not in s) == sorted(STAGES)  # `evaluate` is declared first
    for name, stage in stages.items():
        if "foreach" in stage:
            assert stage["foreach"] == "${methods}"
            stage = stage["do"]
            assert stage["cmd"] == f"lsdm {name} --method ${{item}}"
            assert all(m in Params.model_fields for m in METHOD_NAMES)  # (Params().methods is empty)
        else:  # the check stage writes its stamp, which `lsdm check` alone does not
            assert stage["cmd"] == (f"lsdm {name} --stamp" if name == "check" else f"lsdm {name}")
        for key in stage.get("params", []):
            if isinstance(key, dict) or key == "${item}":  # `params.yaml:` = all params (the report)
                continue
            node = Params
            for part in key.split("."):
                assert part in node.model_fields, f"{name}: param {key!r} is not a config field"
                node = node.model_fields[part].annotation


@pytest.mark.slow
def test_tiny_repro_end_to_end(tiny_repro, monkeypatch):
    """Every declared output, valid; and a few dozen steps already beat noise. Their labels are at
    chance this small (test_small_run_generates_the_conditioned_digit asserts them)."""
    import torch

    from lsdm.config import load_params
    from lsdm.evaluation.judge import Reference, evalnet_features
    from lsdm.evaluation.metrics import fid

    repo = tiny_repro
    for name, stage in dvc_stages().items():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                path = next(iter(out)) if isinstance(out, dict) else out
                assert (repo / path).exists(), f"{name}: declared {kind} {path} missing"
    images = read_table(repo / "data/prepared/images.parquet", IMAGES)
    assert len(images) == 300
    latents = read_table(repo / "data/encoded/latents.parquet", LATENTS)
    assert set(latents["id"]) == set(images["id"]) and len(latents["z"].iloc[0]) == 16
    paired = read_table(repo / "data/split/paired.parquet", PAIRED)
    assert len(paired) == 30
    assert len(read_table(repo / "data/split/latent_pool.parquet", LATENT_POOL)) == (images["split"] == "train").sum()

    metrics = read_results(repo / "results/evaluate")["eval"]
    for key in ("label_accuracy", "fid_evalnet", "recon_mse_test", "throughput_images_per_s"):
        assert isinstance(metrics[key], float), key
    assert set(metrics["label_accuracy_per_class"]) == {str(k) for k in range(10)}
    # the judge learned the labels (chance is 0.1; 60 test images: a binomial std of 0.04) ...
    assert metrics["evalnet_accuracy_real_test"] > 0.2, metrics["evalnet_accuracy_real_test"]
    # ... and the samples are far nearer the test images than uniform noise is, by the same FID
    monkeypatch.chdir(repo)
    ref = Reference.load(load_params(), torch.device("cpu"))
    noise = torch.rand(len(ref.y_test), *ref.y_test.shape[1:], generator=torch.Generator().manual_seed(0))
    noise_fid = fid(ref.real_feats, evalnet_features(ref.evalnet, noise))
    assert metrics["fid_evalnet"] < 0.6 * noise_fid, (metrics["fid_evalnet"], noise_fid)
    report = (repo / "reports/report.md").read_text()
    assert "eval.fid_evalnet" in report and "figures/samples.png" in report and "n_paired_per_class: 3" in report
    assert "didn't change" in run(["dvc", "repro"], repo).stdout  # a second repro does nothing
    assert run(["dvc", "status"], repo).stdout.strip() == "Data and pipelines are up to date."


@pytest.mark.slow
def test_small_run_generates_the_conditioned_digit(tmp_path, monkeypatch):
    """A small real run with the shipped matcher settings (600 images, 10 pairs per class, a few hundred steps): the
    evaluation net recovers the conditioning label far above chance (0.1), FID is far below a
    sampler of noise images, and what `evaluate` judged is the matcher params.yaml selects."""
    import torch

    from lsdm.config import load_params
    from lsdm.evaluation.judge import Reference, evalnet_features
    from lsdm.evaluation.metrics import fid
    from lsdm.io import load_checkpoint
    from lsdm.models.matching import variant_name

    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())["matcher"]
    params = tiny_params(
        data={"limit": 600},
        split={"n_paired_per_class": 10},
        latent={"steps": 600},
        evalnet={"epochs": 8},
        matcher={**shipped, "steps": 500, "width": 64, "depth": 2, "batch_size": 64},
    )
    repo = make_repo(tmp_path / "repo", params)
    run(["dvc", "repro", "report"], repo)
    e = read_results(repo / "results/evaluate")["eval"]
    # chance is 0.1; on these 120 test images a binomial std is ~0.04, and the net itself is ~0.8 on real digits
    assert e["split"] == "test" and e["label_accuracy"] > 0.3, (e["label_accuracy"], e["evalnet_accuracy_real_test"])

    monkeypatch.chdir(repo)
    p = load_params()
    ref = Reference.load(p, torch.device("cpu"))
    noise = evalnet_features(
        ref.evalnet, torch.rand(len(ref.y_test), *ref.y_test.shape[1:], generator=torch.Generator().manual_seed(0))
    )
    assert e["fid_evalnet"] < 0.25 * fid(ref.real_feats, noise), (e["fid_evalnet"], fid(ref.real_feats, noise))

    config = load_checkpoint(repo / "data/matcher/matcher.pt")["config"]
    assert config["critic"] == shipped["critic"] and config["marginal"] == (shipped["marginal_weight"] > 0)
    assert variant_name(p.matcher) in (repo / "reports/report.md").read_text()


@pytest.mark.slow
def test_changing_paired_subset_reruns_only_paired_stages(tiny_repro, tmp_path):
    repo = copy_repo(tiny_repro, tmp_path / "repo")
    assert run(["dvc", "status"], repo).stdout.strip() == "Data and pipelines are up to date."
    lock_before = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    pool_before = (repo / "data/split/latent_pool.parquet").read_bytes()
    paired_before = (repo / "data/split/paired.parquet").read_bytes()

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["split"]["n_paired_per_class"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo).stdout

    ran, skipped = ran_and_skipped(out)
    assert ran == PAIRED_STAGES, out
    assert skipped == SHARED_STAGES, out
    lock_after = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage in ("prepare", "fit_latent", "encode", "eval_net"):
        assert lock_after[stage] == lock_before[stage], stage
    assert lock_after["check"]["outs"] == lock_before["check"]["outs"]  # the same stamp: nothing reruns for it
    for stage in ("split", "fit_matcher", "evaluate"):
        assert lock_after[stage]["outs"] != lock_before[stage]["outs"], stage
    assert (repo / "data/split/latent_pool.parquet").read_bytes() == pool_before
    assert (repo / "data/split/paired.parquet").read_bytes() != paired_before
    assert len(read_table(repo / "data/split/paired.parquet", PAIRED)) == 20


@pytest.mark.slow
def test_cli_errors_write_nothing(tiny_repo):
    repo = tiny_repo
    run(["lsdm", "prepare"], repo)
    images = (repo / "data/prepared/images.parquet").read_bytes()

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["split"]["n_paired_per_class"] = 1000
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    p = run(["lsdm", "split"], repo, check=False)
    assert p.returncode == 2
    assert "split.n_paired_per_class = 1000" in p.stderr and "allowed: 1.." in p.stderr
    assert "Traceback" not in p.stderr
    assert not (repo / "data/split").exists()

    params["split"]["n_paired_per_class"] = 3
    params["data"]["source"] = "imagenet"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    p = run(["lsdm", "prepare"], repo, check=False)
    assert p.returncode == 2 and "data.source = 'imagenet'" in p.stderr and "mnist5k" in p.stderr
    assert (repo / "data/prepared/images.parquet").read_bytes() == images  # untouched

    params["data"]["source"] = "mnist5k"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    p = run(["lsdm", "fit_matcher"], repo, check=False)
    assert p.returncode == 2 and "data/split/paired.parquet" in p.stderr and "not found" in p.stderr


# When the Ctrl-C comes: while Python starts and imports (before the CLI's first line), once the CLI has
# validated params and imports the stage's libraries (torch, ...), and in the training loop.
INTERRUPT_AT = {"start-up": None, "imports": "CPU threads", "training": re.compile(r"fit_latent:\s+\d+%\|")}


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(INTERRUPT_AT))
def test_interrupted_stage_leaves_no_output(tiny_repo, moment):
    """Ctrl-C at any moment stops the stage within seconds: neither the checkpoint nor the curves appear."""
    repo = tiny_repo
    run(["lsdm", "prepare"], repo)
    run(["lsdm", "split"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["latent"]["steps"] = 100_000
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    # The child writes to a file, never to a pipe this test might stop reading: a progress bar that
    # fills a pipe's buffer blocks the child in write() and it never gets to handle the signal.
    log = repo / "fit_latent.log"
    proc = start_group(["lsdm", "fit_latent"], repo, env(), log, sigint=True)
    mark, deadline = INTERRUPT_AT[moment], time.monotonic() + 300  # generous: a loaded machine is slow, not wrong
    text = lambda: log.read_text(errors="replace")  # noqa: E731
    while mark is not None and not (mark.search(text()) if isinstance(mark, re.Pattern) else mark in text()):
        assert proc.poll() is None and time.monotonic() < deadline, text()
        time.sleep(0.05)
    assert proc.poll() is None, text()
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.wait(timeout=120)  # lsdm.interrupt ends it within 15 s even where the signal was swallowed
    print(f"{moment}: exited {proc.returncode} {time.monotonic() - sent:.2f} s after the SIGINT")
    assert proc.returncode != 0
    assert not (repo / "data/latent/autoencoder.pt").exists()
    assert not (repo / "results/fit_latent").exists()
    leftovers = [p.name for p in (repo / "results").glob("*") if p.name != "prepare"]  # prepare's own metrics stay
    assert leftovers == [], leftovers  # no half-written fit_latent directory, hidden or not


def metric_columns(show: list[dict]) -> dict[str, list[str]]:
    """The metric columns `dvc exp show` gives each revision: {rev: [file:dotted.key, ...]}."""

    def flat(d, prefix=""):
        if not isinstance(d, dict):
            return [prefix]
        return [c for k, v in d.items() for c in flat(v, f"{prefix}.{k}" if prefix else k)]

    return {
        row["rev"]: [
            f"{path}:{c}"
            for path, m in ((row.get("data") or {}).get("metrics") or {}).items()
            for c in flat((m or {}).get("data") or {})
        ]
        for row in show
    }


def test_the_evaluation_metrics_come_first_and_every_costly_stage_has_a_run_cache():
    """`dvc exp show` lists stage metrics in the order stages are declared: `evaluate` comes first, so
    its eval.* columns lead. DVC keeps no run cache for a stage with an uncached output that is neither
    a metric nor a plot (dvc/stage/__init__.py: `no_cache_outs`), and without it a queued experiment
    reruns prepare, fit_latent and fit_matcher: their summaries are stage metrics, never plain outs.
    `check` and `report` depend on params.yaml as a file: its keys are not their params."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    names = list(spec["stages"])
    assert names[0] == "evaluate" and "metrics" not in spec
    for name in ("prepare", "split", "fit_latent", "encode", "pseudo_label", "fit_matcher", "eval_net", "fit_baseline"):
        stage = spec["stages"][name].get("do", spec["stages"][name])
        uncached = [
            next(iter(o))
            for o in stage.get("outs", [])
            if isinstance(o, dict) and not next(iter(o.values())).get("cache", True)
        ]
        assert not uncached, f"{name}: uncached plain outs {uncached} switch off its run cache; make them metrics"
    for name in ("check", "report"):
        assert "params" not in spec["stages"][name] and "params.yaml" in spec["stages"][name]["deps"]


def make_var(name: str) -> str:
    """A `VAR := value` of the Makefile, as the shell receives it."""
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith(f"{name} :="))
    return line.split(":=", 1)[1].strip().replace("$$", "$")


@pytest.mark.slow
def test_dvc_exp_show_stays_readable(tiny_repro, tmp_path):
    """The pipeline's DVC metrics files hold headline scalars only (details.json the rest): a short table
    (28 columns: 9 eval.*, the stage summaries, the pseudo-labels' accuracy and coverage)."""
    repo = copy_repo(tiny_repro, tmp_path / "repo")
    cols = metric_columns(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))["workspace"]
    assert 0 < len(cols) <= 28, cols
    assert "results/evaluate/metrics.json:eval.fid_evalnet" in cols
    assert not any(".over_seeds." in c or ".per_class" in c or ".real_reference." in c for c in cols), cols


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_exp_show_fits_a_120_column_terminal(tiny_repro, tmp_path):
    """`dvc exp show` lists the evaluation's metrics first; `make exp-show` at 120 columns shows each
    experiment's name, the params that differ, eval.label_accuracy and eval.fid_evalnet, and nothing
    else, unabridged. A new summary metric that varies between runs shows here: add it to EXP_SHOW_DROP."""
    repo = copy_repo(tiny_repro, tmp_path / "repo")
    cols = metric_columns(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))["workspace"]
    assert cols[0].startswith("results/evaluate/metrics.json:eval."), cols  # before the training summaries

    run(["dvc", "exp", "run", "-q", "-n", "seed1", "-S", "split.seed=1"], repo, timeout=600)
    show = [
        "dvc",
        "exp",
        "show",
        "--no-pager",
        "--only-changed",
        "--keep",
        make_var("EXP_SHOW_KEEP"),
        "--drop",
        make_var("EXP_SHOW_DROP"),
    ]
    out = run(show, repo, extra_env={"COLUMNS": "120"}).stdout
    lines = [x.rstrip() for x in out.splitlines() if x.strip() and not set(x.strip()) <= {"─"}]
    assert lines[0].split() == ["Experiment", "eval.fid_evalnet", "eval.label_accuracy", "split.seed"], out
    assert all(len(x) <= 120 for x in out.splitlines()) and "…" not in out, out
    assert any("[seed1]" in x for x in lines), out

    # the README's `dvc exp show`, as written: the pairs' params and the two headline metrics, unabridged
    [readme_show] = [argv for argv in readme_commands("dvc") if argv[1:3] == ["exp", "show"]]
    out = run(readme_show, repo, extra_env={"COLUMNS": "120"}).stdout
    lines = [x.rstrip() for x in out.splitlines() if x.strip() and not set(x.strip()) <= {"─"}]
    assert lines[0].split() == [
        "Experiment",
        "eval.fid_evalnet",
        "eval.label_accuracy",
        "split.n_paired_per_class",
        "split.seed",
    ], out
    assert all(len(x) <= 120 for x in out.splitlines()) and "…" not in out and any("[seed1]" in x for x in lines), out


@pytest.mark.slow
def test_the_pools_true_labels_never_reach_the_class_aware_matcher(tiny_repro, tmp_path):
    """Pseudo-labels come from the pairs alone: with the true labels of every unpaired image
    permuted (in the image table and the latents table alike), pseudo_label writes the same table and
    the same image classifier (the filtered draw's), and fit_matcher (class-aware) the same weights, bit
    for bit, and so do the baselines given the pseudo-pairs (latent_flow_pseudo, pixel_wgan_pseudo);
    only the measured accuracy changes."""
    import numpy as np
    import pandas as pd
    import torch

    from lsdm.data.schemas import PSEUDO_LABELS, latents_arrow_schema
    from lsdm.io import write_table

    repo = copy_repo(tiny_repro, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["matcher"].update(marginal="class_aware", marginal_weight=0.3)
    params["pseudo"]["threshold"] = 0.5
    params["sample"]["filter"] = "image"  # the image classifier is trained too
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def fit() -> tuple[pd.DataFrame, dict, dict]:
        for stage in ("pseudo_label", "fit_matcher"):
            run(["lsdm", stage], repo)
        state = torch.load(repo / "data/matcher/matcher.pt", weights_only=True)["state_dict"]
        state |= {
            f"pseudo_classifier.{k}": v
            for k, v in torch.load(repo / "data/pseudo/classifier.pt", weights_only=True)["state_dict"].items()
        }
        for method, file in (("latent_flow_pseudo", "flow.pt"), ("pixel_wgan_pseudo", "model.pt")):
            run(["lsdm", "fit_baseline", "--method", method], repo)
            state |= {
                f"{method}.{k}": v
                for k, v in torch.load(repo / "data/baselines" / method / file, weights_only=True)["state_dict"].items()
            }
            assert (
                json.loads((repo / f"results/baselines/{method}/train/metrics.json").read_text())["baseline"][
                    "n_pseudo"
                ]
                > 0
            )
        return (
            read_table(repo / "data/pseudo/labels.parquet", PSEUDO_LABELS),
            state,
            json.loads((repo / "results/pseudo_label/metrics.json").read_text())["pseudo"]["unpaired"],
        )

    labels, state, measured = fit()
    assert any(k.startswith("critic.class_critic.") for k in state)  # the class-aware term trained
    assert any(k.startswith("pseudo_classifier.head") for k in state)  # and the image classifier
    assert any(k.startswith("latent_flow_pseudo.") for k in state) and any(
        k.startswith("pixel_wgan_pseudo.") for k in state
    )
    paired = set(read_table(repo / "data/split/paired.parquet", PAIRED)["id"])
    rng = np.random.default_rng(0)
    for rel, schema in (("data/prepared/images.parquet", IMAGES), ("data/encoded/latents.parquet", LATENTS)):
        table = read_table(repo / rel, schema)
        rows = ((table["split"] == "train") & ~table["id"].isin(paired)).to_numpy()
        table.loc[rows, "label"] = rng.permutation(table.loc[rows, "label"].to_numpy())
        dim = {"arrow_schema": latents_arrow_schema(len(table["z"].iloc[0]))} if schema is LATENTS else {}
        write_table(table, repo / rel, schema, **dim)  # a new file: DVC's cached copy is untouched
    labels2, state2, measured2 = fit()
    pd.testing.assert_frame_equal(labels, labels2)
    assert state.keys() == state2.keys() and all(torch.equal(state[k], state2[k]) for k in state)
    # the measurement reads the (permuted) truth, so the labels did change under the fit; the tiny run's
    # 30-step autoencoder makes poor latents, so its accuracy is low either way
    assert measured2["accuracy"] != measured["accuracy"] and measured2["coverage"] == measured["coverage"]
    # the image filter draws through that classifier end to end; the report says which filter judged
    run(["lsdm", "evaluate"], repo)
    run(["lsdm", "report"], repo)
    assert 0.0 <= json.loads((repo / "results/evaluate/metrics.json").read_text())["eval"]["label_accuracy"] <= 1.0
    assert "`sample.filter: image`" in (repo / "reports/report.md").read_text()


@pytest.mark.slow
def test_the_tuning_script_trains_what_fit_matcher_trains(tiny_repro, tmp_path):
    """benchmarks/tune_matcher.py runs fit_matcher's own `prepare` and `train` (its copy of them had
    drifted): at the run's own params, paired count and split seed it trains the weights the pipeline's
    fit_matcher wrote, and judges the plain and the filtered draw; the critic-free estimator
    (`matcher.estimator: minibatch_ot`) goes the same way and trains different weights."""
    import sys

    import pandas as pd
    import torch

    from lsdm.io import load_checkpoint

    repo = copy_repo(tiny_repro, tmp_path / "repo")
    params = Params(**yaml.safe_load((repo / "params.yaml").read_text()))
    run(
        [
            sys.executable,
            str(ROOT / "benchmarks/tune_matcher.py"),
            "--counts",
            str(params.split.n_paired_per_class),
            "--seeds",
            str(params.split.seed),
            "--jobs",
            "1",
            "--variant",
            "base:",
            "--variant",
            "ot:matcher.estimator=minibatch_ot",
            "--sample",
            "4:0.5",
            "--matchers",
            "kept",
            "--out",
            "t.csv",
        ],
        repo,
        extra_env={"TUNE_THREADS": "1"},
    )
    table = pd.read_csv(repo / "t.csv")
    assert sorted(table["variant"]) == ["base", "base_c4_a0.5", "ot", "ot_c4_a0.5"]
    assert table["label_accuracy"].between(0, 1).all() and (table["fid_evalnet"] > 0).all()
    shipped = load_checkpoint(repo / "data/matcher/matcher.pt")["state_dict"]
    tuned = torch.load(
        repo / f"kept/base_n{params.split.n_paired_per_class}_s{params.split.seed}.pt", weights_only=True
    )
    ot = torch.load(repo / f"kept/ot_n{params.split.n_paired_per_class}_s{params.split.seed}.pt", weights_only=True)
    generator = [k for k in shipped if k.startswith("generator.")]
    assert all(torch.allclose(tuned[k], shipped[k], atol=1e-5) for k in generator)
    assert not all(torch.allclose(ot[k], shipped[k], atol=1e-3) for k in generator)

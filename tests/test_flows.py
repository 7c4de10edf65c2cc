"""The Prefect flow `lsdm` over the real DVC pipeline (no mocks).

Fast tests check the helpers of lsdm/orchestration/ and prefect.yaml. The slow ones run the flow
under `prefect_test_harness` (a temporary local server and database) on tiny params: the outputs
are those of `dvc repro`, a paired-count override reruns only the paired stages (and the check), every run
is a DVC experiment in `dvc exp show`, and bad overrides fail before anything runs.
"""

from __future__ import annotations

import json

import pytest
import yaml
from support.checkout import ROOT
from support.prefect import by_flow_run, stage_statuses
from support.processes import run
from support.repos import PAIRED_STAGES, SHARED_STAGES, exp_show, make_repo, tiny_params

from lsdm.config import METHOD_NAMES
from lsdm.errors import ParamsError
from lsdm.orchestration.dvc import CACHED, RAN, SKIPPED, StageFailed, parse_repro
from lsdm.orchestration.experiments import metrics_table, read_pipeline
from lsdm.orchestration.params_file import render_params, validate
from lsdm.orchestration.sweep import check as check_sweep
from lsdm.pipeline import STAGES

# ---------------------------------------------------------------------------------------------
# helpers shared with test_prefect_server.py


def numbers(d: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of nested metrics, by dotted key (what `dvc exp show` tabulates)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(numbers(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def assert_close(a, b, path="eval"):
    """Equal up to float noise, ignoring wall-clock figures (throughput, seconds)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for k in a:
            if "seconds" not in k and "throughput" not in k:
                assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-3, abs=1e-6), path
    else:
        assert a == b, path


# ---------------------------------------------------------------------------------------------
# fast: helpers and prefect.yaml


def test_render_params_keeps_comments_and_validates():
    text = (ROOT / "params.yaml").read_text()
    out = render_params(text, {"split.n_paired_per_class": 3, "latent.channels": [8, 16]})
    raw = yaml.safe_load(out)
    assert raw["split"]["n_paired_per_class"] == 3 and raw["latent"]["channels"] == [8, 16]
    assert "# the paired subset; with n_unpaired null the latent pool does not depend on these" in out  # comments kept
    assert out.splitlines()[0] == text.splitlines()[0]
    assert validate(ROOT, {"split.n_paired_per_class": 3}).split.n_paired_per_class == 3
    with pytest.raises(ParamsError, match="split.n_paired_per_class = 0"):
        validate(ROOT, {"split.n_paired_per_class": 0})
    with pytest.raises(ParamsError, match="unknown key 'split.n_pairs'"):
        validate(ROOT, {"split.n_pairs": 3})
    with pytest.raises(ParamsError, match="dotted key"):
        validate(ROOT, {"split.": 3})


def test_parse_repro_and_failures():
    assert parse_repro("split", "Running stage 'split':\n> lsdm split") == RAN
    assert parse_repro("split", "Stage 'split' didn't change, skipping") == SKIPPED
    assert parse_repro("encode", "Stage 'encode' is cached - skipping run, checking out outputs") == CACHED
    assert parse_repro("encode", "Running stage 'split':") is None
    bad = StageFailed("split", 255, "ERROR: failed to reproduce 'split': failed to run: lsdm split, exited with 2")
    assert not bad.transient and "exited with 2" in str(bad) and "not retried" in str(bad)
    flaky = StageFailed("fit_latent", 255, "x" * 10_000 + "\nERROR: ... exited with 137")
    assert flaky.transient and len(flaky.stderr_tail) <= 3000 and "exited with 137" in str(flaky)


def test_pipeline_from_dvc_and_metrics_table(tmp_path):
    repo = make_repo(tmp_path / "repo", tiny_params())
    graph = read_pipeline(repo)
    assert [s for s in graph.stages if s in STAGES] == list(STAGES)  # graph order
    assert len(set(graph.stages)) == len(graph.stages)
    paths = graph.uncached
    assert "results/evaluate/metrics.json" in paths and "reports/report.md" in paths
    assert not any(p.startswith("data/") for p in paths)  # DVC's cache holds those
    rows = metrics_table({"label_accuracy": 0.5, "label_accuracy_per_class": {"0": 1.0}})
    assert rows == [
        {"metric": "eval.label_accuracy", "value": 0.5},
        {"metric": "eval.label_accuracy_per_class.0", "value": 1.0},
    ]


def test_prefect_yaml_deployments():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (pull,) = spec["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $LSDM_REPO }}"
    deps = {d["name"]: d for d in spec["deployments"]}
    assert set(deps) == {"full", "sweep", "point"}
    for d in deps.values():
        assert d["work_pool"]["name"] == "gpu"
        path, _, func = d["entrypoint"].partition(":")
        assert (
            load_flow_from_entrypoint(str(ROOT / path) + ":" + func).name == "lsdm"
        )  # lsdm/full, lsdm/sweep, lsdm/point
    assert deps["sweep"]["parameters"] == {}  # params.yaml's sweep section, checked here:
    counts, seeds, overrides = check_sweep(ROOT)
    assert counts == [3, 10, 30] and len(seeds) >= 3 and sorted(overrides["methods"]) == sorted(METHOD_NAMES)


# ---------------------------------------------------------------------------------------------
# slow: the flow for real under prefect_test_harness


@pytest.fixture(scope="module")
def harness():
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        with get_client(sync_client=True) as client:
            yield client


@pytest.mark.slow
def test_bad_overrides_fail_before_anything_runs(harness, tmp_path):
    from flows.lsdm_flow import pipeline, sweep

    repo = make_repo(tmp_path / "repo", tiny_params())
    before = (repo / "params.yaml").read_bytes()
    state = pipeline(overrides={"split.n_paired_per_class": 0}, repo=str(repo), return_state=True)
    assert state.is_failed()
    with pytest.raises(ParamsError, match=r"split.n_paired_per_class = 0"):
        state.result()
    state = sweep(counts=[2], seeds=[0], overrides={"latent.dims": 8}, repo=str(repo), return_state=True)
    assert state.is_failed()
    with pytest.raises(ParamsError, match=r"unknown key 'latent.dims'"):
        state.result()
    _, tasks = by_flow_run(harness, state.state_details.flow_run_id)
    assert tasks == []  # no stage started
    assert (repo / "params.yaml").read_bytes() == before
    assert not (repo / "dvc.lock").exists() and not (repo / "data").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)  # three flow runs, the first the whole pipeline
def test_flow_matches_dvc_repro_and_reruns_only_paired_stages(harness, tiny_repro, tmp_path):
    from flows.lsdm_flow import pipeline

    repo = make_repo(tmp_path / "repo", tiny_params())
    params_before = (repo / "params.yaml").read_bytes()

    # 1. the whole pipeline: every stage runs, outputs are those of `dvc repro`
    state = pipeline(repo=str(repo), exp_name="tiny-full", return_state=True)
    assert state.is_completed(), state.message
    metrics = state.result()
    artifacts, tasks = by_flow_run(harness, state.state_details.flow_run_id)
    ref_lock = yaml.safe_load((tiny_repro / "dvc.lock").read_text())["stages"]
    assert stage_statuses(artifacts) == {s: RAN for s in ref_lock}  # the stages `dvc repro` ran
    assert sorted(t.name for t in tasks if t.name in ref_lock) == sorted(ref_lock)
    assert all(t.state.is_completed() for t in tasks)
    assert {"lsdm-report", "lsdm-metrics", "lsdm-stages"} <= set(artifacts)
    assert "eval.fid_evalnet" in artifacts["lsdm-report"].data

    # every DVC-cached output (data/) is byte-identical to `dvc repro`'s; metrics agree up to float noise
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(ref_lock)
    for stage in lock:
        cached = [o for o in lock[stage]["outs"] if o["path"].startswith("data/")]
        assert cached == [o for o in ref_lock[stage]["outs"] if o["path"].startswith("data/")], stage
    ref_metrics = json.loads((tiny_repro / "results/evaluate/metrics.json").read_text())["eval"]
    assert_close(metrics, ref_metrics)
    table = artifacts["lsdm-metrics"].data  # what the UI shows: the returned metrics, every one of them
    table = json.loads(table) if isinstance(table, str) else table
    assert {r["metric"]: r["value"] for r in table} == {f"eval.{k}": v for k, v in metrics.items()}
    assert (repo / "reports/report.md").exists() and (repo / "reports/figures").is_dir()
    assert "up to date" in run(["dvc", "status"], repo).stdout  # exactly what `dvc repro` leaves
    assert (repo / "params.yaml").read_bytes() == params_before

    # 2. one paired-count override: DVC reruns only the paired stages
    state = pipeline(overrides={"split.n_paired_per_class": 2}, repo=str(repo), return_state=True)
    assert state.is_completed(), state.message
    artifacts, _ = by_flow_run(harness, state.state_details.flow_run_id)
    statuses = stage_statuses(artifacts)
    assert {s for s, v in statuses.items() if v == SKIPPED} == SHARED_STAGES, statuses
    assert {s for s, v in statuses.items() if v == RAN} == set(statuses) - SHARED_STAGES >= PAIRED_STAGES, statuses
    paired_name = harness.read_flow_run(state.state_details.flow_run_id).name  # the default experiment name
    # the workspace is that run, as `dvc exp run -S` leaves it: its params beside its outputs
    assert yaml.safe_load((repo / "params.yaml").read_text())["split"]["n_paired_per_class"] == 2
    assert "up to date" in run(["dvc", "status"], repo).stdout
    params_before = (repo / "params.yaml").read_bytes()

    exps = exp_show(repo)
    assert exps["tiny-full"]["params"]["split"]["n_paired_per_class"] == 3
    assert numbers(exps["tiny-full"]["metrics"]["eval"]) == numbers(metrics)
    assert exps[paired_name]["params"]["split"]["n_paired_per_class"] == 2
    assert numbers(exps[paired_name]["metrics"]["eval"]) == numbers(state.result())

    # 3. a value the typed config accepts but the data cannot satisfy: the check stage fails (exit 2)
    #    before split, no retry, the flow's error carries its stderr, split's outputs are untouched,
    #    params.yaml comes back as it was before this run, no experiment is recorded
    paired = (repo / "data/split/paired.parquet").read_bytes()
    state = pipeline(overrides={"split.n_paired_per_class": 1000}, repo=str(repo), return_state=True)
    assert state.is_failed()
    with pytest.raises(StageFailed, match=r"(?s)stage 'check' failed.*not retried.*split.n_paired_per_class = 1000"):
        state.result()
    _, tasks = by_flow_run(harness, state.state_details.flow_run_id)
    runs = {t.name: t for t in tasks}
    assert runs["check"].state.is_failed() and runs["check"].run_count == 1 and "split" not in runs
    assert (repo / "data/split/paired.parquet").read_bytes() == paired
    assert (repo / "params.yaml").read_bytes() == params_before
    assert len(exp_show(repo)) == 2

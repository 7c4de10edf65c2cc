"""End to end with a real Prefect server and a real process worker (no harness, no mocks).

One module-scoped server (free port, PREFECT_HOME and its SQLite database in tmp, analytics off)
and one worker on the process pool `gpu` serve both tests; they are started as their own process
groups and killed as groups in `finally`, so nothing outlives the tests, even on failure. The
worker runs in another directory and gets the checkout only through $LSDM_REPO (the pull step
of prefect.yaml), as on a remote GPU box.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.docs import readme_commands
from support.prefect import Server, by_flow_run, stage_statuses
from support.processes import group_alive, run, start_group, stop_group, tail
from support.repos import PAIRED_STAGES, SHARED_STAGES, add_flows, copy_repo, exp_show
from test_flows import numbers

from lsdm.orchestration.dvc import RAN, SKIPPED, workspace_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # flow runs waited on for up to FLOW_RUN_TIMEOUT

FLOW_RUN_TIMEOUT = 900  # seconds; a tiny run takes about a minute on two busy cores, longer beside other jobs


@dataclass
class Deployed:
    server: Server
    repo: Path
    worker_log: Path


@pytest.fixture(scope="module")
def deployed(prefect_server, tiny_repro, tmp_path_factory):
    """A copy of the reproduced tiny repo with flows + prefect.yaml, the pool `gpu`, both deployments,
    and a worker. (test_flows runs the whole pipeline through the flow; here the paired stages do.)"""
    srv = prefect_server
    base = tmp_path_factory.mktemp("deployed")
    repo = add_flows(copy_repo(tiny_repro, base / "repo"))
    pool, deploy, worker_cmd = (
        readme_prefect(*words) for words in (("work-pool", "create"), ("deploy",), ("worker", "start"))
    )
    srv.prefect(*pool[1:], cwd=repo)
    out = srv.prefect(*deploy[1:], cwd=repo).stdout
    assert "lsdm/full" in out and "lsdm/sweep" in out, out
    elsewhere = base / "worker-cwd"  # not the repo: the pull step must take the worker there
    elsewhere.mkdir()
    log = base / "worker.log"
    worker = start_group(worker_cmd, elsewhere, dict(srv.env, LSDM_REPO=str(repo)), log)
    try:
        yield Deployed(srv, repo, log)
    finally:
        stop_group(worker)
        assert not group_alive(worker.pid), "worker or flow-run processes survived"


def readme_prefect(*words: str) -> list[str]:
    """The README's one `prefect <words> ...` command (the front door's Prefect commands, run as written
    here against this module's server: PREFECT_API_URL points at it, as the README's export does)."""
    [argv] = [a for a in readme_commands("prefect") if a[1 : 1 + len(words)] == list(words)]
    return argv


def wait_final(d: Deployed, ids: list, timeout: float = FLOW_RUN_TIMEOUT) -> dict:
    """Poll until every flow run is final; {id: flow_run}. Fails with the worker log if not."""
    deadline = time.monotonic() + timeout
    with d.server.client() as client:
        while True:
            runs = {i: client.read_flow_run(i) for i in ids}
            if all(r.state and r.state.is_final() for r in runs.values()):
                return runs
            if time.monotonic() > deadline:
                states = {str(i): r.state.name if r.state else None for i, r in runs.items()}
                raise AssertionError(
                    f"flow runs not final after {timeout}s: {states}\n--- worker ---\n{tail(d.worker_log)}"
                )
            time.sleep(2)


def assert_completed(d: Deployed, runs: dict) -> None:
    bad = {str(i): (r.state.name, r.state.message) for i, r in runs.items() if not r.state.is_completed()}
    assert not bad, f"{bad}\n--- worker ---\n{tail(d.worker_log, 8000)}"


def test_deployment_full_on_real_server_and_worker(deployed):
    d = deployed
    params_before = (d.repo / "params.yaml").read_bytes()
    command = readme_prefect("deployment", "run")  # what a user types, as the README shows it
    assert command[4:6] == ["--params", json.dumps({"overrides": {"split.n_paired_per_class": 2}})], command
    out = d.server.prefect(*command[1:], cwd=d.repo).stdout
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
    runs = wait_final(d, [flow_run_id])
    assert_completed(d, runs)
    run_ = runs[flow_run_id]

    with d.server.client() as client:
        artifacts, tasks = by_flow_run(client, run_.id)
    assert {"lsdm-report", "lsdm-metrics", "lsdm-stages"} <= set(artifacts)
    assert (
        "eval.fid_evalnet" in artifacts["lsdm-report"].data and "n_paired_per_class: 2" in artifacts["lsdm-report"].data
    )
    statuses = stage_statuses(artifacts)  # a new paired subset: DVC reran the paired stages, nothing upstream
    assert {s for s, v in statuses.items() if v == RAN} == PAIRED_STAGES and set(
        statuses
    ) - PAIRED_STAGES == SHARED_STAGES, statuses
    assert {statuses[s] for s in SHARED_STAGES} == {SKIPPED}, statuses
    assert all(t.state.is_completed() for t in tasks)

    exps = exp_show(d.repo)
    assert run_.name in exps, sorted(exps)  # the flow run is a DVC experiment named after it
    assert exps[run_.name]["params"]["split"]["n_paired_per_class"] == 2
    written = json.loads((d.repo / "results/evaluate/metrics.json").read_text())[
        "eval"
    ]  # what the run's evaluate wrote
    assert numbers(exps[run_.name]["metrics"]["eval"]) == numbers(written) and isinstance(written["fid_evalnet"], float)
    # the workspace is that run, as `dvc exp run -S` leaves it: its params beside its outputs, nothing stale
    params_after = (d.repo / "params.yaml").read_text()
    assert params_after != params_before.decode() and "n_paired_per_class: 2" in params_after
    assert "up to date" in run(["dvc", "status"], d.repo).stdout


def test_two_runs_at_once_are_serialised_into_two_experiments(deployed):
    d = deployed
    params_before = (d.repo / "params.yaml").read_bytes()
    before = set(exp_show(d.repo))
    with d.server.client() as client:
        dep = client.read_deployment_by_name("lsdm/full")
        ids = [
            client.create_flow_run_from_deployment(dep.id, parameters={"overrides": {"evaluate.grid_per_class": n}}).id
            for n in (3, 5)  # evaluation only: cheap to rerun (test_flows covers the paired stages)
        ]
    runs = wait_final(d, ids)
    assert_completed(d, runs)

    # two distinct experiments with their own params and metrics
    exps = exp_show(d.repo)
    new = {name: e for name, e in exps.items() if name not in before}
    assert set(new) == {runs[i].name for i in ids}
    assert sorted(e["params"]["evaluate"]["grid_per_class"] for e in new.values()) == [3, 5]
    assert all(e["metrics"] and e["metrics"]["eval"] for e in new.values())

    # serialised by the workspace's concurrency limit: the stage tasks of the two runs never overlap
    spans = []
    with d.server.client() as client:
        for i in ids:
            artifacts, tasks = by_flow_run(client, i)
            spans.append(
                (min(t.start_time for t in tasks), max(t.end_time for t in tasks), stage_statuses(artifacts), i)
            )
        limit = client.read_global_concurrency_limit_by_name(workspace_key(d.repo))
    (a0, a1, first, _), (b0, b1, second, later) = sorted(spans, key=lambda s: s[0])
    assert a1 <= b0, f"stage tasks of the two runs overlapped: {spans}"
    assert limit.limit == 1 and limit.active_slots == 0
    # the second run found the first one's outputs: DVC reran evaluation only, nothing upstream
    assert first["evaluate"] == RAN and second["evaluate"] == RAN, (first, second)
    assert {s for s, v in second.items() if v == SKIPPED} >= SHARED_STAGES | {"split", "fit_matcher"}, second

    # the workspace is the later run, as `dvc exp run -S` leaves it (the earlier one's override under it);
    # code as committed, DVC consistent and unlocked
    expected = yaml.safe_load(params_before)
    expected["evaluate"]["grid_per_class"] = new[runs[later].name]["params"]["evaluate"]["grid_per_class"]
    assert yaml.safe_load((d.repo / "params.yaml").read_text()) == expected
    assert "up to date" in run(["dvc", "status"], d.repo).stdout
    assert run(["git", "status", "--porcelain", "--", "dvc.yaml", "lsdm", "flows", "prefect.yaml"], d.repo).stdout == ""
    assert not list((d.repo / ".dvc/tmp/lsdm-orchestrate").glob("params.yaml*"))
    run(["dvc", "status"], d.repo)  # no stale lock, the lock file parses
    run(["dvc", "exp", "show", "--json"], d.repo)

"""End to end with a real Prefect server and a real process worker (no harness, no mocks).

One module-scoped server (free port, PREFECT_HOME and its SQLite database in tmp, analytics off)
and one worker on the process pool `gpu` serve both tests; they are started as their own process
groups and killed as groups in `finally`, so nothing outlives the tests, even on failure. The
worker runs in another directory and gets the checkout only through $LSDM_REPO (the pull step
of prefect.yaml), as on a remote GPU box.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsdm.orchestration.dvc import RAN, SKIPPED, workspace_key

from conftest import SHARED_STAGES, add_flows, by_flow_run, env, exp_show, make_repo, run, stage_statuses, tiny_params

pytestmark = pytest.mark.slow

FLOW_RUN_TIMEOUT = 600  # seconds; a tiny run takes about a minute on two busy cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_group(cmd: list[str], cwd: Path, env_: dict, log: Path) -> subprocess.Popen:
    """A process in its own session/process group (so a group kill reaches its children)."""
    fh = open(log, "wb")
    return subprocess.Popen(cmd, cwd=cwd, env=env_, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children (flow-run processes, server services)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


@dataclass
class Server:
    url: str
    env: dict
    home: Path
    log: Path

    def prefect(self, *args: str, cwd: Path, **extra) -> subprocess.CompletedProcess:
        p = subprocess.run(
            ["prefect", "--no-prompt", *args], cwd=cwd, env=dict(self.env, **extra), capture_output=True, text=True, timeout=300
        )
        if p.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    @contextlib.contextmanager
    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            with get_client(sync_client=True) as client:
                yield client


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    e = dict(
        env(),
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS="3",  # a waiting run polls often
        PREFECT_LOGGING_LEVEL="INFO",
    )
    log = home / "server.log"
    proc = start_group(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], home, e, log)
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"prefect server exited {proc.returncode}\n{tail(log)}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"prefect server did not answer on {url}\n{tail(log)}"
            time.sleep(1)
        yield Server(url, e, home, log)
    finally:
        stop_group(proc)
        assert not group_alive(proc.pid), "server processes survived"


@dataclass
class Deployed:
    server: Server
    repo: Path
    worker_log: Path


@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory):
    """A tiny repo with flows + prefect.yaml, the pool `gpu`, both deployments, and a worker."""
    srv = prefect_server
    base = tmp_path_factory.mktemp("deployed")
    repo = add_flows(make_repo(base / "repo", tiny_params()))
    srv.prefect("work-pool", "create", "gpu", "--type", "process", cwd=repo)
    out = srv.prefect("deploy", "--all", cwd=repo).stdout
    assert "lsdm/full" in out and "lsdm/sweep" in out, out
    elsewhere = base / "worker-cwd"  # not the repo: the pull step must take the worker there
    elsewhere.mkdir()
    log = base / "worker.log"
    worker = start_group(
        ["prefect", "worker", "start", "--pool", "gpu", "--type", "process"], elsewhere, dict(srv.env, LSDM_REPO=str(repo)), log
    )
    try:
        yield Deployed(srv, repo, log)
    finally:
        stop_group(worker)
        assert not group_alive(worker.pid), "worker or flow-run processes survived"


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
                raise AssertionError(f"flow runs not final after {timeout}s: {states}\n--- worker ---\n{tail(d.worker_log)}")
            time.sleep(2)


def assert_completed(d: Deployed, runs: dict) -> None:
    bad = {str(i): (r.state.name, r.state.message) for i, r in runs.items() if not r.state.is_completed()}
    assert not bad, f"{bad}\n--- worker ---\n{tail(d.worker_log, 8000)}"


def test_deployment_full_on_real_server_and_worker(deployed):
    d = deployed
    params_before = (d.repo / "params.yaml").read_bytes()
    out = d.server.prefect("deployment", "run", "lsdm/full", cwd=d.repo).stdout  # what a user types
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
    runs = wait_final(d, [flow_run_id])
    assert_completed(d, runs)
    run_ = runs[flow_run_id]

    with d.server.client() as client:
        artifacts, tasks = by_flow_run(client, run_.id)
    assert {"lsdm-report", "lsdm-metrics", "lsdm-stages"} <= set(artifacts)
    assert "eval.fid_evalnet" in artifacts["lsdm-report"].data and "n_paired_per_class: 3" in artifacts["lsdm-report"].data
    assert set(stage_statuses(artifacts).values()) == {RAN}
    assert all(t.state.is_completed() for t in tasks)

    exps = exp_show(d.repo)
    assert run_.name in exps, sorted(exps)  # the flow run is a DVC experiment named after it
    assert exps[run_.name]["params"]["split"]["n_paired_per_class"] == 3
    assert exps[run_.name]["metrics"]["eval"]["label_accuracy"] is not None
    assert (d.repo / "params.yaml").read_bytes() == params_before


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
            spans.append((min(t.start_time for t in tasks), max(t.end_time for t in tasks), stage_statuses(artifacts)))
        limit = client.read_global_concurrency_limit_by_name(workspace_key(d.repo))
    (a0, a1, first), (b0, b1, second) = sorted(spans, key=lambda s: s[0])
    assert a1 <= b0, f"stage tasks of the two runs overlapped: {spans}"
    assert limit.limit == 1 and limit.active_slots == 0
    # the second run found the first one's outputs: DVC reran evaluation only, nothing upstream
    assert first["evaluate"] == RAN and second["evaluate"] == RAN, (first, second)
    assert {s for s, v in second.items() if v == SKIPPED} >= SHARED_STAGES | {"split", "fit_matcher"}, second

    # the workspace is intact: params and code as committed, DVC consistent and unlocked
    assert (d.repo / "params.yaml").read_bytes() == params_before
    assert run(["git", "status", "--porcelain", "--", "params.yaml", "dvc.yaml", "lsdm", "flows", "prefect.yaml"], d.repo).stdout == ""
    assert not list((d.repo / ".dvc/tmp/lsdm-orchestrate").glob("params.yaml*"))
    run(["dvc", "status"], d.repo)  # no stale lock, the lock file parses
    run(["dvc", "exp", "show", "--json"], d.repo)

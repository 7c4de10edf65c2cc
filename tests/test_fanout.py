"""A sweep fanned out over two workers in two separate clones that share only a bare git remote and a
directory DVC remote, on a real Prefect server and process work pool (no mocks): every point is a DVC
experiment run on whichever worker took it; the shared stages run once, in the parent; a worker
killed with SIGKILL mid-point does not lose the sweep, nor does a point a lost worker took but never started."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from support.checkout import ROOT
from support.prefect import Server
from support.processes import group_alive, run, start_group, stop_group, tail
from support.repos import add_flows, make_repo, tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # a server, two workers, sweeps waited on for up to 900 s

HEARTBEAT = 30  # seconds between a flow run's heartbeats (Prefect's minimum)
CRASHED_AFTER = 75  # a point silent this long counts as crashed and is submitted again


@dataclass
class Cluster:
    server: Server
    parent: Path  # the user's checkout, where the sweep's table and report land
    origin: Path  # the bare git remote
    store: Path  # the DVC remote
    workers: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    workdirs: dict[str, Path]

    def worker_logs(self) -> str:
        return "\n".join(f"--- worker {n} ---\n{tail(log, 3000)}" for n, log in self.logs.items())


@pytest.fixture(scope="module")
def cluster(prefect_server, tmp_path_factory):
    srv, base = prefect_server, tmp_path_factory.mktemp("fanout")
    origin, store = base / "origin.git", base / "dvc-store"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], base)
    parent = add_flows(make_repo(base / "parent", tiny_params()))
    run(["git", "remote", "add", "origin", str(origin)], parent)
    run(["dvc", "remote", "add", "-d", "store", str(store)], parent)
    run(["git", "commit", "-qam", "remotes"], parent)
    run(["git", "push", "-q", "origin", "main"], parent)
    srv.prefect("work-pool", "create", "gpu", "--type", "process", cwd=parent)
    out = srv.prefect("deploy", "--all", cwd=parent).stdout
    assert "lsdm/sweep" in out and "lsdm/point" in out, out
    workers, logs, workdirs = {}, {}, {}
    for name in ("a", "b"):  # each in its own clone of the remote, as on another machine
        clone = base / f"worker-{name}"
        run(["git", "clone", "-q", str(origin), str(clone)], base)
        logs[name], workdirs[name] = base / f"worker-{name}.log", base / f"workspaces-{name}"
        e = dict(
            srv.env,
            LSDM_REPO=str(clone),
            LSDM_WORKDIR=str(workdirs[name]),
            LSDM_THREADS="1",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT),
        )
        workers[name] = start_group(
            [
                "prefect",
                "worker",
                "start",
                "--pool",
                "gpu",
                "--type",
                "process",
                "--limit",
                "3",
                "--name",
                f"worker-{name}",
            ],
            clone,
            e,
            logs[name],
        )
    try:
        yield Cluster(srv, parent, origin, store, workers, logs, workdirs)
    finally:
        for w in workers.values():
            stop_group(w)
        assert not any(group_alive(w.pid) for w in workers.values()), "worker or flow-run processes survived"


def run_sweep(c: Cluster, tag: str, counts: list[int], seeds: list[int]) -> str:
    """`prefect deployment run lsdm/sweep` as a user types it; the flow run's id."""
    params = {
        "counts": counts,
        "seeds": seeds,
        "tag": tag,
        "repo": str(c.parent),
        "timeout": 900,
        "crashed_after": CRASHED_AFTER,
    }
    out = c.server.prefect("deployment", "run", "lsdm/sweep", "--params", json.dumps(params), cwd=c.parent).stdout
    return re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)


def wait(c: Cluster, flow_run_id: str, timeout: float = 900):
    deadline = time.monotonic() + timeout
    with c.server.client() as client:
        while True:
            fr = client.read_flow_run(flow_run_id)
            if fr.state and fr.state.is_final():
                return fr
            assert time.monotonic() < deadline, f"sweep not final after {timeout}s: {fr.state}\n{c.worker_logs()}"
            time.sleep(3)


def sweep_result(c: Cluster, fr) -> dict:
    from flows.lsdm_flow import read_json_artifact

    assert fr.state.is_completed(), f"{fr.state.name}: {fr.state.message}\n{c.worker_logs()}"
    with c.server.client() as client:
        return read_json_artifact(client, fr.id, "lsdm-sweep")


def check_sweep(c: Cluster, result: dict, tag: str, n_points: int) -> dict[str, dict]:
    """What every fanned-out sweep must show; returns the points' results by name."""
    points = {n: p["result"] for n, p in result["points"].items()}
    assert len(points) == n_points and all(p["state"] == "COMPLETED" for p in result["points"].values())
    for name, p in points.items():  # the shared stages came from the DVC remote, never recomputed
        assert p["ran_shared"] == [], (name, p["stages"])
        assert {p["stages"][s] for s in ("prepare", "fit_latent", "encode", "eval_net")} == {"skipped"}, p["stages"]
        assert p["stages"]["fit_matcher"] == "ran"
    assert result["rows"] == n_points and all(str(n).startswith(f"{tag}-") for n in points)  # its table: its own rows
    assert (c.parent / "reports/comparison.md").read_text().count("| lsdm |") >= 1
    # a fresh clone sees every experiment after `dvc exp pull` from the git remote
    fresh = c.parent.parent / f"fresh-{tag}"
    run(["git", "clone", "-q", str(c.origin), str(fresh)], c.parent.parent)
    run(["dvc", "exp", "pull", "--no-cache", "origin", *points], fresh)
    shown = run(["dvc", "exp", "show", "--json", "--rev", result["baseline"]], fresh).stdout
    assert all(f'"{n}"' in shown for n in points)
    return points


def check_table(c: Cluster, points_by_tag: dict[str, dict]) -> None:
    """The workspace's table is the last sweep's to write it: one of these, with all its points and no others."""
    table = pd.read_parquet(c.parent / "results/sweep/sweep.parquet")
    tags = {str(e).split("-n")[0] for e in table["experiment"]}
    assert len(tags) == 1 and tags <= set(points_by_tag), tags
    assert sorted(table["experiment"].unique()) == sorted(points_by_tag[tags.pop()])


def test_fanout_sweep_over_two_workers(cluster, tmp_path):
    """Two sweeps submitted at once, one as a user types `lsdm sweep --fanout`: both complete over both
    workers, and neither's table, report or experiments hold the other's points."""
    c = cluster
    log = tmp_path / "lsdm-sweep.log"
    cli = start_group(
        ["lsdm", "sweep", "--fanout", "--counts", "2", "--seeds", "5", "--tag", "other", "--repo", str(c.parent)],
        c.parent,
        c.server.env,
        log,
    )
    fr = wait(c, run_sweep(c, "fan", counts=[2, 3], seeds=[0, 1]))
    assert cli.wait(timeout=600) == 0, tail(log)
    other_id = re.search(r"UUID: ([0-9a-f-]{36})", log.read_text()).group(1)
    other = sweep_result(c, wait(c, other_id))
    check_sweep(c, other, "other", 1)
    result = sweep_result(c, fr)
    points = check_sweep(c, result, "fan", 4)  # its table (written last or first) holds its own 4 only
    assert set(points).isdisjoint(other["points"]) and result["baseline"] != other["baseline"]
    check_table(c, {"fan": points, "other": other["points"]})
    # both workers ran points (each holds at most 3 runs, parents included, and there are 5 points)
    every = {**points, **{n: p["result"] for n, p in other["points"].items()}}
    used = {name for name, d in c.workdirs.items() for p in every.values() if p["workspace"].startswith(str(d))}
    assert used == {"a", "b"}, {n: p["workspace"] for n, p in every.items()}


def test_a_worker_killed_mid_point_does_not_lose_the_sweep(cluster, tmp_path):
    """The sweep's parent runs off the workers here (a process of its own against the server), so
    whichever worker takes a point can be lost without losing the parent."""
    c, tag = cluster, "kill"
    code = (
        "import sys; from flows.lsdm_flow import sweep; "
        f"s = sweep(counts=[2, 3], seeds=[2], tag={tag!r}, repo={str(c.parent)!r}, timeout=900, "
        f"crashed_after={CRASHED_AFTER}, return_state=True); print('FLOW RUN', s.state_details.flow_run_id)"
    )
    log = tmp_path / "parent.log"
    env = dict(
        c.server.env, PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT)
    )  # beats within crashed_after, as a worker's runs do
    parent = start_group([sys.executable, "-c", code], ROOT, env, log)
    victim = wait_for_point_on_a_worker(c, None, tag)
    time.sleep(3)  # in the middle of the point: the machine is lost, worker and flow-run processes at once
    for pid in [c.workers[victim].pid, *_descendants(c.workers[victim].pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert parent.wait(timeout=900) == 0, tail(log)
    flow_run_id = re.search(r"FLOW RUN ([0-9a-f-]{36})", log.read_text()).group(1)
    result = sweep_result(c, wait(c, flow_run_id))
    check_table(c, {tag: check_sweep(c, result, tag, 2)})
    assert any(p["attempts"] > 1 for p in result["points"].values()), result["points"]  # resubmitted after the crash


def wait_for_point_on_a_worker(c: Cluster, parent_id: str | None, tag: str, timeout: float = 600) -> str:
    """The worker that runs one of the sweep's points but not the sweep itself (the flow run's
    process, its `infrastructure_pid`, descends from the worker's)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    deadline = time.monotonic() + timeout
    with c.server.client() as client:
        while time.monotonic() < deadline:
            parent = _pid(client.read_flow_run(parent_id).infrastructure_pid) if parent_id else None
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"{tag}-n")))
            running = {_pid(r.infrastructure_pid) for r in runs if r.state and r.state.is_running()} - {None}
            for name, w in c.workers.items():
                tree = _descendants(w.pid)
                if running & tree and parent not in tree:
                    return name
            time.sleep(1)
    raise AssertionError(f"no worker started a point of {tag}\n{c.worker_logs()}")


def _pid(infrastructure_pid: str | None) -> int | None:
    return int(infrastructure_pid.rsplit(":", 1)[-1]) if infrastructure_pid else None


def _descendants(pid: int) -> set[int]:
    """Every process under `pid` (children of children too), from `ps`'s parent links."""
    rows = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.split("\n")
    children: dict[int, list[int]] = {}
    for row in filter(None, (r.split() for r in rows)):
        children.setdefault(int(row[1]), []).append(int(row[0]))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _state_only_flow():
    """A flow whose runs are never executed: the tests drive their states on the server directly."""
    from prefect import flow

    @flow(name="lsdm-test-point")
    def point() -> None:
        pass

    return point


def _lost_worker_pending_runs(c: Server, retries: int, stuck_after: float, timeout: float):
    """`wait_for_points` on one point whose run a worker took (PENDING) and then died with, on the real
    server: a resubmission is created SCHEDULED and a healthy worker runs it (here: it completes at
    once). Returns (the stuck run's id, the runs resubmitted, wait_for_points' result)."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, PREFECT_LOGGING_TO_API_ENABLED, temporary_settings
    from prefect.states import Completed, Pending, Scheduled

    from flows.lsdm_flow import wait_for_points

    point = _state_only_flow()

    settings = {PREFECT_API_URL: c.url, PREFECT_LOGGING_TO_API_ENABLED: False}  # no log shipping after the server stops
    with temporary_settings(updates=settings), c.client() as client:
        stuck = client.create_flow_run(point, name="lost-n2-s0", state=Pending())  # taken, never started
        resubmitted = []

        def resubmit(name: str):
            fr = client.create_flow_run(point, name=name, state=Scheduled())
            client.set_flow_run_state(fr.id, Completed(), force=True)
            resubmitted.append(fr.id)
            return fr

        watch = flow(name="lsdm-test-watch")(
            lambda: wait_for_points(
                {"lost-n2-s0": stuck}, resubmit, retries=retries, timeout=timeout, poll=0.5, stuck_after=stuck_after
            )
        )
        try:
            result = watch()
        except TimeoutError as e:
            result = e
        return stuck.id, resubmitted, result


def test_a_point_left_pending_by_a_lost_worker_is_submitted_again(prefect_server):
    """A point's run that a worker took but never started (PENDING: no heartbeat, so the zombie
    automation never marks it crashed) is cancelled and submitted again after `stuck_after`; with no
    retries left the sweep times out naming the point instead of hanging."""
    stuck, resubmitted, result = _lost_worker_pending_runs(prefect_server, retries=1, stuck_after=2, timeout=300)
    assert isinstance(result, dict), result
    (final,) = result.values()
    assert final["state"] == "COMPLETED" and final["attempts"] == 2 and final["flow_run_id"] == str(resubmitted[0])
    with prefect_server.client() as client:
        assert client.read_flow_run(stuck).state.is_cancelled()  # no worker coming back can run it twice
    stuck, resubmitted, result = _lost_worker_pending_runs(prefect_server, retries=0, stuck_after=1, timeout=5)
    assert isinstance(result, TimeoutError) and "lost-n2-s0" in str(result) and resubmitted == []
    with prefect_server.client() as client:
        assert client.read_flow_run(stuck).state.is_pending()


def test_a_run_killed_before_its_first_heartbeat_is_crashed(prefect_server):
    """A point's run killed in its first seconds, before its first heartbeat reached the server (the
    case that once left a CI sweep waiting 900 s), is marked CRASHED by the zombie automation all the
    same, so the sweep submits it again; a run that ends within the window is left alone."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Completed, Pending, Running

    from flows.lsdm_flow import ensure_zombie_automation

    point = _state_only_flow()

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}), prefect_server.client() as client:
        name = ensure_zombie_automation(10)  # Prefect's minimum for a proactive trigger
        try:
            silent = client.create_flow_run(point, name="silent-n2-s0", state=Pending())
            ended = client.create_flow_run(point, name="ended-n2-s0", state=Pending())
            for fr in (silent, ended):
                client.set_flow_run_state(fr.id, Running(), force=True)  # its process dies: no heartbeat ever
            client.set_flow_run_state(ended.id, Completed(), force=True)
            deadline = time.monotonic() + 90
            while not (state := client.read_flow_run(silent.id).state).is_crashed():
                assert time.monotonic() < deadline, f"still {state.name} after 90 s"
                time.sleep(2)
            assert "no heartbeat" in state.message
            assert client.read_flow_run(ended.id).state.is_completed()
        finally:  # the cluster's sweeps use their own, longer threshold
            for automation in client.read_automations_by_name(name):
                client.delete_automation(automation.id)

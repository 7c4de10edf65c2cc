"""Prefect flows over the DVC pipeline, three of them, each with its deployment in prefect.yaml:

- `pipeline` (deployment `lsdm/full`): the whole DVC pipeline once, in the worker's workspace;
- `sweep` (deployment `lsdm/sweep`): a sweep fanned out, one `lsdm/point` flow run per grid point;
- `sweep_point` (deployment `lsdm/point`): one point of such a sweep, in a clone of its own.

All three are registered under the one flow name `lsdm`, which Prefect puts before every deployment's
name (`lsdm/full`, `lsdm/sweep`, `lsdm/point`); the function names above say which flow is which.

DVC decides what reruns and holds every artifact; Prefect schedules, retries, shows each stage's
state and publishes the report. There is no Prefect cache (tasks use `NO_CACHE`), only DVC's.

A run of `pipeline`, in the workspace given by `repo`, $LSDM_REPO or the working directory:

1. checks the overrides (`{"split.n_paired_per_class": 3}`) with the typed config of `lsdm check`
   before anything runs: a bad key or value fails the run with no task started;
2. waits for the workspace's concurrency slot (a Prefect global concurrency limit named after the
   host and path, limit 1, created on first use, plus the workspace lock of `lsdm.lock` that every
   `lsdm <stage>` and `lsdm sweep` takes too): runs on one workspace are serialised, because two DVC
   runs in one workspace corrupt each other;
3. writes the overrides into params.yaml (comments kept), then runs one task per DVC stage in
   graph order (as DVC reads dvc.yaml: `foreach` stages expanded, `fit_baseline@pixel_wgan`),
   each `dvc repro --single-item <stage>`; the task's result and log say whether DVC
   ran the stage, skipped it (unchanged) or restored it from its run cache. A failing stage is
   retried (twice) unless lsdm rejected its params or data; its stderr tail is in the error;
4. records the workspace as a DVC experiment (`dvc exp save -n <flow run name>`, committing the
   same files as `dvc exp run`): it appears in `dvc exp show` next to experiments made by hand;
5. leaves the workspace as `dvc exp run -S` leaves it: the run's outputs and dvc.lock beside
   params.yaml with its overrides, so `dvc status` is clean and `dvc exp show`'s workspace row is
   this run (a failed run puts the user's params.yaml back: `dvc status` then names what changed);
   publishes the Markdown report, a metrics table and a stage table as artifacts, and returns the
   metrics dict (`eval.*`).

See lsdm/orchestration/dvc.py for why this is not `dvc exp run` (no per-stage tasks there).

The `sweep` flow is `lsdm sweep --fanout`, not the local `make sweep` (which runs the points through
this machine's `dvc queue`): in the workspace slot it plans the grid of params.yaml's `sweep:` section (or
`sweeps.<name>`; lsdm.orchestration.sweep), runs the stages every point shares and publishes them to the git and DVC
remotes (`publish_shared`); then it submits one `lsdm/point` run per paired count x split seed to the
work pool, resubmits a point whose run crashed, pulls the points' experiments back and writes
reports/comparison.md (also an artifact). Each `sweep_point` clones the git remote at the sweep's
commit, pulls the shared stages, runs its point as `dvc exp run` and pushes the experiment to both
remotes (lsdm.orchestration.fanout).

Run `pipeline` locally without a server: `python -m flows.lsdm_flow '{"split.n_paired_per_class": 3}'`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from lsdm import paths
from lsdm.lock import workspace_lock
from lsdm.orchestration.dvc import StageFailed, check_repo, repro_stage, workspace_key
from lsdm.orchestration.experiments import (
    check_exp_name,
    exp_names,
    metrics_table,
    read_metrics,
    read_pipeline,
    read_report,
    save_experiment,
)
from lsdm.orchestration.params_file import applied_params, recover_params, validate

STAGE_RETRIES = 2
STAGE_RETRY_DELAYS = [10, 30]  # seconds


def _is_transient(task, task_run, state) -> bool:
    """Retry a failed stage unless lsdm rejected its parameters or data (exit status 2)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        with contextlib.suppress(Exception):
            exc = state.result(raise_on_failure=False)
    return not (isinstance(exc, StageFailed) and not exc.transient)


@task(
    retries=STAGE_RETRIES,
    retry_delay_seconds=STAGE_RETRY_DELAYS,
    retry_condition_fn=_is_transient,
    cache_policy=NO_CACHE,  # DVC is the cache: every call asks DVC
    persist_result=False,
    tags=["dvc"],
)
def dvc_stage(repo: str, stage: str) -> dict[str, Any]:
    """One DVC stage through `dvc repro --single-item`; returns {stage, status, seconds}."""
    result = repro_stage(Path(repo), stage)
    verb = {"ran": "DVC ran", "skipped": "DVC skipped (unchanged)", "cached": "DVC restored from its run cache"}
    get_run_logger().info("stage %s: %s (%.1f s)", stage, verb[result.status], result.seconds)
    return result.as_dict()


@task(cache_policy=NO_CACHE, persist_result=False, retries=1, retry_delay_seconds=5, tags=["dvc"])
def record_experiment(repo: str, name: str, message: str) -> str:
    """`dvc exp save` the workspace as DVC experiment `name` (shown by `dvc exp show`)."""
    save_experiment(Path(repo), name, message, read_pipeline(Path(repo)))
    get_run_logger().info("recorded DVC experiment %r (see `dvc exp show`)", name)
    return name


def _ensure_limit(name: str) -> None:
    """Create the workspace's global concurrency limit (1 slot) unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


@contextlib.contextmanager
def workspace_slot(repo: Path) -> Iterator[None]:
    """Hold the workspace: Prefect's concurrency limit (visible in the UI, across workers and
    deployments), then the workspace lock every `lsdm` command takes (lsdm.lock: on this machine,
    even if the server drops the lease; the run's own `dvc repro` children pass through it)."""
    from prefect.concurrency.sync import concurrency

    name = workspace_key(repo)
    _ensure_limit(name)
    logger = get_run_logger()
    logger.info("waiting for workspace %s (concurrency limit %r)", repo, name)
    with concurrency(name, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
        with workspace_lock(repo, f"Prefect flow run {flow_run.get_name()} ({flow_run.get_id()})", say=logger.info):
            logger.info("workspace %s acquired", repo)
            yield


def _exp_name(root: Path, exp_name: str | None) -> str:
    if exp_name:
        name = check_exp_name(root, exp_name)
        if name in exp_names(root):
            raise ValueError(f"a DVC experiment named {name!r} exists already; pick another exp_name")
        return name
    name = check_exp_name(root, flow_run.get_name() or "lsdm")
    if name in exp_names(root):
        name = f"{name}-{str(flow_run.get_id() or '')[:8]}"
    return name


def _publish(root: Path, name: str, overrides: dict[str, Any], stages: list[dict], metrics: dict, report: str) -> None:
    where = f"DVC experiment `{name}` in `{root}`; overrides: `{json.dumps(overrides)}`"
    create_markdown_artifact(
        markdown=f"> {where}. Figures: `reports/figures/` there.\n\n{report}",
        key="lsdm-report",
        description=f"reports/report.md of {where}",
    )
    create_table_artifact(table=metrics_table(metrics), key="lsdm-metrics", description=f"eval.* metrics of {where}")
    create_table_artifact(table=stages, key="lsdm-stages", description=f"what DVC did per stage ({where})")


@flow(name="lsdm", description="The LSDM pipeline: one task per DVC stage, recorded as a DVC experiment.")
def pipeline(
    overrides: dict[str, Any] | None = None, exp_name: str | None = None, repo: str | None = None
) -> dict[str, Any]:
    """Run the DVC pipeline with `overrides` (dotted params.yaml keys); return `eval.*` metrics.

    Args:
        overrides: e.g. {"split.n_paired_per_class": 3}; checked like `lsdm check` before anything runs.
        exp_name: name of the DVC experiment to record (default: this flow run's name).
        repo: the workspace (default: $LSDM_REPO, else the working directory: the worker's pull
            step sets it to the checkout).
    """
    overrides = dict(overrides or {})
    logger = get_run_logger()
    root = check_repo(repo)
    params = validate(root, overrides)  # ParamsError: the run fails here, before any task
    name = _exp_name(root, exp_name)
    logger.info("workspace %s, overrides %s -> DVC experiment %r", root, overrides or "{}", name)

    with workspace_slot(root):
        recovered = recover_params(root)  # then the params validated above were read from the wrong file
        if recovered:
            logger.warning("params.yaml was left overridden by a killed run; restored it first")
        with applied_params(root, overrides, None if recovered else params, keep=True):
            graph = read_pipeline(root)  # after the overrides: `foreach: ${...}` stages expand from params
            stages = [dvc_stage.with_options(name=s, task_run_name=s)(str(root), s) for s in graph.stages]
            message = f"prefect flow run {flow_run.get_name()} ({flow_run.get_id()}): overrides {json.dumps(overrides)}"
            record_experiment(str(root), name, message)
        metrics, report = read_metrics(root), read_report(root)

    summary = ", ".join(f"{r['stage']}={r['status']}" for r in stages)
    logger.info("DVC: %s", summary)
    _publish(root, name, overrides, stages, metrics, report)
    return metrics


@task(cache_policy=NO_CACHE, persist_result=False, tags=["dvc"])
def publish_shared(repo: str, overrides: dict[str, Any], tag: str, git_remote: str) -> str:
    """The shared stages with the sweep's common overrides, committed and pushed to both remotes."""
    from lsdm.orchestration.fanout import publish_shared as publish

    commit, status = publish(Path(repo), overrides, tag, git_remote)
    get_run_logger().info("shared stages %s; baseline %s pushed as %s%s", status, commit[:10], "lsdm-sweeps/", tag)
    return commit


def ensure_zombie_automation(after_seconds: int) -> str:
    """A run whose process died with its worker (SIGKILL, a lost machine) sends no final state: it
    would stay RUNNING. This automation (Prefect's documented one) marks a flow run CRASHED once it
    has been silent for `after_seconds` since it started RUNNING or sent its last heartbeat
    ($PREFECT_FLOWS_HEARTBEAT_FREQUENCY, default 180 s); the sweep then submits the point again.

    The documented trigger arms only on a heartbeat, so a run killed in its first seconds, before its
    first heartbeat left the process, stayed RUNNING forever: the server's own RUNNING event arms it
    too. Created once per server, named after the threshold; returns its name."""
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    name = f"lsdm: crash running flow runs silent for {after_seconds}s"
    with get_client(sync_client=True) as client:
        if client.read_automations_by_name(name):
            return name
    Automation(
        name=name,
        trigger=EventTrigger(
            after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },  # fmt: skip
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED, message=f"no heartbeat for {after_seconds}s: its worker is gone"
            )
        ],
    ).create()
    return name


def publish_json(key: str, data: dict[str, Any], description: str) -> None:
    """`data` as a Markdown artifact holding one JSON block: readable in the UI, and by another flow
    run anywhere (a flow's return value lives in its worker's result storage, not on the server)."""
    create_markdown_artifact(markdown=f"```json\n{json.dumps(data, indent=2, default=str)}\n```", key=key,
                             description=description)  # fmt: skip


def read_json_artifact(client, flow_run_id, key: str) -> dict[str, Any] | None:
    """What `publish_json` stored under `key` for that flow run (None if it published none)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    found = client.read_artifacts(artifact_filter=ArtifactFilter(
        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])))  # fmt: skip
    if not found:
        return None
    return json.loads(found[-1].data.strip().removeprefix("```json").removesuffix("```"))


def _submit(deployment: str, git_url: str, commit: str, name: str, overrides: dict[str, Any]):
    from prefect.deployments import run_deployment

    params = {"git_url": git_url, "commit": commit, "name": name, "overrides": overrides}
    return run_deployment(deployment, parameters=params, timeout=0, flow_run_name=name, as_subflow=True)


def wait_for_points(runs: dict[str, Any], resubmit, retries: int, timeout: float | None, poll: float = 5.0,
                    stuck_after: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Poll the points' flow runs to the end; a run that CRASHED (its worker died, or stopped sending
    heartbeats) is submitted again, up to `retries` times; FAILED is final (the point's own error).

    A run a worker took (PENDING) but never started sends no heartbeat, so no automation marks it
    crashed when that worker dies: one PENDING for longer than `stuck_after` seconds is cancelled and
    submitted again, the same way."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    logger, t0, attempts = get_run_logger(), time.monotonic(), {n: 1 for n in runs}
    final: dict[str, Any] = {}
    pending_since: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        while len(final) < len(runs):
            for name, fr in list(runs.items()):
                if name in final:
                    continue
                state = client.read_flow_run(fr.id).state
                if state is not None and state.is_pending() and stuck_after is not None:
                    waited = time.monotonic() - pending_since.setdefault(name, time.monotonic())
                    if waited > stuck_after and attempts[name] <= retries:
                        logger.warning("point %s pending for %.0fs after a worker took it (its worker is gone?); "
                                       "submitting it again", name, waited)  # fmt: skip
                        client.set_flow_run_state(
                            fr.id, Cancelled(message="pending too long: submitted again"), force=True
                        )
                        runs[name], attempts[name] = resubmit(name), attempts[name] + 1
                        pending_since.pop(name, None)
                    continue
                pending_since.pop(name, None)
                if state is None or not state.is_final():
                    continue
                if state.is_crashed() and attempts[name] <= retries:
                    logger.warning("point %s crashed (%s); submitting it again", name, state.message)
                    runs[name], attempts[name] = resubmit(name), attempts[name] + 1
                    continue
                final[name] = {"state": state.type.value, "message": state.message, "attempts": attempts[name],
                               "flow_run_id": str(fr.id), "result": read_json_artifact(client, fr.id, "lsdm-point")}  # fmt: skip
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"sweep points still running after {timeout:.0f}s: {sorted(set(runs) - set(final))}")
            if len(final) < len(runs):
                time.sleep(poll)
    return final


@flow(
    name="lsdm", description="A sweep fanned out over the work pool: one flow run per grid point, then the comparison."
)
def sweep(
    counts: list[int] | None = None,
    seeds: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    timeout: float | None = None,
    repo: str | None = None,
    git_remote: str = "origin",
    point_deployment: str = "lsdm/point",
    point_retries: int = 2,
    crashed_after: int = 600,
    name: str | None = None,
) -> dict[str, Any]:
    """The sweep of params.yaml's `sweep:` section (or `sweeps.<name>`) over every worker of the pool (lsdm.orchestration.fanout).

    Args:
        counts, seeds: paired counts and split seeds (default: `sweep.counts`, `sweep.seeds` of params.yaml).
        overrides: dotted params for every run, after `sweep.set` (e.g. {"matcher.steps": 500});
            checked, with the counts, before anything runs.
        tag: experiment name prefix (default: sweep-<UTC time>); timeout: give up waiting (s).
        git_remote: the remote of this workspace the workers clone and push experiments to; its
            default DVC remote (.dvc/config) carries the outputs.
        point_deployment: the deployment that runs one point; point_retries: resubmissions of a
            point whose run crashed; crashed_after: seconds without a heartbeat after which a
            point's run counts as crashed (keep it above the workers' heartbeat frequency).
    """
    from lsdm.orchestration import fanout
    from lsdm.orchestration.sweep import check, collect_and_report, plan_sweep

    root, t0 = check_repo(repo), time.perf_counter()
    check(root, counts, seeds, overrides, name)  # ParamsError: nothing has run
    git_url = fanout.remote_url(root, git_remote)
    fanout.check_dvc_remote(root)
    ensure_zombie_automation(crashed_after)
    with workspace_slot(root):  # planning may `dvc repro prepare` (class sizes): one DVC run at a time here
        points, meta = plan_sweep(root, counts, seeds, overrides, tag, name)
        if not points:
            raise ValueError(f"sweep: nothing to run ({'; '.join(s['reason'] for s in meta['skipped'])})")
        commit = publish_shared(str(root), meta["overrides"], meta["tag"], git_remote)
    t_points = time.perf_counter()
    by_name = dict(points)
    runs = {name: _submit(point_deployment, git_url, commit, name, ov) for name, ov in points}
    get_run_logger().info("submitted %d points to %s: %s", len(runs), point_deployment, ", ".join(runs))
    final = wait_for_points(runs, lambda n: _submit(point_deployment, git_url, commit, n, by_name[n]), point_retries, timeout,
                            stuck_after=crashed_after)  # fmt: skip
    done = [n for n, f in final.items() if f["state"] == "COMPLETED"]
    meta = {**meta, "baseline": commit, "status": {n: f["state"] for n, f in final.items()}, "points": final,
            "shared_seconds": t_points - t0, "points_seconds": time.perf_counter() - t_points,
            "wall_seconds": time.perf_counter() - t0, "fanout": point_deployment}  # fmt: skip
    with workspace_slot(root):
        if done:
            fanout.pull_experiments(root, done, git_remote)
        df = collect_and_report(root, meta["tag"], meta)
    report = root / paths.comparison(name)[0]
    create_markdown_artifact(markdown=report.read_text(), key="lsdm-comparison",
                             description=f"{paths.comparison(name)[0]} of sweep {meta['tag']} in {root}")  # fmt: skip
    summary = {"tag": meta["tag"], "baseline": commit, "points": final, "rows": len(df),
               "table": str(paths.sweep_dir(name) / "sweep.parquet"),
               **{k: meta[k] for k in ("shared_seconds", "points_seconds", "wall_seconds")}}  # fmt: skip
    publish_json("lsdm-sweep", summary, f"sweep {meta['tag']}: every point's state, host and what DVC did")
    failed = {n: f["message"] for n, f in final.items() if f["state"] != "COMPLETED"}
    if failed:
        raise RuntimeError(f"sweep {meta['tag']}: {len(failed)} points did not complete: {failed}")
    return summary


@flow(name="lsdm", description="One point of a fanned-out sweep: clone, pull the shared stages, run, push.")
def sweep_point(git_url: str, commit: str, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Run one grid point as the DVC experiment `name` in a workspace of this worker's own.

    Args:
        git_url: the project's git remote (the sweep's baseline commit and branch are there).
        commit: the baseline: params with the sweep's common overrides, the shared stages in dvc.lock.
        name: the experiment's name; overrides: its dotted params (paired count, split seed, ...).
    """
    from lsdm.orchestration.fanout import Point, run_point

    result = run_point(git_url, commit, Point(name, overrides))
    publish_json("lsdm-point", result, f"point {name}: where it ran and what DVC did per stage")
    get_run_logger().info("point %s on %s:%s: DVC %s (%.0f s)", name, result["host"], result["pid"], result["stages"],
                          result["seconds"])  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.lsdm_flow ['{"split.n_paired_per_class": 3}']`: one run, here, now."""
    argv = sys.argv[1:] if argv is None else argv
    overrides = json.loads(argv[0]) if argv else {}
    print(json.dumps(pipeline(overrides=overrides), indent=2))
    return 0


__all__ = ["dvc_stage", "pipeline", "publish_shared", "record_experiment", "sweep", "sweep_point", "wait_for_points"]

if __name__ == "__main__":
    sys.exit(main())

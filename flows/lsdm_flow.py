"""Prefect flows over the DVC pipeline: `lsdm` (deployments `lsdm/full` and `lsdm/sweep`).

DVC decides what reruns and holds every artifact; Prefect schedules, retries, shows each stage's
state and publishes the report. There is no Prefect cache (tasks use `NO_CACHE`), only DVC's.

A run of the flow, in the workspace given by `repo`, $LSDM_REPO or the working directory:

1. checks the overrides (`{"split.n_paired_per_class": 3}`) with the typed config of `lsdm check`
   before anything runs: a bad key or value fails the run with no task started;
2. waits for the workspace's concurrency slot (a Prefect global concurrency limit named after the
   host and path, limit 1, created on first use, plus a file lock): runs on one workspace are
   serialised, because two DVC runs in one workspace corrupt each other;
3. writes the overrides into params.yaml (comments kept), then runs one task per DVC stage in
   graph order (as DVC reads dvc.yaml: `foreach` stages expanded, `fit_baseline@pixel_wgan`),
   each `dvc repro --single-item <stage>`; the task's result and log say whether DVC
   ran the stage, skipped it (unchanged) or restored it from its run cache. A failing stage is
   retried (twice) unless lsdm rejected its params or data; its stderr tail is in the error;
4. records the workspace as a DVC experiment (`dvc exp save -n <flow run name>`, committing the
   same files as `dvc exp run`): it appears in `dvc exp show` next to experiments made by hand;
5. puts params.yaml back (also on failure), publishes the Markdown report, a metrics table and a
   stage table as artifacts, and returns the metrics dict (`eval.*`).

See lsdm/orchestrate.py for why this is not `dvc exp run` (no per-stage tasks there).

Run it locally without a server: `python -m flows.lsdm_flow '{"split.n_paired_per_class": 3}'`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from lsdm.orchestrate import (
    StageFailed,
    applied_params,
    check_exp_name,
    check_repo,
    exp_names,
    metrics_table,
    read_metrics,
    read_pipeline,
    read_report,
    recover_params,
    repro_stage,
    save_experiment,
    validate,
    workspace_file_lock,
    workspace_key,
)

#: The `sweep` deployment's default: several paired-subset sizes, one after another.
DEFAULT_SWEEP: list[dict[str, Any]] = [{"split.n_paired_per_class": n} for n in (1, 3, 10, 30)]

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
    deployments), then a file lock (on this machine, even if the server drops the lease)."""
    from prefect.concurrency.sync import concurrency

    name = workspace_key(repo)
    _ensure_limit(name)
    logger = get_run_logger()
    logger.info("waiting for workspace %s (concurrency limit %r)", repo, name)
    with concurrency(name, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
        with workspace_file_lock(repo):
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
def pipeline(overrides: dict[str, Any] | None = None, exp_name: str | None = None, repo: str | None = None) -> dict[str, Any]:
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
    validate(root, overrides)  # ParamsError: the run fails here, before any task
    name = _exp_name(root, exp_name)
    logger.info("workspace %s, overrides %s -> DVC experiment %r", root, overrides or "{}", name)

    with workspace_slot(root):
        if recover_params(root):
            logger.warning("params.yaml was left overridden by a killed run; restored it first")
        with applied_params(root, overrides):
            graph = read_pipeline(root)  # after the overrides: `foreach: ${...}` stages expand from params
            stages = [dvc_stage.with_options(name=s, task_run_name=s)(str(root), s) for s in graph.stages]
            message = f"prefect flow run {flow_run.get_name()} ({flow_run.get_id()}): overrides {json.dumps(overrides)}"
            record_experiment(str(root), name, message)
        metrics, report = read_metrics(root), read_report(root)

    summary = ", ".join(f"{r['stage']}={r['status']}" for r in stages)
    logger.info("DVC: %s", summary)
    _publish(root, name, overrides, stages, metrics, report)
    return metrics


@flow(name="lsdm", description="Several runs of the LSDM pipeline, one after another (a sweep over overrides).")
def sweep(runs: list[dict[str, Any]] = DEFAULT_SWEEP, repo: str | None = None) -> list[dict[str, Any]]:
    """Run `pipeline` once per overrides dict in `runs`, in order; every run is its own DVC experiment.

    All overrides are checked before the first run starts. Stops at the first failing run.
    """
    root = check_repo(repo)
    for i, overrides in enumerate(runs):
        try:
            validate(root, overrides)
        except Exception as e:
            raise type(e)(f"sweep run {i} ({overrides}): {e}") from None
    results = [pipeline(overrides=o, repo=str(root)) for o in runs]
    numbers = lambda m: {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}  # noqa: E731
    rows = [{"overrides": json.dumps(o), **numbers(m)} for o, m in zip(runs, results)]
    create_table_artifact(table=rows, key="lsdm-sweep", description="eval.* metrics per sweep run")
    return results


lsdm = pipeline  # the flow named `lsdm`


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.lsdm_flow ['{"split.n_paired_per_class": 3}']`: one run, here, now."""
    argv = sys.argv[1:] if argv is None else argv
    overrides = json.loads(argv[0]) if argv else {}
    print(json.dumps(pipeline(overrides=overrides), indent=2))
    return 0


__all__ = ["DEFAULT_SWEEP", "dvc_stage", "lsdm", "pipeline", "record_experiment", "sweep"]

if __name__ == "__main__":
    sys.exit(main())

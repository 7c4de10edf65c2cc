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

See lsdm/orchestration/dvc.py for why this is not `dvc exp run` (no per-stage tasks there).

The `sweep` flow (deployment `lsdm/sweep`) is `make sweep`: it holds the same workspace slot while
lsdm.orchestration.sweep queues one DVC experiment per paired count x split seed, runs them with
`dvc queue start -j 1`, collects the table and writes reports/comparison.md (also an artifact).

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

from lsdm.orchestration.dvc import (
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
    params = validate(root, overrides)  # ParamsError: the run fails here, before any task
    name = _exp_name(root, exp_name)
    logger.info("workspace %s, overrides %s -> DVC experiment %r", root, overrides or "{}", name)

    with workspace_slot(root):
        recovered = recover_params(root)  # then the params validated above were read from the wrong file
        if recovered:
            logger.warning("params.yaml was left overridden by a killed run; restored it first")
        with applied_params(root, overrides, None if recovered else params):
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
def queue_sweep(repo: str, counts, seeds, overrides, tag) -> tuple[list[str], dict[str, Any]]:
    """`dvc exp run --queue` once per paired count x split seed (lsdm.orchestration.sweep.start)."""
    from lsdm.orchestration.sweep import start

    names, meta = start(Path(repo), counts, seeds, overrides, tag)
    get_run_logger().info("queued %d DVC experiments: %s", len(names), ", ".join(names))
    for s in meta["skipped"]:
        get_run_logger().warning("%s", s["reason"])
    return names, meta


@task(cache_policy=NO_CACHE, persist_result=False, tags=["dvc"])
def run_sweep_queue(repo: str, names: list[str], timeout: float | None) -> dict[str, str]:
    """`dvc queue start -j 1`: the queued experiments one at a time; name -> DVC's final status."""
    from lsdm.orchestration.sweep import run_queue

    return run_queue(names, Path(repo), jobs=1, timeout=timeout)


@task(cache_policy=NO_CACHE, persist_result=False, tags=["dvc"])
def collect_sweep(repo: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """`dvc exp show --json` -> results/sweep/sweep.parquet and reports/comparison.md; the table's rows."""
    from lsdm.orchestration.sweep import collect_and_report

    df = collect_and_report(Path(repo), meta["tag"], meta)
    return json.loads(df.to_json(orient="records"))


@flow(name="lsdm", description="A sweep over the paired count x split seed: DVC experiments, one at a time, then the comparison.")
def sweep(
    counts: list[int] | None = None,
    seeds: list[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    timeout: float | None = None,
    repo: str | None = None,
) -> dict[str, Any]:
    """`make sweep` as a flow: the same `lsdm.orchestration.sweep` code, holding the workspace while it runs.

    Args:
        counts, seeds: paired counts and split seeds (default: `sweep.counts`, `sweep.seeds` of params.yaml).
        overrides: dotted params for every run, after `sweep.set` (e.g. {"matcher.steps": 500});
            checked, with the counts, before anything is queued.
        tag: experiment name prefix (default: sweep-<UTC time>); timeout: give up waiting (s).
    """
    import time

    from lsdm.orchestration.sweep import check

    root = check_repo(repo)
    check(root, counts, seeds, overrides)  # ParamsError: the run fails here, before any task
    t0 = time.perf_counter()
    with workspace_slot(root):
        names, meta = queue_sweep(str(root), counts, seeds, overrides, tag)
        if not names:
            raise ValueError(f"sweep: nothing to run ({'; '.join(s['reason'] for s in meta['skipped'])})")
        status = run_sweep_queue(str(root), names, timeout)
        meta = {**meta, "status": status, "wall_seconds": time.perf_counter() - t0}
        rows = collect_sweep(str(root), meta)
    report = root / "reports/comparison.md"
    create_markdown_artifact(markdown=report.read_text(), key="lsdm-comparison",
                             description=f"reports/comparison.md of sweep {meta['tag']} in {root}")  # fmt: skip
    failed = [n for n, s in status.items() if s != "Success"]
    if failed:
        raise RuntimeError(f"sweep {meta['tag']}: {len(failed)} experiments failed: {failed} (`dvc queue logs NAME`)")
    return {"tag": meta["tag"], "status": status, "rows": rows}



def main(argv: list[str] | None = None) -> int:
    """`python -m flows.lsdm_flow ['{"split.n_paired_per_class": 3}']`: one run, here, now."""
    argv = sys.argv[1:] if argv is None else argv
    overrides = json.loads(argv[0]) if argv else {}
    print(json.dumps(pipeline(overrides=overrides), indent=2))
    return 0


__all__ = ["collect_sweep", "dvc_stage", "queue_sweep", "run_sweep_queue", "pipeline", "record_experiment", "sweep"]

if __name__ == "__main__":
    sys.exit(main())

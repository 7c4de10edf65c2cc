"""A sweep run here: its points queued in this workspace's DVC queue (`dvc exp run --queue`), the queue
started until every point is done, then the table and the report (`run_sweep`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm.errors import ParamsError
from lsdm.lock import cli_timeout, workspace_lock
from lsdm.orchestration.dvc import dvc
from lsdm.orchestration.experiments import set_args, start_queue
from lsdm.orchestration.sweep.collecting import collect_and_report
from lsdm.orchestration.sweep.planning import plan_sweep


def queue(points: list[tuple[str, dict]], root: Path) -> list[str]:
    """One `dvc exp run --queue --name NAME -S ...` per point."""
    for name, overrides in points:
        dvc(["exp", "run", "--queue", "--name", name, *set_args(overrides)], root)
        print(f"queued {name}", flush=True)
    return [name for name, _ in points]


def queue_status(root: Path) -> list[dict]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(repo.experiments.celery_queue.status())


def run_queue(
    names: list[str], root: Path, jobs: int = 1, poll: float = 5.0, timeout: float | None = None
) -> dict[str, str]:
    """JOBS queue workers (`start_queue`, again while tasks wait: workers may leave early), until every
    named task is done; return name -> status."""
    t0, last = time.monotonic(), None
    while True:
        status = {t["name"]: t["status"] for t in queue_status(root) if t.get("name") in names}
        pending = [n for n in names if status.get(n) in ("Queued", "Running", None)]
        if any(status.get(n) in ("Queued", None) for n in pending):
            for n in start_queue(root, jobs):
                print(f"[{time.monotonic() - t0:6.0f}s] started queue worker {n}", flush=True)
        line = ", ".join(f"{s}: {sum(v == s for v in status.values())}" for s in sorted(set(status.values())))
        if line != last:
            print(f"[{time.monotonic() - t0:6.0f}s] {line}", flush=True)
            last = line
        if not pending:
            break
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise TimeoutError(f"sweep still running after {timeout:.0f}s: {pending}")
        time.sleep(poll)
    failed = [n for n, s in status.items() if s != "Success"]
    for n in failed:
        log = dvc(["queue", "logs", n], root, check=False)
        print(f"--- {n}: {status[n]} ---\n{log.stdout[-2000:]}", file=sys.stderr)
    return status


def start(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    name: str | None = None,
) -> tuple[list[str], dict]:
    """Plan and queue a sweep in this workspace's DVC queue (see `plan_sweep`)."""
    points, meta = plan_sweep(root, counts, seeds, overrides, tag, name)
    return queue(points, root), meta


def run_sweep(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    jobs: int = 1,
    timeout: float | None = None,
    name: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The whole sweep: queue, run one at a time (`jobs` = 1), collect the table, write the report.

    It holds the workspace lock throughout (queueing edits params.yaml, the end writes the table and
    the report); the queued experiments run in DVC's temporary workspaces, each with its own lock."""
    t0 = time.perf_counter()
    with workspace_lock(root, "lsdm sweep" + (f" --tag {tag}" if tag else ""), timeout=cli_timeout()):
        names, meta = start(root, counts, seeds, overrides, tag, name)
        if not names:
            raise ParamsError(f"sweep: nothing to run ({'; '.join(s['reason'] for s in meta['skipped'])})")
        status = run_queue(names, root, jobs=jobs, timeout=timeout)
        meta = {**meta, "status": status, "wall_seconds": time.perf_counter() - t0, "jobs": jobs}
        return collect_and_report(root, meta["tag"], meta), meta

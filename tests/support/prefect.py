"""A Prefect server the tests started (conftest's `prefect_server` fixture): its CLI and client, and
what a flow run recorded there."""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    url: str
    env: dict
    home: Path
    log: Path

    def prefect(self, *args: str, cwd: Path, **extra) -> subprocess.CompletedProcess:
        p = subprocess.run(
            ["prefect", "--no-prompt", *args],
            cwd=cwd,
            env=dict(self.env, **extra),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if p.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
            )
        return p

    @contextlib.contextmanager
    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            with get_client(sync_client=True) as client:
                yield client


def by_flow_run(client, flow_run_id):
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    arts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a for a in arts}, tasks


def stage_statuses(artifacts) -> dict[str, str]:
    """{stage: ran/skipped/cached} from the run's `lsdm-stages` table artifact."""
    table = artifacts["lsdm-stages"].data
    rows = json.loads(table) if isinstance(table, str) else table
    return {r["stage"]: r["status"] for r in rows}

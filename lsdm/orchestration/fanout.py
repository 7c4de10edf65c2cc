"""Sweeps fanned out over workers that share nothing but a git remote and a DVC remote.

The parent (the Prefect flow behind `lsdm/sweep`) and each grid point (`lsdm/point`) meet only
through the two remotes:

1. `publish_shared` (parent, in its workspace): with the sweep's common overrides in params.yaml,
   `dvc repro` the stages every point shares (`lsdm.pipeline.SHARED_STAGES` and what they read),
   commit params.yaml, dvc.lock and their small outputs as one commit on a branch of its own
   (`lsdm-sweeps/<tag>`, made without touching the workspace's HEAD or index), `git push` it and
   `dvc push` their outputs. That commit is the sweep's baseline.
2. `run_point` (a worker, anywhere): clone the git remote into a workspace of its own (or fetch,
   when one from an earlier point is free), check out the baseline, `dvc pull` the shared outputs
   (DVC then skips those stages: the point says which stages ran), `dvc exp run` the point's
   overrides as an experiment named after it, and `dvc exp push` it (git refs and DVC outputs).
3. `pull_experiments` (parent): `dvc exp pull` the points' experiments; `lsdm.orchestration.sweep`
   then builds the tidy table and the comparison report exactly as for a local sweep.

A point's stages run with the baseline commit's code (PYTHONPATH is the point's workspace), so a
worker installed from an older checkout still runs what the sweep committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsdm.config import PARAMS_FILE
from lsdm.errors import ParamsError
from lsdm.orchestration.dvc import RAN, parse_repro
from lsdm.orchestration.experiments import exp_names, read_pipeline, set_args
from lsdm.orchestration.git import git
from lsdm.orchestration.params_file import applied_params
from lsdm.orchestration.tools import tool
from lsdm.pipeline import SHARED_STAGES, STAGES

BRANCH_PREFIX = "lsdm-sweeps/"
WORKDIR_ENV = "LSDM_WORKDIR"


@dataclass(frozen=True)
class Point:
    """One grid point: the DVC experiment's name and its overrides of the baseline's params."""

    name: str
    overrides: dict[str, Any]


# --- parent --------------------------------------------------------------------------------------


def publish_shared(root: Path, overrides: dict[str, Any], tag: str, git_remote: str = "origin") -> tuple[str, dict]:
    """Run the shared stages with `overrides`, commit and push them; return (baseline commit, what DVC did)."""
    targets = [s for s in SHARED_STAGES if s != "prepare"]  # prepare and split come as their deps
    with applied_params(root, overrides):
        out = tool(["dvc", "repro", *targets], root).stdout
        status = {s: parse_repro(s, out) for s in STAGES if parse_repro(s, out)}
        uncached = [p for p in read_pipeline(root).uncached if (root / p).exists() and _of_shared(p)]
        commit = snapshot_commit(root, [PARAMS_FILE, "dvc.lock", *uncached], f"lsdm sweep {tag}: shared stages")
        git(["push", "-q", "--force", git_remote, f"{commit}:refs/heads/{BRANCH_PREFIX}{tag}"], root)
        tool(["dvc", "push", "--with-deps", *targets], root)
    return commit, status


def _of_shared(path: str) -> bool:
    return any(path.startswith(f"results/{s}/") for s in SHARED_STAGES)


def snapshot_commit(root: Path, paths: list[str], message: str) -> str:
    """A commit of HEAD plus the working-tree `paths`, made with a private index: the workspace's
    HEAD, branch and staged changes stay as they were."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(["read-tree", "HEAD"], root, env=env)
        git(["add", "-f", "--", *paths], root, env=env)
        tree = git(["write-tree"], root, env=env).stdout.strip()
    return git(["commit-tree", tree, "-p", "HEAD", "-m", message], root).stdout.strip()


def remote_url(root: Path, git_remote: str) -> str:
    p = git(["remote", "get-url", git_remote], root, check=False)
    if p.returncode != 0:
        raise ParamsError(
            f"{root}: no git remote {git_remote!r} (`git remote add {git_remote} URL`): the workers clone it"
        )
    return p.stdout.strip()


def check_dvc_remote(root: Path) -> None:
    """The workers need a default DVC remote in the committed .dvc/config (a local one is theirs only)."""
    p = tool(["dvc", "remote", "default", "--project"], root, check=False)
    if p.returncode != 0 or not p.stdout.strip():
        raise ParamsError(
            f"{root}: no default DVC remote in .dvc/config (`dvc remote add -d NAME URL`, then commit it): "
            "the workers pull the shared stages from it and push their outputs to it"
        )


def pull_experiments(root: Path, names: list[str], git_remote: str = "origin") -> None:
    """The points' experiments (git refs and their committed results) into the parent's repository."""
    tool(["dvc", "exp", "pull", "--no-cache", "--force", git_remote, *names], root)


# --- a point, on a worker -----------------------------------------------------------------------


def workdir() -> Path:
    """Where a worker keeps its workspaces: $LSDM_WORKDIR, else ~/.cache/lsdm/workspaces."""
    return Path(os.environ.get(WORKDIR_ENV) or Path.home() / ".cache" / "lsdm" / "workspaces").expanduser()


@contextlib.contextmanager
def free_workspace(git_url: str, base: Path | None = None) -> Iterator[Path]:
    """The first workspace of this remote under `base` that no point is using (an exclusive flock),
    a new one when all are busy: points on one machine run side by side, each in its own clone."""
    base = (base or workdir()) / hashlib.sha1(git_url.encode()).hexdigest()[:12]
    base.mkdir(parents=True, exist_ok=True)
    i = 0
    while True:
        lock = open(base / f"ws-{i}.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            i += 1
            continue
        try:
            yield base / f"ws-{i}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        return


def checkout(git_url: str, commit: str, ws: Path) -> None:
    """`ws` at `commit` of `git_url`: cloned the first time, fetched after; local changes dropped."""
    if not (ws / ".git").exists():
        git(["clone", "-q", "--no-checkout", git_url, str(ws)], ws.parent)
    git(["fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*"], ws)
    git(["checkout", "-q", "--force", "--detach", commit], ws)
    git(["clean", "-q", "-fd"], ws)  # untracked files; ignored ones (DVC outputs, its cache) stay
    for key, value in (("user.name", "lsdm worker"), ("user.email", f"lsdm@{socket.gethostname()}")):
        if git(["config", key], ws, check=False).returncode != 0:  # `dvc exp run` commits
            git(["config", key, value], ws)


def run_point(git_url: str, commit: str, point: Point, base: Path | None = None) -> dict[str, Any]:
    """One grid point as a DVC experiment, from nothing but the two remotes; returns what DVC did."""
    t0 = time.monotonic()
    with free_workspace(git_url, base) as ws:
        checkout(git_url, commit, ws)
        env = {"PYTHONPATH": str(ws)}  # the stages run the baseline commit's code
        targets = [s for s in SHARED_STAGES if s != "prepare"]
        tool(["dvc", "pull", "-q", "--with-deps", *targets], ws, env=env)
        if point.name in exp_names(ws):
            tool(["dvc", "exp", "remove", point.name], ws, env=env)  # a retried point's earlier attempt
        out = tool(["dvc", "exp", "run", "-n", point.name, *set_args(point.overrides)], ws, env=env)
        stages = {
            s: status
            for s in _stage_names(out.stdout + out.stderr)
            if (status := parse_repro(s, out.stdout + out.stderr))
        }
        tool(["dvc", "exp", "push", "origin", point.name], ws, env=env)
    ran_shared = sorted(s for s in SHARED_STAGES if stages.get(s) == RAN)
    return {
        "name": point.name,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "workspace": str(ws),
        "stages": stages,
        "ran_shared": ran_shared,
        "seconds": round(time.monotonic() - t0, 1),
    }


def _stage_names(output: str) -> list[str]:
    """Every stage `dvc repro` or `dvc exp run` mentions (foreach stages as `fit_baseline@x`)."""
    import re

    return sorted(set(re.findall(r"[Ss]tage '([^']+)'", output)))

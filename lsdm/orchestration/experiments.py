"""DVC experiments: the stage graph a run records, naming and saving experiments, queueing them
(`dvc exp run -S`, `dvc queue start`), and reading the headline results a run leaves in the workspace."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsdm.config import THREADS_ENV, available_cores
from lsdm.errors import ParamsError
from lsdm.orchestration.tools import TAIL, run_tool, tool_env
from lsdm.paths import EVAL_METRICS, REPORT


@dataclass(frozen=True)
class Pipeline:
    """The workspace's stage graph as DVC sees it (foreach/matrix stages expanded)."""

    stages: tuple[str, ...]  # DVC addressing (`split`, `fit_baseline@pixel_wgan`), in graph order
    uncached: tuple[str, ...]  # every `cache: false` out/metric/plot: git's, not DVC's cache


def read_pipeline(repo: Path) -> Pipeline:
    """Ask DVC for the stages of `repo` in graph order (dvc.yaml order where the graph allows).

    Read with the overrides already in params.yaml: `foreach: ${...}` stages expand from params.
    The uncached outputs are the files `dvc exp run` adds to an experiment commit besides
    dvc.lock and params.yaml (dvc.stage.utils._get_stage_files).
    """
    import networkx as nx
    from dvc.repo import Repo

    with warnings.catch_warnings(), Repo(str(repo)) as dvc:
        warnings.simplefilter("ignore", DeprecationWarning)  # dvc's own, about its trie library
        stages = [s for s in dvc.index.stages if getattr(s, "cmd", None)]  # not `dvc add` .dvc files
        position = {s: i for i, s in enumerate(stages)}
        graph = dvc.index.graph.subgraph(stages).reverse(copy=True)  # edges: producer -> consumer
        order = list(nx.lexicographical_topological_sort(graph, key=position.__getitem__))
        uncached = [
            os.path.relpath(out.fs_path, dvc.root_dir)
            for stage in order
            for out in stage.outs
            if not out.use_cache and out.is_in_repo
        ]
        return Pipeline(tuple(_address(s, dvc.root_dir) for s in order), tuple(uncached))


def _address(stage, root: str) -> str:
    """The stage's name as `dvc repro` takes and prints it when run from the repository root."""
    dvcfile = os.path.relpath(stage.path, root)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def check_exp_name(repo: Path, name: str) -> str:
    """A DVC experiment name is a git ref component; check it before anything runs."""
    ok = run_tool(["git", "check-ref-format", f"refs/exps/aa/bb/{name}"], repo).returncode == 0
    if not name or not ok or "/" in name:
        raise ParamsError(
            f"experiment name {name!r} is not valid (letters, digits, '-', '_', '.'; no '/', spaces or '..')"
        )
    return name


def exp_names(repo: Path) -> set[str]:
    """Names of all experiments in the repository (any baseline)."""
    p = run_tool(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo)
    return {ref.rsplit("/", 1)[-1] for ref in p.stdout.split() if ref.count("/") >= 4}


def save_experiment(repo: Path, name: str, message: str | None = None, pipeline: Pipeline | None = None) -> str:
    """`dvc exp save` the workspace as experiment `name`, with the files `dvc exp run` commits."""
    pipeline = pipeline or read_pipeline(repo)
    include = [p for p in ["dvc.lock", *pipeline.uncached] if (repo / p).exists()]
    args = ["dvc", "exp", "save", "-n", name]
    if message:
        args += ["-m", message]
    for p in include:
        args += ["-I", p]
    proc = run_tool(args, repo)
    if proc.returncode != 0:
        raise RuntimeError(f"`dvc exp save -n {name}` exited {proc.returncode}:\n{(proc.stderr + proc.stdout)[-TAIL:]}")
    return name


def queue_workers(repo: Path) -> dict[int, int]:
    """This repository's DVC queue workers alive now, number N -> pid (`dvc exp queue-worker
    dvc-exp-HASH-N@localhost`, HASH naming the repository's queue directory as DVC's `_spawn_worker`
    does). Read from `ps -ww` (whatever $COLUMNS says): DVC's own check (celery's `inspect().active()`)
    misses a busy worker."""
    import hashlib

    wdir = str(repo.resolve() / ".dvc" / "tmp" / "exps" / "celery")  # CeleryQueue.wdir
    node = re.compile(rf"\bdvc-exp-{hashlib.sha256(wdir.encode()).hexdigest()[:6]}-(\d+)@")
    rows = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
    return {
        int(m.group(1)): int(row.split()[0]) for row in rows if " exp queue-worker " in row and (m := node.search(row))
    }


def start_queue(repo: Path, jobs: int) -> list[int]:
    """Bring this repository's DVC queue up to JOBS live workers (the numbers started), each run's
    stages with its share of the cores ($LSDM_THREADS, unless set already): N runs of all-core torch
    on one machine slow each other many times over.

    Only the missing worker numbers are started, not `dvc queue start -j JOBS`: that does not see a
    busy worker and starts a second one under its name (more runs than cores). Call it again while
    tasks wait: a worker leaves when it sees the queue empty, and one that starts may take a shutdown
    an earlier worker left in the queue's broker, finishing one task and leaving (dvc-task's idle
    monitor, seen with DVC 3.6x). Its output goes nowhere, not through pipes (the worker it spawns
    would hold them open and a caller reading them would wait for it blind)."""
    missing = [n for n in range(1, jobs + 1) if n not in queue_workers(repo)]
    if not missing:
        return []
    share = {} if os.environ.get(THREADS_ENV) else {THREADS_ENV: str(max(1, available_cores() // jobs))}
    code = (
        "import sys; from dvc.repo import Repo; q = Repo(sys.argv[1]).experiments.celery_queue; "
        "[q._spawn_worker(int(n)) for n in sys.argv[2:]]"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, str(repo.resolve()), *map(str, missing)],
        cwd=repo,
        env=tool_env(share),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if p.returncode != 0:
        raise RuntimeError(f"starting DVC queue workers {missing} exited {p.returncode}")
    return missing


def set_args(overrides: dict[str, Any]) -> list[str]:
    """{"matcher.steps": 1000, "methods": [a, b]} -> ["-S", "matcher.steps=1000", "-S", "methods=[a, b]"] (`dvc exp run`)."""

    def text(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    return [a for k, v in overrides.items() for a in ("-S", f"{k}={text(v)}")]


def read_metrics(repo: Path) -> dict[str, Any]:
    """The evaluate stage's headline metrics (`eval.*` of results/evaluate/metrics.json, as `dvc exp show`
    lists them; the rest is in details.json beside it)."""
    path = repo / EVAL_METRICS
    return json.loads(path.read_text())["eval"]


def metrics_table(metrics: dict[str, Any], prefix: str = "eval.") -> list[dict[str, Any]]:
    """One row per scalar metric; nested dicts (per-class values) flattened with dotted keys."""
    rows: list[dict[str, Any]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += metrics_table(value, f"{prefix}{key}.")
        else:
            rows.append({"metric": f"{prefix}{key}", "value": value})
    return rows


def read_report(repo: Path) -> str:
    return (repo / REPORT).read_text()

"""Driving the DVC pipeline stage by stage from an orchestrator (the Prefect flows in `flows/`).

Nothing here imports Prefect: these are plain helpers over the `dvc` and `git` command lines, so
DVC stays the one that decides what reruns and holds every artifact. This module runs one stage;
its neighbours hold the rest: `params_file` (the overrides in params.yaml), `experiments` (the
stage graph, saving an experiment), `lock_repair` (DVC's torn lock table), `git` and `tools`.

How one orchestrated run maps to DVC (and why not `dvc exp run`):

1. the overrides (`{"split.n_paired_per_class": 3}`) are validated by `lsdm.config.load_params`
   before anything is touched, then written into the workspace's `params.yaml` with the comments
   kept (`params_file.applied_params`), exactly what `dvc exp run -S split.n_paired_per_class=3`
   would write;
2. each stage runs as `dvc repro --single-item <stage>` (`repro_stage`), in graph order as DVC
   itself reads dvc.yaml (`experiments.read_pipeline`: `foreach` stages expanded, after the
   overrides). DVC compares the stage with `dvc.lock` and either runs it ("Running stage"), skips it
   ("didn't change, skipping") or restores its outputs from its run cache ("is cached - skipping
   run"); that line is what the orchestrator reports, so "skipped" always means DVC skipped it;
3. `dvc exp save -n <name>` (`experiments.save_experiment`) then records the workspace as a DVC
   experiment, with the same files a `dvc exp run` commits (`dvc.lock`, `params.yaml` and every
   `cache: false` output: metrics, plots, the report), so the run appears in `dvc exp show` next to
   experiments made by hand;
4. a run that completed leaves the workspace as `dvc exp run -S` does: its outputs and `dvc.lock`
   beside `params.yaml` with its overrides, so `dvc status` is clean and the workspace row of
   `dvc exp show` is that run; the next run's overrides apply on top, as the next `dvc exp run -S`
   would, and DVC reruns whatever differs. A failed run puts `params.yaml` back as it was.

`dvc exp run` would do 1-3 in one process, so there would be no per-stage task, retry or state;
`dvc exp run --temp/--queue` would also copy the workspace into a temporary one per run, outside
the orchestrator's view. Because steps 1-4 edit the workspace, two runs must never overlap in one
workspace: they hold the workspace lock of `lsdm.lock`, as every `lsdm <stage>` does, so they are
serialised on this machine (the flows add a Prefect concurrency limit on top).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lsdm.config import PARAMS_FILE
from lsdm.errors import ParamsError
from lsdm.orchestration.git import git
from lsdm.orchestration.lock_repair import repair_rwlock
from lsdm.orchestration.tools import TAIL, run_tool, tool

#: What DVC said about one stage: it ran the command, found nothing changed, or restored the
#: outputs of an identical earlier run from its run cache (neither of the last two runs code).
RAN, SKIPPED, CACHED = "ran", "skipped", "cached"


class StageFailed(RuntimeError):
    """`dvc repro` of one stage failed; the message carries the tail of its stderr.

    `transient` is False when the stage itself rejected its inputs (lsdm exits 2 for bad params
    or data, and says why): running it again cannot help, so orchestrators should not retry.
    """

    def __init__(self, stage: str, returncode: int, stderr: str, stdout: str = "") -> None:
        self.stage, self.returncode = stage, returncode
        self.stderr_tail = stderr[-TAIL:].strip() or stdout[-TAIL:].strip()
        self.transient = not re.search(r"exited with (status )?2\b", stderr + stdout)
        kind = "" if self.transient else " (bad parameters or data: not retried)"
        super().__init__(
            f"stage {stage!r} failed{kind}: `dvc repro --single-item {stage}` exited {returncode}\n"
            f"--- stderr (tail) ---\n{self.stderr_tail}"
        )

    def __reduce__(self):  # picklable (Prefect may copy or store a failed state's exception)
        return (type(self), (self.stage, self.returncode, self.stderr_tail))


@dataclass(frozen=True)
class StageResult:
    stage: str
    status: str  # RAN, SKIPPED or CACHED
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dvc(args: list[str], repo: Path, check: bool = True) -> subprocess.CompletedProcess:
    return tool(["dvc", *args], repo, check)


def check_repo(repo: str | Path | None = None) -> Path:
    """The workspace to run in: `repo`, else $LSDM_REPO, else the current directory.

    It must be a git + DVC checkout of the pipeline (dvc.yaml, params.yaml, .dvc/).
    """
    root = Path(repo or os.environ.get("LSDM_REPO") or os.getcwd()).expanduser().resolve()
    missing = [n for n in ("dvc.yaml", PARAMS_FILE, ".dvc") if not (root / n).exists()]
    if missing:
        raise ParamsError(f"{root} is not an lsdm workspace (missing: {', '.join(missing)})")
    if git(["rev-parse", "--verify", "-q", "HEAD"], root, check=False).returncode != 0:
        raise ParamsError(f"{root}: not a git repository with a commit (DVC experiments need one)")
    return root


def parse_repro(stage: str, output: str) -> str | None:
    """What `dvc repro` said it did with `stage`: RAN, SKIPPED, CACHED, or None if it did not say."""
    if f"Running stage '{stage}'" in output:
        return RAN
    if f"Stage '{stage}' is cached - skipping run" in output:
        return CACHED
    if f"Stage '{stage}' didn't change, skipping" in output:
        return SKIPPED
    return None


def repro_stage(repo: Path, stage: str, timeout: float | None = None) -> StageResult:
    """Run one stage through DVC (`dvc repro --single-item`): DVC decides whether it runs."""
    repair_rwlock(repo)  # after a dvc killed mid-write (a crashed worker, or a retry of this stage)
    t0 = time.monotonic()
    p = run_tool(["dvc", "repro", "--single-item", stage], repo, timeout=timeout)
    if p.returncode != 0:
        raise StageFailed(stage, p.returncode, p.stderr, p.stdout)
    status = parse_repro(stage, p.stdout + p.stderr)
    if status is None:
        raise StageFailed(stage, p.returncode, "dvc repro did not report the stage:\n" + p.stdout + p.stderr)
    return StageResult(stage, status, round(time.monotonic() - t0, 2))


# ---------------------------------------------------------------------------------------------
# one run at a time per workspace


def workspace_key(repo: Path) -> str:
    """A name for this workspace (host + path), usable as a Prefect concurrency-limit name."""
    digest = hashlib.sha1(f"{socket.gethostname()}:{repo.resolve()}".encode()).hexdigest()[:12]
    return f"lsdm-workspace-{digest}"

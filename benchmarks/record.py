"""How a benchmark's figures are committed: a JSON file holding them beside the machine, the date,
the git commit and the command that produced them, so the README renders its figures from files
(`python -m lsdm.reports.readme`) and a reader can judge how comparable two of them are.

A run's figures depend on the machine's load as much as on the code: the load average is taken
when the run starts (`Run()`), before the benchmark adds its own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lsdm.config import THREADS_ENV, available_cores
from lsdm.io import write_json
from lsdm.orchestration.git import git

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "benchmarks"


def commit(root: Path = ROOT) -> dict[str, Any]:
    """HEAD of the checkout the benchmark ran from, and whether tracked files differed from it."""
    head = git(["rev-parse", "HEAD"], root, check=False).stdout.strip() or None
    dirty = bool(git(["status", "--porcelain", "--untracked-files=no"], root, check=False).stdout.strip())
    return {"commit": head, "dirty": dirty}


class Run:
    """The provenance of one benchmark run, captured at its start; `write` adds it to the figures."""

    def __init__(self, root: Path = ROOT, code: dict[str, Any] | None = None) -> None:
        """`code`: the commit the benchmark's code was copied from, when that was earlier than now."""
        self.root, self.code = root, code or commit(root)
        self.started = dt.datetime.now(dt.timezone.utc)
        self.machine = {
            "cores": available_cores(),
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "threads_env": os.environ.get(THREADS_ENV),
            "platform": platform.platform(),
            "python": platform.python_version(),
        }
        self.command = "python " + shlex.join([os.path.relpath(sys.argv[0], root), *sys.argv[1:]])

    def write(self, path: Path, figures: dict[str, Any]) -> Path:
        """`figures` plus machine, date, commit and command, written atomically to `path`."""
        doc = {
            **figures,
            "machine": self.machine,
            "date": self.started.isoformat(timespec="seconds"),
            "seconds_total": round((dt.datetime.now(dt.timezone.utc) - self.started).total_seconds(), 1),
            "command": self.command,
            **self.code,
        }
        write_json(doc, path)
        print(f"figures written to {os.path.relpath(path)}")
        return path


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder for one benchmark run: removed afterwards, or kept (and named) with `--keep`."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

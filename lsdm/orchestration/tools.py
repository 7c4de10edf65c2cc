"""The command-line tools the orchestration drives (`dvc`, `git`, `lsdm`), run from the project's venv.

Every call goes through `tool_env`, so a worker started as `.venv/bin/prefect worker start ...` finds
the venv's tools without an activated venv, and a failure carries the tail of the tool's output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TAIL = 3000  # characters of a tool's output carried by a failure message


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `dvc` and the stage commands it starts (`lsdm <stage>`).

    The directory of the running interpreter (the venv's bin) goes first on PATH, so a worker
    started as `.venv/bin/prefect worker start ...` finds `dvc` and `lsdm` without an activated
    venv. Analytics of both tools stay off.
    """
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def find_tool(name: str) -> str:
    """`dvc`, `git`, `lsdm`: next to the interpreter first, then on PATH; a clear error if absent."""
    found = shutil.which(name, path=tool_env()["PATH"])
    if not found:
        raise FileNotFoundError(
            f"`{name}` is not on PATH ({tool_env()['PATH']}); start the worker from the project's venv "
            f"(e.g. `.venv/bin/prefect worker start ...`) or put the venv's bin on PATH"
        )
    return found


def run_tool(
    args: list[str], repo: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [find_tool(args[0]), *args[1:]], cwd=repo, env=tool_env(env), capture_output=True, text=True, timeout=timeout
    )


def tool(
    args: list[str], repo: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`dvc ...` or `git ...` in `repo`; with `check`, a failure raises with the command's output tail."""
    p = run_tool(args, repo, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` in {repo} exited {p.returncode}:\n{(p.stdout + p.stderr)[-TAIL:]}")
    return p


def stream(args: list[str], repo: Path) -> int:
    """Run a tool with its output on this process's stdout and stderr (a long `--watch`); its exit status."""
    return subprocess.run([find_tool(args[0]), *args[1:]], cwd=repo, env=tool_env()).returncode

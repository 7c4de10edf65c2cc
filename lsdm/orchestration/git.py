"""Git, through the venv's `git` (`lsdm.orchestration.tools`): commands, and reading a commit's files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lsdm.orchestration.tools import find_tool, tool, tool_env


def git(
    args: list[str], repo: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return tool(["git", *args], repo, check, env)


def git_files(repo: Path, rev: str, under: str) -> list[str]:
    """The paths of commit `rev` under the folder `under`."""
    return git(["ls-tree", "-r", "--name-only", rev, under], repo, check=False).stdout.split()


def git_file(repo: Path, rev: str, path: str) -> bytes | None:
    """The bytes of `path` in commit `rev` (None if it has no such file)."""
    p = subprocess.run([find_tool("git"), "show", f"{rev}:{path}"], cwd=repo, env=tool_env(), capture_output=True)
    return p.stdout if p.returncode == 0 else None

"""What the README, the docs and the reports say: the README's commands, and the shipped run's files
as committed at HEAD."""

from __future__ import annotations

import atexit
import functools
import io
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from support.checkout import ROOT

# What `make repro`, `dvc exp run` and the benchmarks rewrite in a user's checkout: tests that read the
# shipped run's files read HEAD's copies (`committed()`), never the workspace's.
PIPELINE_WRITES = ("results", "reports", "dvc.lock")


@functools.cache
def committed() -> Path:
    """A throwaway tree holding PIPELINE_WRITES as committed at HEAD, beside the workspace's own
    README.md, docs/ and mkdocs.yml (which no stage writes). The README, docs and report tests read
    this tree, so the two README commands pass in either order: a user's `make repro` rewrites
    results/ with figures that differ in the last digits on another CPU, and must not make the suite
    fail. Outside a git checkout (an unpacked release) there is nothing to diff against: the checkout
    itself."""
    if not (ROOT / ".git").exists():
        return ROOT
    dest = Path(tempfile.mkdtemp(prefix="lsdm-committed-"))
    atexit.register(shutil.rmtree, dest, True)
    tar = subprocess.run(["git", "archive", "HEAD", "--", *PIPELINE_WRITES], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(dest, filter="data")
    shutil.copy(ROOT / "README.md", dest / "README.md")
    if (ROOT / "docs").is_dir():
        shutil.copytree(ROOT / "docs", dest / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    if (ROOT / "mkdocs.yml").is_file():
        shutil.copy(ROOT / "mkdocs.yml", dest / "mkdocs.yml")
    return dest


def readme_commands(program: str) -> list[list[str]]:
    """The README's shell commands (lines of its ```bash blocks, comments dropped) that start with
    `program`, as argv lists: the tests run the front door's commands as written."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [shlex.split(line, comments=True) for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [argv for argv in lines if argv[:1] == [program]]

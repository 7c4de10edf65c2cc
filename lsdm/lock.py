"""One writer at a time per workspace: the lock that `lsdm <stage>`, `lsdm sweep` and the Prefect
flows all take before they write anything there.

- The lock is an exclusive `flock` on `.dvc/tmp/lsdm-orchestrate/run.lock` (git-ignored by DVC; in a
  folder without `.dvc/`, `.lsdm/run.lock`). The kernel drops it when its holder dies, even by
  SIGKILL, so there is never a stale lock to clean up.
- A second writer waits, saying once who holds the lock (command, pid, host, since when), and gives
  up with `WorkspaceBusy` after `timeout` seconds: `lsdm` exits 75 ("try again later") with that
  message. The CLI's wait is $LSDM_LOCK_TIMEOUT seconds (default 600; 0: fail at once); a Prefect
  flow run waits as long as it takes (its concurrency slot already queues the runs).
- A holder's own children pass through: while it holds the lock, the holder sets
  $LSDM_WORKSPACE_LOCK to "<lock file>:<pid>", and a process that finds the lock taken by one of its
  own ancestors (the flow's `dvc repro` running `lsdm <stage>`, a sweep's `dvc repro prepare`)
  goes ahead. The variable alone is not enough: the holder must still be an ancestor, so a process
  orphaned by a dead holder waits like anyone else.
- DVC's temporary experiment workspaces (`dvc queue`, under `.dvc/tmp/exps/`) are workspaces of
  their own, with their own `.dvc/` and so their own lock: a queued experiment's stages never wait
  for the sweep that queued them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from lsdm.errors import ParamsError

LOCK_ENV = "LSDM_WORKSPACE_LOCK"  # "<lock file>:<pid>" of the holder, for its children
TIMEOUT_ENV = "LSDM_LOCK_TIMEOUT"
DEFAULT_TIMEOUT = 600.0  # seconds the CLI waits for a busy workspace
BUSY_EXIT = 75  # sysexits' EX_TEMPFAIL: nothing is wrong with the inputs, run it again later
_POLL = 0.5


class WorkspaceBusy(TimeoutError):
    """Another process held the workspace for longer than this one would wait."""


def lock_file(root: str | Path) -> Path:
    """The workspace's lock file (its folder is created if needed)."""
    root = Path(root).resolve()
    folder = root / ".dvc" / "tmp" / "lsdm-orchestrate" if (root / ".dvc").is_dir() else root / ".lsdm"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "run.lock"


def cli_timeout() -> float:
    """$LSDM_LOCK_TIMEOUT in seconds (default 600)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ParamsError(f"${TIMEOUT_ENV} = {raw!r}: expected seconds to wait for a busy workspace (0: do not wait)")
    return value


def _ancestors() -> set[int]:
    """This process and its ancestors, from /proc (no /proc: this process and its parent)."""
    pids, pid = {os.getpid()}, os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            pids.add(os.getppid())
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the command name is the state, then ppid
        pids.add(pid)
    return pids


def held_by_ancestor(path: Path) -> bool:
    """Whether $LSDM_WORKSPACE_LOCK says this lock is held by this process or one of its ancestors."""
    file, _, pid = os.environ.get(LOCK_ENV, "").rpartition(":")
    return file == str(path) and pid.isdigit() and int(pid) in _ancestors()


def holder(path: Path) -> str:
    """Who holds the lock, as its holder wrote it (may be empty for a moment after it is taken)."""
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    return ""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def workspace_lock(
    root: str | Path, who: str, timeout: float | None = None, say: Callable[[str], None] = _stderr
) -> Iterator[None]:
    """Hold the workspace at `root` while the block runs (see the module's docstring).

    Args:
        who: what holds it, as a waiting process will name it (e.g. "lsdm fit_latent").
        timeout: seconds to wait for another holder (None: as long as it takes; 0: not at all).
        say: where the one "waiting for ..." line goes.
    """
    root = Path(root).resolve()
    path = lock_file(root)
    # not inherited by children (PEP 446): a daemon started under the lock (dvc queue's worker) does not keep it
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        t0, said = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if held_by_ancestor(path):  # our own parent (or this process) holds it for us
                yield
                return
            by = holder(path) or "another process"
            waited = time.monotonic() - t0
            if timeout is not None and waited >= timeout:
                raise WorkspaceBusy(
                    f"the workspace {root} is busy: {by} holds its lock ({path}); "
                    f"{who} gave up after {waited:.0f} s. Run it again when that has finished, or wait longer "
                    f"with ${TIMEOUT_ENV}=<seconds>"
                )
            if not said and (by != "another process" or waited >= 1):
                limit = "as long as it takes" if timeout is None else f"up to {timeout:.0f} s (${TIMEOUT_ENV})"
                say(f"{who}: waiting for the workspace {root}, held by {by}; waiting {limit}")
                said = True
            time.sleep(_POLL)
        since = datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{who} (pid {os.getpid()} on {socket.gethostname()}, since {since})\n".encode(), 0)
        before = os.environ.get(LOCK_ENV)
        os.environ[LOCK_ENV] = f"{path}:{os.getpid()}"
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(LOCK_ENV, None)
            else:
                os.environ[LOCK_ENV] = before
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

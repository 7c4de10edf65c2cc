"""Commands and background process groups the tests start, their environment, and their reaping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

from support.checkout import BIN

# Tiny networks run faster on one thread, and tests that run stages side by side (Prefect) must
# not oversubscribe the cores: spinning OpenMP threads of several processes slow each other ~7x.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Every process a test starts in the background is in a process group of its own, recorded here; the
# autouse fixture `reap_processes` (conftest) kills the groups a test started when it ends, passed or
# failed, so a failure never leaves a stage, a DVC queue worker or a Prefect worker running into later
# tests. One list: the fixture and these helpers share it, so it is changed in place, never rebound.
STARTED: list[subprocess.Popen] = []


def sigint_default() -> None:
    """`preexec_fn` of a child a test will Ctrl-C: a suite started in the background (`.ci/run &` in a
    script) runs with SIGINT ignored, and a child inheriting that never sees the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env() -> dict[str, str]:
    e = dict(os.environ, DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(
    cmd: list[str] | str, cwd: Path, check: bool = True, timeout: float = 600, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run a command; on failure re-raise with its output so the test log shows the traceback.

    It runs in a process group of its own, and whatever of that group is still alive when it times out
    or the test is interrupted (pytest-timeout, Ctrl-C) is killed: `dvc repro` dies with its stage."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env={**env(), **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        shell=isinstance(cmd, str),
        start_new_session=True,
    )
    STARTED.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, _ = proc.communicate()
        raise AssertionError(f"{cmd} timed out after {timeout}s\n--- stdout ---\n{(out or '')[-4000:]}") from None
    finally:
        if proc.poll() is None:  # interrupted while it ran
            kill_group(proc)
    p = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{cmd} exited {p.returncode}\n--- stdout ---\n{p.stdout[-4000:]}\n--- stderr ---\n{p.stderr[-4000:]}"
        )
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_group(cmd: list[str], cwd: Path, env_: dict, log: Path, sigint: bool = False) -> subprocess.Popen:
    """A process in its own session/process group (so a group kill reaches its children), its output
    in `log`. `sigint`: with SIGINT's default action restored, for a child the test will Ctrl-C."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env_,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=sigint_default if sigint else None,
        )
    STARTED.append(proc)
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL `proc`'s process group (it leads one: start_group, run) and reap `proc`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    kill_group(proc)  # children (flow-run processes, server services)


def processes_in(folder: Path) -> list[int]:
    """Pids of the processes (not this one) working in `folder` or naming it on their command line:
    daemons that left their group, such as DVC's queue workers (dvc/daemon.py: a double fork, setsid)."""
    found, folder = [], str(folder)
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cwd, cmdline = os.readlink(entry / "cwd"), (entry / "cmdline").read_bytes().decode(errors="replace")
            if int(entry.name) != os.getpid() and (
                cwd == folder or cwd.startswith(folder + os.sep) or folder in cmdline
            ):
                found.append(int(entry.name))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""

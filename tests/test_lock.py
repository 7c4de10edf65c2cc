"""One writer per workspace (lsdm.lock): a second `lsdm <stage>` waits for the first, or gives up
saying who holds the workspace, and writes nothing; a holder's own children (a flow's or a sweep's
`dvc repro` running `lsdm <stage>`) go through without waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support.processes import env, run, start_group
from support.repos import make_repo, tiny_params

from lsdm.lock import BUSY_EXIT, LOCK_ENV, TIMEOUT_ENV, WorkspaceBusy, lock_file, workspace_lock

TRY_LOCK = "from lsdm.lock import workspace_lock\nwith workspace_lock('.', 'the child', timeout=0): print('through')"


def try_lock(cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    """Another process takes the workspace lock of `cwd` without waiting."""
    e = {k: v for k, v in env().items() if k != LOCK_ENV}
    return subprocess.run(
        [sys.executable, "-c", TRY_LOCK], cwd=cwd, env={**e, **extra}, capture_output=True, text=True, timeout=60
    )


def test_the_holder_its_children_pass_and_a_stranger_is_told_who_holds_it(tmp_path):
    with workspace_lock(tmp_path, "the parent"):
        assert "the parent (pid" in lock_file(tmp_path).read_text()
        with workspace_lock(tmp_path, "the parent again", timeout=0):  # the same process: no deadlock
            pass
        child = subprocess.run(
            [sys.executable, "-c", TRY_LOCK], cwd=tmp_path, env=env(), capture_output=True, text=True
        )
        assert child.returncode == 0 and child.stdout.strip() == "through", child.stderr
        stranger = try_lock(tmp_path)
        assert stranger.returncode != 0 and "WorkspaceBusy" in stranger.stderr
        assert f"the parent (pid {os.getpid()}" in stranger.stderr and "is busy" in stranger.stderr
        # the variable alone lets no one through: its pid must be an ancestor (here: a dead holder's)
        stale = try_lock(tmp_path, **{LOCK_ENV: f"{lock_file(tmp_path)}:{child_pid_that_exited()}"})
        assert stale.returncode != 0 and "is busy" in stale.stderr
        other = tmp_path / "other"  # another workspace (DVC's temporary experiment ones) has its own lock
        other.mkdir()
        assert try_lock(other, **{LOCK_ENV: os.environ[LOCK_ENV]}).returncode == 0
    assert LOCK_ENV not in os.environ and lock_file(tmp_path).read_text() == ""
    assert try_lock(tmp_path).returncode == 0  # released


def test_a_waiter_waits_says_for_whom_then_gives_up(tmp_path):
    said = []
    with workspace_lock(tmp_path, "the holder"):
        os.environ.pop(LOCK_ENV)  # this thread now stands for a stranger
        t0 = time.monotonic()
        with pytest.raises(WorkspaceBusy, match=r"the holder \(pid .*gave up after 1 s.*LSDM_LOCK_TIMEOUT"):
            with workspace_lock(tmp_path, "the waiter", timeout=1.0, say=said.append):
                pass
        assert time.monotonic() - t0 >= 1.0
        assert (
            len(said) == 1 and said[0].startswith("the waiter: waiting for the workspace") and "the holder" in said[0]
        )


def child_pid_that_exited() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


@pytest.mark.slow
def test_two_stages_at_once_in_one_workspace(tmp_path):
    """Real `lsdm` processes: under a parent holding the lock, `dvc repro` runs its stages straight
    through, while a stranger is refused; then a second stage beside a running `fit_latent` fails
    at once (timeout 0) writing nothing, or waits for it (and runs once it has stopped)."""
    repo = make_repo(tmp_path / "repo", tiny_params())
    with workspace_lock(repo, "a flow run"):  # the flow and the sweep hold it like this
        out = run(["dvc", "repro", "split"], repo, timeout=300).stdout
        assert "Running stage 'prepare'" in out and "Running stage 'split'" in out
        refused = run(["lsdm", "split"], repo, check=False, extra_env={LOCK_ENV: "", TIMEOUT_ENV: "0"})
        assert refused.returncode == BUSY_EXIT and not (repo / "data/latent").exists()
        assert "lsdm split: the workspace" in refused.stderr and "a flow run (pid" in refused.stderr, refused.stderr

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["latent"]["steps"] = 100_000
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    paired = repo / "data/split/paired.parquet"
    written = paired.stat().st_mtime_ns
    holder_log, waiter_log = repo / "fit_latent.log", repo / "waiter.log"  # files, not pipes nobody reads
    holder = start_group(["lsdm", "fit_latent"], repo, env(), holder_log, sigint=True)
    # if this test fails, conftest's reap_processes ends both children
    deadline = time.monotonic() + 300
    while f"lsdm fit_latent (pid {holder.pid}" not in lock_file(repo).read_text():
        assert holder.poll() is None and time.monotonic() < deadline, holder_log.read_text(errors="replace")
        time.sleep(0.2)
    busy = run(["lsdm", "split"], repo, check=False, extra_env={TIMEOUT_ENV: "0"})
    assert busy.returncode == BUSY_EXIT, busy.stderr
    assert f"lsdm fit_latent (pid {holder.pid}" in busy.stderr and "LSDM_LOCK_TIMEOUT" in busy.stderr
    assert "Traceback" not in busy.stderr and paired.stat().st_mtime_ns == written  # wrote nothing

    waiter = start_group(["lsdm", "split"], repo, {**env(), TIMEOUT_ENV: "600"}, waiter_log)
    while "waiting for the workspace" not in waiter_log.read_text(errors="replace"):
        assert waiter.poll() is None and time.monotonic() < deadline, waiter_log.read_text(errors="replace")
        time.sleep(0.2)
    assert f"held by lsdm fit_latent (pid {holder.pid}" in waiter_log.read_text()
    time.sleep(1)
    assert waiter.poll() is None and paired.stat().st_mtime_ns == written  # still waiting
    interrupted = time.time_ns()
    holder.send_signal(signal.SIGINT)
    assert holder.wait(timeout=120) != 0
    assert waiter.wait(timeout=300) == 0, waiter_log.read_text(errors="replace")
    assert paired.stat().st_mtime_ns > interrupted  # it ran, once the holder had let go

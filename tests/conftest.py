"""Fixtures: tiny throwaway git+DVC repositories that run the real pipeline, a Prefect server, no
network, and the reaping of what a test started. The helpers they use, and the tests import, live in
tests/support/ (`from support.repos import make_repo`)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from support.docs import readme_commands
from support.prefect import Server
from support.processes import STARTED, env, free_port, group_alive, processes_in, run, start_group, stop_group, tail
from support.repos import make_repo, tiny_params

SLOW_TIMEOUT = 1200  # seconds for an end-to-end test unless it names its own: a backstop for a hang, generous
# enough that a loaded machine (CI beside other jobs) makes a test slower, not red (unit tests: pyproject's)


def pytest_collection_modifyitems(items):
    """A hung test fails with its stack: end-to-end (`slow`) tests within SLOW_TIMEOUT, the rest within
    pyproject's `timeout`; the few that run longer say so with their own `@pytest.mark.timeout`.
    Tests marked `gpu` are skipped where torch sees no CUDA device (CI; this project's CPU machines)."""
    no_gpu = pytest.mark.skip(reason="needs CUDA; torch sees no GPU here")
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(no_gpu)


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    """A fresh repo with TINY params (not yet reproduced)."""
    return make_repo(tmp_path / "repo", tiny_params())


@pytest.fixture(scope="session")
def tiny_repro(tmp_path_factory) -> Path:
    """One repo with the whole tiny pipeline reproduced; shared read-only by the tests that inspect
    outputs. Under pytest-xdist (`make test` runs two workers) the workers share one copy: the first
    builds it under a file lock, in a scratch directory renamed into place only when `dvc repro` passed."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # common to every worker of this session
    repo = base / "tiny-repro" / "repo"
    with FileLock(str(base / "tiny-repro.lock")):
        if not repo.exists():
            scratch = make_repo(Path(tempfile.mkdtemp(dir=base)) / "repo", tiny_params())
            repo.parent.mkdir(exist_ok=True)  # trace.jsonl: what each stage imported and read (test_architecture)
            run(["dvc", "repro"], scratch, extra_env={"LSDM_TRACE": str(repo.parent / "trace.jsonl")})
            scratch.rename(repo)  # a git + DVC repo holds only relative paths: it works where it lands
    return repo


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or download fails the test loudly."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return calls


@pytest.fixture(autouse=True)
def reap_processes(request):
    """After each test, passed or failed: end the process groups it started (support.processes.STARTED),
    then any process still working in its tmp_path (a module's Prefect server, started before the test,
    outlives it)."""
    before = len(STARTED)
    yield
    started, STARTED[before:] = STARTED[before:], []
    for proc in started:
        stop_group(proc, grace=5)
    tmp = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    for pid in processes_in(tmp) if tmp is not None else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- a real Prefect server (one per test module that uses it) -----------------------------------


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    e = dict(
        env(),
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home}/prefect.db",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="2",
        PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS="3",  # a waiting run polls often
        PREFECT_LOGGING_LEVEL="INFO",
    )
    log = home / "server.log"
    # the README's server command, as written, on a free port of this host
    [server] = [argv for argv in readme_commands("prefect") if argv[1:3] == ["server", "start"]]
    proc = start_group([*server, "--host", "127.0.0.1", "--port", str(port)], home, e, log)
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"prefect server exited {proc.returncode}\n{tail(log)}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"prefect server did not answer on {url}\n{tail(log)}"
            time.sleep(1)
        yield Server(url, e, home, log)
    finally:
        stop_group(proc)
        assert not group_alive(proc.pid), "server processes survived"

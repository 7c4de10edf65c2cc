"""Shared fixtures: tiny params and throwaway git+DVC repositories that run the real pipeline."""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

# Tiny networks run faster on one thread, and tests that run stages side by side (Prefect) must
# not oversubscribe the cores: spinning OpenMP threads of several processes slow each other ~7x.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SLOW_TIMEOUT = 1200  # seconds for an end-to-end test unless it names its own: a backstop for a hang, generous
# enough that a loaded machine (CI beside other jobs) makes a test slower, not red (unit tests: pyproject's)
sys.path.insert(0, str(ROOT))  # `flows` is a top-level package of the checkout, not installed
BIN = Path(sys.executable).parent  # the venv's bin: lsdm, dvc, prefect

from lsdm.io import IGNORE_PATTERNS  # noqa: E402  (after the checkout is on sys.path)
from lsdm.presets import tiny  # noqa: E402  (TINY: a few hundred images, a few dozen steps)


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
    import re
    import shlex

    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [shlex.split(line, comments=True) for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [argv for argv in lines if argv[:1] == [program]]


def tiny_params(**sections) -> dict:
    """The repo's params.yaml with TINY and then `sections` applied on top. Sweeps set nothing for
    every run and run no variants unless `sweep={"set": ..., "variants": ...}` says so (the repo's
    `sweep.set` holds full-size budgets)."""
    params = tiny(yaml.safe_load((ROOT / "params.yaml").read_text()), sections)
    for key in ("set", "variants"):
        params["sweep"][key] = sections.get("sweep", {}).get(key, {})
    return params


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
    _STARTED.append(proc)
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


def make_repo(path: Path, params: dict) -> Path:
    """A fresh git + DVC repo holding the pipeline (dvc.yaml, the code it depends on) and `params`."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    shutil.copytree(ROOT / "lsdm", path / "lsdm", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "inputs", path / "inputs")
    leftovers = "".join(f"{p}\n" for p in IGNORE_PATTERNS)  # what a killed write leaves, as in the checkout's
    (path / ".gitignore").write_text("__pycache__/\n" + leftovers)
    run(["git", "init", "-q", "-b", "main"], path)
    run(["git", "config", "user.email", "tests@lsdm.invalid"], path)
    run(["git", "config", "user.name", "lsdm tests"], path)
    run(["dvc", "init", "-q"], path)
    with open(path / ".dvcignore", "a") as fh:
        fh.write(leftovers)
    run(["dvc", "config", "core.analytics", "false"], path)
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-qm", "init"], path)
    return path


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


def copy_repo(src: Path, dest: Path) -> Path:
    """A private copy of a reproduced repo (git, DVC cache, outputs), to change without touching `src`."""
    skip_dvc_tmp = lambda d, names: ["tmp"] if Path(d) == src / ".dvc" else []  # noqa: E731  (locks, state db)
    shutil.copytree(src, dest, symlinks=True, ignore=skip_dvc_tmp)
    return dest


# --- shared by several test files -------------------------------------------------------------


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


class _StandInLayers(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # checks what clean-fid feeds Inception: 3 channels, 299 x 299, normalised to [-1, 1]
        assert x.shape[1] == 3 and x.shape[2] == 299 and x.shape[3] == 299
        assert float(x.min()) >= -1.001 and float(x.max()) <= 1.001
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # [B, 48]
        return pooled.repeat(1, 43)[:, :2048]


class _StandInInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _StandInLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def write_stand_in_inception(path) -> None:
    """A small TorchScript file with the interface of clean-fid's inception-2015-12-05.pt."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        torch.jit.save(torch.jit.script(_StandInInception()), str(path))


def write_stand_in_squeezenet(torch_home) -> None:
    """Randomly initialised SqueezeNet 1.1 weights where torchvision looks for the pretrained ones."""
    from torchvision.models import squeezenet1_1

    ckpt = torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    torch.save(squeezenet1_1().state_dict(), ckpt / "squeezenet1_1-b8a52dc0.pth")


# The caching contract: a new paired subset reruns these stages, and only these (`check` reruns on
# every params change; its output never changes, so it reruns nothing after it).
PAIRED_STAGES = {"check", "split", "pseudo_label", "fit_matcher", "evaluate", "report"}


SHARED_STAGES = {"prepare", "fit_latent", "encode", "eval_net"}


def ran_and_skipped(stdout: str) -> tuple[set[str], set[str]]:
    """The main stages `dvc repro` said it ran, and those it said had not changed."""
    from lsdm.pipeline import STAGES

    ran = {s for s in STAGES if f"Running stage '{s}'" in stdout}
    skipped = {s for s in STAGES if f"Stage '{s}' didn't change, skipping" in stdout}
    return ran, skipped


def exp_show(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json` as {experiment name: {"params": ..., "metrics": ...}} (all baselines)."""
    rows = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    out = {}
    for row in rows:
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                data = rev["data"]
                params = data["params"]["params.yaml"]["data"]
                metrics = data["metrics"].get("results/evaluate/metrics.json", {}).get("data")
                out[rev["name"]] = {"params": params, "metrics": metrics}
    return out


def add_flows(repo: Path) -> Path:
    """Put the flows and prefect.yaml into a test repo (make_repo copies only the pipeline)."""
    import shutil

    shutil.copytree(ROOT / "flows", repo / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "prefect.yaml", repo / "prefect.yaml")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "flows"], repo)
    return repo


def by_flow_run(client, flow_run_id):
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    arts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {a.key: a for a in arts}, tasks


def stage_statuses(artifacts) -> dict[str, str]:
    """{stage: ran/skipped/cached} from the run's `lsdm-stages` table artifact."""
    table = artifacts["lsdm-stages"].data
    rows = json.loads(table) if isinstance(table, str) else table
    return {r["stage"]: r["status"] for r in rows}


# --- a real Prefect server (one per test module that uses it) -----------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Every process a test starts in the background is in a process group of its own, recorded here; the
# autouse fixture `reap_processes` kills the groups a test started when it ends, passed or failed, so a
# failure never leaves a stage, a DVC queue worker or a Prefect worker running into later tests.
_STARTED: list[subprocess.Popen] = []


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
    _STARTED.append(proc)
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


@pytest.fixture(autouse=True)
def reap_processes(request):
    """After each test, passed or failed: end the process groups it started, then any process still
    working in its tmp_path (a module's Prefect server, started before the test, outlives it)."""
    before = len(_STARTED)
    yield
    started, _STARTED[before:] = _STARTED[before:], []
    for proc in started:
        stop_group(proc, grace=5)
    tmp = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    for pid in processes_in(tmp) if tmp is not None else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


@dataclass
class Server:
    url: str
    env: dict
    home: Path
    log: Path

    def prefect(self, *args: str, cwd: Path, **extra) -> subprocess.CompletedProcess:
        p = subprocess.run(
            ["prefect", "--no-prompt", *args],
            cwd=cwd,
            env=dict(self.env, **extra),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if p.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
            )
        return p

    @contextlib.contextmanager
    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            with get_client(sync_client=True) as client:
                yield client


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

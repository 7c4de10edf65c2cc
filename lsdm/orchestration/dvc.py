"""Driving the DVC pipeline stage by stage from an orchestrator (the Prefect flows in `flows/`).

Nothing here imports Prefect: these are plain helpers over the `dvc` and `git` command lines, so
DVC stays the one that decides what reruns and holds every artifact.

How one orchestrated run maps to DVC (and why not `dvc exp run`):

1. the overrides (`{"split.n_paired_per_class": 3}`) are validated by `lsdm.config.load_params`
   before anything is touched, then written into the workspace's `params.yaml` with the comments
   kept (`applied_params`), exactly what `dvc exp run -S split.n_paired_per_class=3` would write;
2. each stage runs as `dvc repro --single-item <stage>` (`repro_stage`), in graph order as DVC
   itself reads dvc.yaml (`read_pipeline`: `foreach` stages expanded, after the overrides). DVC
   compares the stage with `dvc.lock` and either runs it ("Running stage"), skips it ("didn't
   change, skipping") or restores its outputs from its run cache ("is cached - skipping run");
   that line is what the orchestrator reports, so "skipped" always means DVC skipped it;
3. `dvc exp save -n <name>` then records the workspace as a DVC experiment, with the same files a
   `dvc exp run` commits (`dvc.lock`, `params.yaml` and every `cache: false` output: metrics,
   plots, the report), so the run appears in `dvc exp show` next to experiments made by hand;
4. `params.yaml` is put back as it was (also after a failure). The outputs and `dvc.lock` stay
   those of the last run, as after `dvc exp run`; the next run's overrides apply to the user's
   params, never to the previous run's, and DVC reruns whatever differs.

`dvc exp run` would do 1-3 in one process, so there would be no per-stage task, retry or state;
`dvc exp run --temp/--queue` would also copy the workspace into a temporary one per run, outside
the orchestrator's view. Because steps 1-4 edit the workspace, two runs must never overlap in one
workspace: they hold the workspace lock of `lsdm.lock`, as every `lsdm <stage>` does, so they are
serialised on this machine (the flows add a Prefect concurrency limit on top).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from lsdm.config import PARAMS_FILE, THREADS_ENV, Params, available_cores, load_params, set_dotted
from lsdm.errors import ParamsError
from lsdm.paths import EVAL_METRICS, REPORT

#: What DVC said about one stage: it ran the command, found nothing changed, or restored the
#: outputs of an identical earlier run from its run cache (neither of the last two runs code).
RAN, SKIPPED, CACHED = "ran", "skipped", "cached"

_STATE_DIR = Path(".dvc") / "tmp" / "lsdm-orchestrate"  # git-ignored by DVC
_TAIL = 3000  # characters of stderr carried by a failure message


class StageFailed(RuntimeError):
    """`dvc repro` of one stage failed; the message carries the tail of its stderr.

    `transient` is False when the stage itself rejected its inputs (lsdm exits 2 for bad params
    or data, and says why): running it again cannot help, so orchestrators should not retry.
    """

    def __init__(self, stage: str, returncode: int, stderr: str, stdout: str = "") -> None:
        self.stage, self.returncode = stage, returncode
        self.stderr_tail = stderr[-_TAIL:].strip() or stdout[-_TAIL:].strip()
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


# ---------------------------------------------------------------------------------------------
# running dvc


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


def run_tool(args: list[str], repo: Path, timeout: float | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [find_tool(args[0]), *args[1:]], cwd=repo, env=tool_env(env), capture_output=True, text=True, timeout=timeout
    )


def tool(args: list[str], repo: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`dvc ...` or `git ...` in `repo`; with `check`, a failure raises with the command's output tail."""
    p = run_tool(args, repo, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` in {repo} exited {p.returncode}:\n{(p.stdout + p.stderr)[-_TAIL:]}")
    return p


def stream(args: list[str], repo: Path) -> int:
    """Run a tool with its output on this process's stdout and stderr (a long `--watch`); its exit status."""
    return subprocess.run([find_tool(args[0]), *args[1:]], cwd=repo, env=tool_env()).returncode


def git(args: list[str], repo: Path, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return tool(["git", *args], repo, check, env)


def dvc(args: list[str], repo: Path, check: bool = True) -> subprocess.CompletedProcess:
    return tool(["dvc", *args], repo, check)


def git_files(repo: Path, rev: str, under: str) -> list[str]:
    """The paths of commit `rev` under the folder `under`."""
    return git(["ls-tree", "-r", "--name-only", rev, under], repo, check=False).stdout.split()


def git_file(repo: Path, rev: str, path: str) -> bytes | None:
    """The bytes of `path` in commit `rev` (None if it has no such file)."""
    p = subprocess.run([find_tool("git"), "show", f"{rev}:{path}"], cwd=repo, env=tool_env(), capture_output=True)
    return p.stdout if p.returncode == 0 else None


def start_queue(repo: Path, jobs: int) -> None:
    """`dvc queue start -j JOBS`, each run's stages with its share of the cores ($LSDM_THREADS, unless
    set already): N runs of all-core torch on one machine slow each other many times over. Its
    output goes nowhere, not through pipes (the queue worker it spawns would hold them open and a
    caller reading them would wait for it blind)."""
    share = {} if os.environ.get(THREADS_ENV) else {THREADS_ENV: str(max(1, available_cores() // jobs))}
    p = subprocess.run([find_tool("dvc"), "queue", "start", "-j", str(jobs)], cwd=repo, env=tool_env(share),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    if p.returncode != 0:
        raise RuntimeError(f"dvc queue start -j {jobs} exited {p.returncode}")


def set_args(overrides: dict[str, Any]) -> list[str]:
    """{"matcher.steps": 1000, "methods": [a, b]} -> ["-S", "matcher.steps=1000", "-S", "methods=[a, b]"] (`dvc exp run`)."""
    def text(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    return [a for k, v in overrides.items() for a in ("-S", f"{k}={text(v)}")]


def check_repo(repo: str | Path | None = None) -> Path:
    """The workspace to run in: `repo`, else $LSDM_REPO, else the current directory.

    It must be a git + DVC checkout of the pipeline (dvc.yaml, params.yaml, .dvc/).
    """
    root = Path(repo or os.environ.get("LSDM_REPO") or os.getcwd()).expanduser().resolve()
    missing = [n for n in ("dvc.yaml", PARAMS_FILE, ".dvc") if not (root / n).exists()]
    if missing:
        raise ParamsError(f"{root} is not an lsdm workspace (missing: {', '.join(missing)})")
    if run_tool(["git", "rev-parse", "--verify", "-q", "HEAD"], root).returncode != 0:
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


def repair_rwlock(repo: Path) -> bool:
    """Remove DVC's lock table `.dvc/tmp/rwlock` if a dvc killed while rewriting it left it torn; True if so.

    DVC rewrites that JSON file in place, and once it is torn refuses every command ("Unable to
    read RWLock-file ... JSON structure is corrupted") until someone deletes it, as DVC's own
    messages advise for stale entries. It is only touched while no dvc process edits it (DVC's
    guard, `rwlock.lock`, is free); the entries it held are lost with the torn text anyway.
    """
    import zc.lockfile  # DVC's own lock backend

    path = repo / ".dvc" / "tmp" / "rwlock"
    if _json_ok(path):
        return False
    try:
        guard = zc.lockfile.LockFile(f"{path}.lock")
    except zc.lockfile.LockError:
        return False  # a dvc is rewriting it right now
    try:
        if _json_ok(path):
            return False
        path.unlink()
    finally:
        guard.close()
    print(f"lsdm: removed {path}: a dvc killed while rewriting it had left it torn", file=sys.stderr)
    return True


def _json_ok(path: Path) -> bool:
    """True unless `path` exists and is not JSON."""
    try:
        json.loads(path.read_bytes())
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return True


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
# parameters in the workspace


def validate(repo: Path, overrides: dict[str, Any] | None) -> Params:
    """The same typed check as `lsdm check`, on params.yaml with `overrides` applied."""
    return load_params(repo / PARAMS_FILE, {} if overrides is None else overrides)


def render_params(text: str, overrides: dict[str, Any]) -> str:
    """`params.yaml` text with dotted overrides set, comments and order kept (as `dvc exp run -S`)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    rt = YAML()  # round trip
    rt.preserve_quotes = True
    rt.width = 4096
    doc = rt.load(text)
    for dotted, value in overrides.items():
        set_dotted(doc, dotted, value, section=CommentedMap)
    buf = io.StringIO()
    rt.dump(doc, buf)
    return buf.getvalue()


def _state_dir(repo: Path) -> Path:
    d = repo / _STATE_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


_BACKUP = f"{PARAMS_FILE}.orig-"  # + the pid of the run that overrode params.yaml


def _backups(repo: Path) -> list[Path]:
    """Copies of the user's params.yaml kept by runs that have not put it back, oldest first."""
    found = [p for p in _state_dir(repo).glob(f"{_BACKUP}*") if p.name[len(_BACKUP):].isdigit()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def recover_params(repo: Path) -> bool:
    """Put back params.yaml left overridden by a run that was killed (not just failed); True if so.

    Only a dead run's copy is used (the oldest: a later one would hold the overrides), by one
    atomic rename; the temp files of writes killed midway (of params.yaml, of a copy) go too.
    """
    from lsdm.io import TMP_TAG, clean_leftovers, pid_alive

    state = _state_dir(repo)
    dead = [b for b in _backups(repo) if not pid_alive(int(b.name[len(_BACKUP):]))]
    if dead:
        os.replace(dead[0], repo / PARAMS_FILE)
        for b in dead[1:]:
            b.unlink(missing_ok=True)
    clean_leftovers(repo / PARAMS_FILE)
    for name in {p.name[1:].split(TMP_TAG)[0] for p in state.glob(f".{_BACKUP}*{TMP_TAG}*")}:
        clean_leftovers(state / name)
    return bool(dead)


@contextlib.contextmanager
def applied_params(repo: Path, overrides: dict[str, Any] | None, validated: Params | None = None) -> Iterator[Params]:
    """params.yaml with `overrides` while the block runs; the original bytes come back afterwards.

    Every write is a whole-file replace (temp file, then rename), so params.yaml is always either
    the user's or the overridden text, never a torso. A copy of the user's is kept under .dvc/tmp,
    named after this process, until it is back, so a run killed outright is undone by the next
    one (`recover_params`, also run here first). `validated`: what `validate` already returned
    for these overrides (else it runs here). Yields the params actually on disk, which must equal them.
    """
    from lsdm.io import atomic_path

    path = repo / PARAMS_FILE
    if recover_params(repo):
        validated = None  # it was checked against the killed run's overrides
    original = path.read_bytes()
    expected = validated if validated is not None else validate(repo, overrides)
    backup = _state_dir(repo) / f"{_BACKUP}{os.getpid()}"
    with atomic_path(backup) as tmp:  # complete before params.yaml changes: recovery never reads a torso
        tmp.write_bytes(original)
        shutil.copymode(path, tmp)  # recovery renames it into place: the user's mode with it
    try:
        if overrides:
            with atomic_path(path) as tmp:
                tmp.write_text(render_params(original.decode(), overrides))
        on_disk = load_params(path)
        if on_disk != expected:  # the file must say what was validated
            raise ParamsError(f"{path}: writing the overrides {overrides} did not give the validated parameters")
        yield on_disk
    finally:
        if not path.exists() or path.read_bytes() != original:
            with atomic_path(path) as tmp:
                tmp.write_bytes(original)
        backup.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# experiments


@dataclass(frozen=True)
class Pipeline:
    """The workspace's stage graph as DVC sees it (foreach/matrix stages expanded)."""

    stages: tuple[str, ...]  # DVC addressing (`split`, `fit_baseline@pixel_wgan`), in graph order
    uncached: tuple[str, ...]  # every `cache: false` out/metric/plot: git's, not DVC's cache


def read_pipeline(repo: Path) -> Pipeline:
    """Ask DVC for the stages of `repo` in graph order (dvc.yaml order where the graph allows).

    Read with the overrides already in params.yaml: `foreach: ${...}` stages expand from params.
    The uncached outputs are the files `dvc exp run` adds to an experiment commit besides
    dvc.lock and params.yaml (dvc.stage.utils._get_stage_files).
    """
    import networkx as nx
    from dvc.repo import Repo

    with warnings.catch_warnings(), Repo(str(repo)) as dvc:
        warnings.simplefilter("ignore", DeprecationWarning)  # dvc's own, about its trie library
        stages = [s for s in dvc.index.stages if getattr(s, "cmd", None)]  # not `dvc add` .dvc files
        position = {s: i for i, s in enumerate(stages)}
        graph = dvc.index.graph.subgraph(stages).reverse(copy=True)  # edges: producer -> consumer
        order = list(nx.lexicographical_topological_sort(graph, key=position.__getitem__))
        uncached = [
            os.path.relpath(out.fs_path, dvc.root_dir)
            for stage in order
            for out in stage.outs
            if not out.use_cache and out.is_in_repo
        ]
        return Pipeline(tuple(_address(s, dvc.root_dir) for s in order), tuple(uncached))


def _address(stage, root: str) -> str:
    """The stage's name as `dvc repro` takes and prints it when run from the repository root."""
    dvcfile = os.path.relpath(stage.path, root)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


def check_exp_name(repo: Path, name: str) -> str:
    """A DVC experiment name is a git ref component; check it before anything runs."""
    ok = run_tool(["git", "check-ref-format", f"refs/exps/aa/bb/{name}"], repo).returncode == 0
    if not name or not ok or "/" in name:
        raise ParamsError(f"experiment name {name!r} is not valid (letters, digits, '-', '_', '.'; no '/', spaces or '..')")
    return name


def exp_names(repo: Path) -> set[str]:
    """Names of all experiments in the repository (any baseline)."""
    p = run_tool(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo)
    return {ref.rsplit("/", 1)[-1] for ref in p.stdout.split() if ref.count("/") >= 4}


def save_experiment(repo: Path, name: str, message: str | None = None, pipeline: Pipeline | None = None) -> str:
    """`dvc exp save` the workspace as experiment `name`, with the files `dvc exp run` commits."""
    pipeline = pipeline or read_pipeline(repo)
    include = [p for p in ["dvc.lock", *pipeline.uncached] if (repo / p).exists()]
    args = ["dvc", "exp", "save", "-n", name]
    if message:
        args += ["-m", message]
    for p in include:
        args += ["-I", p]
    proc = run_tool(args, repo)
    if proc.returncode != 0:
        raise RuntimeError(f"`dvc exp save -n {name}` exited {proc.returncode}:\n{(proc.stderr + proc.stdout)[-_TAIL:]}")
    return name


def read_metrics(repo: Path) -> dict[str, Any]:
    """The evaluate stage's headline metrics (`eval.*` of results/evaluate/metrics.json, as `dvc exp show`
    lists them; the rest is in details.json beside it)."""
    path = repo / EVAL_METRICS
    return json.loads(path.read_text())["eval"]


def metrics_table(metrics: dict[str, Any], prefix: str = "eval.") -> list[dict[str, Any]]:
    """One row per scalar metric; nested dicts (per-class values) flattened with dotted keys."""
    rows: list[dict[str, Any]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += metrics_table(value, f"{prefix}{key}.")
        else:
            rows.append({"metric": f"{prefix}{key}", "value": value})
    return rows


def read_report(repo: Path) -> str:
    return (repo / REPORT).read_text()


# ---------------------------------------------------------------------------------------------
# one run at a time per workspace


def workspace_key(repo: Path) -> str:
    """A name for this workspace (host + path), usable as a Prefect concurrency-limit name."""
    digest = hashlib.sha1(f"{socket.gethostname()}:{repo.resolve()}".encode()).hexdigest()[:12]
    return f"lsdm-workspace-{digest}"

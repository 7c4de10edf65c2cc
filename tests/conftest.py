"""Shared fixtures: tiny params and throwaway git+DVC repositories that run the real pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

# Tiny networks run faster on one thread, and tests that run stages side by side (Prefect) must
# not oversubscribe the cores: spinning OpenMP threads of several processes slow each other ~7x.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: lsdm, dvc, prefect

# A few hundred images and a few dozen steps: every stage runs for real in seconds.
TINY = {
    "base": {"device": "cpu"},
    "data": {"limit": 300},
    "split": {"n_paired_per_class": 3},
    "latent": {"steps": 30, "batch_size": 32},
    "matcher": {"steps": 15, "width": 32, "depth": 2, "batch_size": 32},
    "evalnet": {"epochs": 1},
    "evaluate": {"batch_size": 60, "grid_per_class": 4},
    "pixel_wgan": {"steps": 4, "n_critic": 2, "width": 4, "batch_size": 16},
    "lsdm_paired_only": {"ae_steps": 10, "ae_batch_size": 16, "steps": 4, "n_critic": 2, "width": 32, "depth": 2, "batch_size": 32},
    "latent_flow": {"steps": 30, "width": 32, "depth": 2, "batch_size": 32, "nfe": [2, 4]},
    "sweep": {"counts": [1, 2], "seeds": [0]},
}


def deep_update(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def tiny_params(**sections) -> dict:
    """The repo's params.yaml with TINY and then `sections` applied on top. Sweeps set nothing for
    every run and run no variants unless `sweep={"set": ..., "variants": ...}` says so (the repo's
    `sweep.set` holds full-size budgets)."""
    params = deep_update(deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY), sections)
    for key in ("set", "variants"):
        params["sweep"][key] = sections.get("sweep", {}).get(key, {})
    return params


def env() -> dict[str, str]:
    e = dict(os.environ, DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(cmd: list[str] | str, cwd: Path, check: bool = True, timeout: float = 600,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run a command; on failure re-raise with its output so the test log shows the traceback."""
    try:
        p = subprocess.run(cmd, cwd=cwd, env={**env(), **(extra_env or {})}, capture_output=True, text=True, timeout=timeout, shell=isinstance(cmd, str))
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise AssertionError(f"{cmd} timed out after {timeout}s\n--- stdout ---\n{out[-4000:]}") from None
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} exited {p.returncode}\n--- stdout ---\n{p.stdout[-4000:]}\n--- stderr ---\n{p.stderr[-4000:]}")
    return p


def make_repo(path: Path, params: dict) -> Path:
    """A fresh git + DVC repo holding the pipeline (dvc.yaml, the code it depends on) and `params`."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    shutil.copytree(ROOT / "lsdm", path / "lsdm", ignore=shutil.ignore_patterns("__pycache__"))
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "inputs", path / "inputs")
    (path / ".gitignore").write_text("__pycache__/\n")
    run(["git", "init", "-q", "-b", "main"], path)
    run(["git", "config", "user.email", "tests@lsdm.invalid"], path)
    run(["git", "config", "user.name", "lsdm tests"], path)
    run(["dvc", "init", "-q"], path)
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

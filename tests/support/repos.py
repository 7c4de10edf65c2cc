"""Tiny params and throwaway git + DVC repositories that run the real pipeline, and what `dvc` says
about them (the stages it ran, the experiments it shows)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from lsdm.io import IGNORE_PATTERNS
from lsdm.presets import tiny  # TINY: a few hundred images, a few dozen steps
from support.checkout import ROOT
from support.processes import run

# The caching contract: a new paired subset reruns these stages, and only these (`check` reruns on
# every params change; its output never changes, so it reruns nothing after it).
PAIRED_STAGES = {"check", "split", "pseudo_label", "fit_matcher", "evaluate", "report"}


SHARED_STAGES = {"prepare", "fit_latent", "encode", "eval_net"}


def tiny_params(**sections) -> dict:
    """The repo's params.yaml with TINY and then `sections` applied on top. Sweeps set nothing for
    every run and run no variants unless `sweep={"set": ..., "variants": ...}` says so (the repo's
    `sweep.set` holds full-size budgets)."""
    params = tiny(yaml.safe_load((ROOT / "params.yaml").read_text()), sections)
    for key in ("set", "variants"):
        params["sweep"][key] = sections.get("sweep", {}).get(key, {})
    return params


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


def copy_repo(src: Path, dest: Path) -> Path:
    """A private copy of a reproduced repo (git, DVC cache, outputs), to change without touching `src`."""
    skip_dvc_tmp = lambda d, names: ["tmp"] if Path(d) == src / ".dvc" else []  # noqa: E731  (locks, state db)
    shutil.copytree(src, dest, symlinks=True, ignore=skip_dvc_tmp)
    return dest


def add_flows(repo: Path) -> Path:
    """Put the flows and prefect.yaml into a test repo (make_repo copies only the pipeline)."""
    shutil.copytree(ROOT / "flows", repo / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "prefect.yaml", repo / "prefect.yaml")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "flows"], repo)
    return repo


def ran_and_skipped(stdout: str) -> tuple[set[str], set[str]]:
    """The main stages `dvc repro` said it ran, and those it said had not changed."""
    from lsdm.pipeline import STAGES

    ran = {s for s in STAGES if f"Running stage '{s}'" in stdout}
    skipped = {s for s in STAGES if f"Stage '{s}' didn't change, skipping" in stdout}
    return ran, skipped


def exp_show(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json` as {experiment name: {"params": ..., "metrics": ...}} (all baselines).

    Not `lsdm.orchestration.sweep._exp_entries`: that one skips a rev without data and names a nameless
    one by its experiment or short rev; here every rev is read as DVC gives it, so one without data or
    params fails the test."""
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

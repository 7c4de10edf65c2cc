"""Fault injection (not a test by itself): SIGKILL each stage at random points, then check what is left.

    python benchmarks/fault_injection.py                          # every stage of dvc.yaml, 5 kills each
    python benchmarks/fault_injection.py --kills 3 --stages prepare eval_net --params-kills 10 --flow-kills 0

In one throwaway tiny repository (tests/support/repos.py's repo and params), for each stage in dvc.yaml order:

1. `dvc repro <stage>` (with its upstream), then `dvc repro --force --single-item <stage>`, timed:
   the runtime T of what each killed run does;
2. K times `dvc repro --force --single-item <stage>` in a process group of its own, SIGKILLed (the
   whole group: DVC and the stage) after a seeded random delay, one in each of K equal slices of
   [0, T], so kills land in DVC's start, the stage's work, its writes and DVC's commit; after each:
   - `dvc status <stage>`: the stage is changed or missing, or else DVC takes it as up to date, and
     then every output must be there and whole ("accepted": up to date with an output missing or
     torn, target 0; "up to date": the kills that came after DVC had recorded the run);
   - every output that exists loads (Parquet, JSON, checkpoint, PNG, TSV, Markdown): "torn", target 0;
   - any other file the kill left in the workspace is git-ignored: "unignored", target 0;
3. `dvc repro <stage>` completes, `dvc status --with-deps <stage>` is clean and the outputs are whole
   ("final ok"). DVC may complete it without starting the stage (dvc.lock or its run cache holds an
   identical run: it checks those outputs out), so what the kills left may still be there, git- and
   DVC-ignored ("waiting"); the stage's next start (`dvc repro --force`) removes it ("left", target 0).

DVC itself rewrites its lock table `.dvc/tmp/rwlock` in place; a kill in that moment leaves it torn
and every later dvc command fails until it is removed. That is DVC's, not a stage's, so it is
counted apart ("DVC state torn", with a torn dvc.lock if one ever is) and repaired as lsdm's
orchestrator does before each stage (`lsdm.orchestration.lock_repair.repair_rwlock`); by hand it is
`rm .dvc/tmp/rwlock` with no dvc running.

Then params.yaml: a process rewriting it as the Prefect flow does (`applied_params`, in a loop) is
SIGKILLed at random points; params.yaml must be the user's or the overridden text, whole, and the
user's bytes after the next start (`recover_params`), with nothing left beside it ("accepted" counts
a kill after which it was not). With --flow-kills, the Prefect flow itself (`python -m
flows.lsdm_flow`, a temporary local server) is killed mid-run the same way, then run to the end.

The table goes to stdout; the exit status is 1 if any target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.processes import env, run  # noqa: E402
from support.repos import add_flows, make_repo, tiny_params  # noqa: E402  (the tests' tiny repositories)

from lsdm.io import OLD_TAG, TMP_TAG, stage_outputs  # noqa: E402
from lsdm.pipeline import STAGES  # noqa: E402

PARAMS_OVERRIDES = {"split.n_paired_per_class": 2, "matcher.steps": 7}


@dataclass
class Row:
    """What the kills of one target left. Targets: accepted, torn, unignored and left all 0."""

    target: str
    runtime: float = 0.0  # seconds of one uninterrupted run
    kills: int = 0  # kills delivered while the run was still going
    up_to_date: int = (
        0  # kills after which DVC took the stage as up to date, outputs then checked (flow: stages x kills)
    )
    accepted: int = 0  # ... of which with an output missing or torn; params.yaml: not the user's after the next start
    torn: int = 0  # kills after which a file at an output's (or params.yaml's) final path was not whole
    unignored: int = 0  # kills that left a file git does not ignore
    dvc_torn: int = 0  # kills that left DVC's own state unreadable (its lock table .dvc/tmp/rwlock, dvc.lock)
    waiting: int = 0  # files the kills left after the next `dvc repro` (which may not start the stage)
    left: int = 0  # files the kills left after the stage's next start
    final_ok: bool = False  # the next full run completed and DVC is clean (params.yaml: the user's bytes)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.final_ok and not (self.accepted or self.torn or self.unignored or self.left)


# --- the workspace: outputs whole, leftovers -------------------------------------------------


def broken(path: Path) -> str | None:
    """Why the output at `path` is not whole (None if it is): missing, or a file that does not load."""
    if not path.exists():
        return "missing"
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file()]
        return "empty directory" if not files else next((f"{f}: {w}" for f in files if (w := broken(f))), None)
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.read_table(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            import torch

            torch.load(path, map_location="cpu", weights_only=True)
        elif path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                im.load()
        elif path.suffix == ".tsv":
            import pandas as pd

            if pd.read_csv(path, sep="\t").empty:
                return "no rows"
        elif path.suffix == ".md":
            if not path.read_text().endswith("\n"):
                return "does not end with a newline"
        elif path.stat().st_size == 0:
            return "empty"
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:200]}"
    return None


def tree(repo: Path) -> set[str]:
    """Every file and folder under `repo` but git's and DVC's own (.git, .dvc), relative."""
    out = set()
    for d, dirs, files in os.walk(repo):
        rel = Path(d).relative_to(repo)
        if rel == Path("."):
            dirs[:] = [x for x in dirs if x not in (".git", ".dvc")]
        out |= {(rel / n).as_posix() for n in (*dirs, *files)}
    return out


def under(path: str, outs: list[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs)


def new_entries(repo: Path, before: set[str], outs: list[str]) -> list[str]:
    """What is in the workspace now and was not in `before`, outside the outputs (top entries only)."""
    new = sorted(p for p in tree(repo) - before if not under(p, outs))
    return [p for p in new if not any(p.startswith(q + "/") for q in new)]


def temp_names(repo: Path) -> list[str]:
    """Every entry named like an lsdm temp file or set-aside folder, anywhere outside .git."""
    return sorted(p for p in tree(repo) if TMP_TAG in Path(p).name or OLD_TAG in Path(p).name)


def describe(repo: Path, entries: list[str]) -> list[str]:
    """Each leftover with its age, its contents and whether the pid in its name still runs."""
    from lsdm.io import _owner, pid_alive

    out = []
    for e in entries:
        path, name = repo / e, Path(e).name
        tag = TMP_TAG if TMP_TAG in name else OLD_TAG if OLD_TAG in name else None
        pid = _owner(name.split(tag, 1)[1]) if tag else None
        inside = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) if path.is_dir() else []
        age = time.time() - path.lstat().st_mtime if os.path.lexists(path) else float("nan")
        out.append(
            f"{e} (pid {pid} {'alive' if pid and pid_alive(pid) else 'dead'}, {age:.0f}s old, holds {inside[:5]})"
        )
    return out


def not_ignored(repo: Path, paths: list[str]) -> list[str]:
    if not paths:
        return []
    p = subprocess.run(
        ["git", "check-ignore", "--stdin"], cwd=repo, input="\n".join(paths), capture_output=True, text=True
    )
    ignored = set(p.stdout.split())
    return [x for x in paths if x not in ignored]


def dvc_status(repo: Path, *targets: str) -> dict:
    """`dvc status --json`; retried while DVC still sees the killed process in its lock (not yet reaped)."""
    for _ in range(20):
        p = run(["dvc", "status", "--json", *targets], repo, check=False)
        if p.returncode == 0:
            return json.loads(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "{}")
        if "is busy" not in p.stderr:
            raise AssertionError(f"dvc status {targets} exited {p.returncode}: {p.stderr[-2000:]}")
        time.sleep(0.5)
    raise AssertionError(f"dvc status {targets}: still busy: {p.stderr[-2000:]}")


def dvc_torn(repo: Path, row: Row, what: str) -> bool:
    """Count a kill that left DVC's lock table torn (DVC rewrites it in place; every dvc command then
    fails) and repair it as lsdm's orchestrator does before its next stage (`repair_rwlock`)."""
    from lsdm.orchestration.lock_repair import repair_rwlock

    if not repair_rwlock(repo):
        return False
    row.dvc_torn += 1
    row.notes.append(f"{what}: DVC's .dvc/tmp/rwlock torn (removed, as before the flow's next stage)")
    return True


# --- killing ---------------------------------------------------------------------------------


def group_gone(pgid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def kill_after(
    cmd: list[str],
    cwd: Path,
    delay: float,
    log: Path,
    ready: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> bool:
    """Start `cmd` in a process group of its own (output to `log`, never a pipe: a child blocked on a
    full pipe would not run on), SIGKILL the group `delay` seconds later (after `ready` appears in
    the log, if given); False if it ended by itself before that."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env={**env(), **(extra_env or {})},
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if ready is not None:
            while ready not in log.read_text(errors="replace"):
                if proc.poll() is not None:
                    raise AssertionError(f"{cmd} exited {proc.returncode} before {ready!r}:\n{log.read_text()[-3000:]}")
                time.sleep(0.02)
        try:
            proc.wait(timeout=delay)
            return False
        except subprocess.TimeoutExpired:
            pass
        os.killpg(proc.pid, signal.SIGKILL)
        return True
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        group_gone(proc.pid)


def delays(runtime: float, kills: int, rng: random.Random) -> list[float]:
    """One delay in each of `kills` equal slices of [0, runtime]."""
    return [runtime * (k + rng.random()) / kills for k in range(kills)]


# --- the stages ------------------------------------------------------------------------------


def check_outputs(repo: Path, outs: list[str], changed: bool, row: Row, what: str) -> None:
    """Count a kill whose outputs DVC accepts though one is missing or torn, or one that tore a file."""
    bad = {o: why for o in outs if (why := broken(repo / o))}
    if not changed:
        row.up_to_date += 1
        if bad:
            row.accepted += 1
            row.notes.append(f"{what}: DVC up to date but {bad}")
    torn = {o: why for o, why in bad.items() if why != "missing"}
    if torn:
        row.torn += 1
        row.notes.append(f"{what}: torn {torn}")


def inject_stage(repo: Path, stage: str, kills: int, rng: random.Random, logs: Path) -> Row:
    row = Row(stage)
    outs = [str(p) for p in stage_outputs(stage, dvc_yaml=repo / "dvc.yaml")]
    run(["dvc", "repro", stage], repo)  # with its upstream
    t0 = time.perf_counter()
    run(["dvc", "repro", "--force", "--single-item", stage], repo)  # what each killed run does
    row.runtime = time.perf_counter() - t0
    before = tree(repo)
    for k, delay in enumerate(delays(row.runtime, kills, rng)):
        for _ in range(2):  # a run that ended first (the machine less busy than when timed): once more, at
            t = time.perf_counter()  # the same fraction of that run's own length
            if kill_after(["dvc", "repro", "--force", "--single-item", stage], repo, delay, logs / f"{stage}-{k}.log"):
                break
            delay *= (time.perf_counter() - t) / row.runtime
        else:
            row.notes.append(f"kill {k}: the run ended twice before its point ({delay:.1f}s the second time)")
            continue
        row.kills += 1
        dvc_torn(repo, row, f"kill {k} at {delay:.1f}s")
        try:
            changed = stage in dvc_status(repo, stage)
        except AssertionError as e:  # DVC cannot read its own state (a torn dvc.lock)
            row.dvc_torn += 1
            row.notes.append(f"kill {k} at {delay:.1f}s: {e}")
            continue
        check_outputs(repo, outs, changed, row, f"kill {k} at {delay:.1f}s")
        if stray := not_ignored(repo, new_entries(repo, before, outs)):
            row.unignored += 1
            row.notes.append(f"kill {k} at {delay:.1f}s: not git-ignored: {stray}")
    # What a user runs next: DVC completes the stage, running it or, when dvc.lock (or its run cache)
    # has an identical run, checking that run's outputs out without starting the stage at all.
    final = run(["dvc", "repro", stage], repo, check=False)
    (logs / f"{stage}-final.log").write_text(final.stdout + final.stderr)
    status = dvc_status(repo, "--with-deps", stage)
    whole = not any(broken(repo / o) for o in outs)
    row.waiting = len(set(new_entries(repo, before, outs)) | set(temp_names(repo)))
    # The stage's next start (forced, as DVC may not start it): it removes what the kills left.
    again = run(["dvc", "repro", "--force", "--single-item", stage], repo, check=False)
    left = sorted(set(new_entries(repo, before, outs)) | set(temp_names(repo)))
    row.left = len(left)
    if left:
        row.notes.append(f"left after the next start: {describe(repo, left)}")
    row.final_ok = (
        final.returncode == 0 and status == {} and whole and again.returncode == 0 and dvc_status(repo, stage) == {}
    )
    if not row.final_ok:
        row.notes.append(
            f"final repro exited {final.returncode} (then {again.returncode}), status {status}, "
            f"outputs whole: {whole}\n{final.stderr[-2000:]}"
        )
    return row


# --- params.yaml under the flow's rewrite ------------------------------------------------------

# A process that does what the flow does to params.yaml (overrides in, user's text back), over and over.
REWRITER = """
import json, pathlib, sys
from lsdm.orchestration.params_file import applied_params
repo, overrides = pathlib.Path(sys.argv[1]), json.loads(sys.argv[2])
print("ready", flush=True)
while True:
    with applied_params(repo, overrides):
        pass
"""


def state_leftovers(repo: Path) -> list[str]:
    """params.yaml copies and temp files the flow's rewrite keeps under .dvc/tmp (git-ignored there)."""
    d = repo / ".dvc" / "tmp" / "lsdm-orchestrate"
    return sorted(p.relative_to(repo).as_posix() for p in d.iterdir() if p.name != "run.lock") if d.is_dir() else []


def inject_params(workdir: Path, kills: int, rng: random.Random, logs: Path) -> Row:
    from lsdm.orchestration.params_file import applied_params, recover_params, render_params

    row = Row("params.yaml rewrite")
    repo = make_repo(workdir / "params-repo", tiny_params())
    user = (repo / "params.yaml").read_bytes()
    overridden = render_params(user.decode(), PARAMS_OVERRIDES).encode()
    before = tree(repo)
    cmd = [sys.executable, "-c", REWRITER, str(repo), json.dumps(PARAMS_OVERRIDES)]
    t0 = time.perf_counter()
    for _ in range(5):
        with applied_params(repo, PARAMS_OVERRIDES):
            pass
    row.runtime = (time.perf_counter() - t0) / 5  # one rewrite cycle: the kills spread over many
    for k in range(kills):
        delay = rng.uniform(0.0, 20 * row.runtime)
        if not kill_after(cmd, repo, delay, logs / f"params-{k}.log", ready="ready"):
            continue
        row.kills += 1
        now = (repo / "params.yaml").read_bytes()
        if now not in (user, overridden):
            row.torn += 1
            row.notes.append(f"kill {k} at {delay:.2f}s: params.yaml is neither text ({len(now)} bytes)")
        if stray := not_ignored(repo, new_entries(repo, before, [])):
            row.unignored += 1
            row.notes.append(f"kill {k}: not git-ignored: {stray}")
        recover_params(repo)  # what the next run does first
        left = sorted(set(new_entries(repo, before, [])) | set(temp_names(repo))) + state_leftovers(repo)
        if (repo / "params.yaml").read_bytes() != user:
            row.accepted += 1
            row.notes.append(f"kill {k} at {delay:.2f}s: params.yaml not the user's after the next start")
        if left:
            row.left += len(left)
            row.notes.append(f"kill {k}: left after the next start: {left}")
    row.final_ok = (repo / "params.yaml").read_bytes() == user and run(
        ["git", "status", "--porcelain"], repo
    ).stdout == ""
    return row


def inject_flow(workdir: Path, kills: int, rng: random.Random, logs: Path) -> Row:
    """The Prefect flow (`python -m flows.lsdm_flow`, its own temporary server) killed mid-run."""
    from lsdm.orchestration.params_file import render_params

    row = Row("prefect flow")
    repo = add_flows(make_repo(workdir / "flow-repo", tiny_params()))
    run(["dvc", "repro"], repo)
    user = (repo / "params.yaml").read_bytes()
    # Each run its own temporary server and database: a killed run's workspace slot (a Prefect
    # concurrency lease) would otherwise hold the next run until the lease expires.
    # (No PREFECT_API_URL: the flow starts that temporary server itself, never talks to a configured one.)
    os.environ.pop("PREFECT_API_URL", None)
    penv = lambda name: {"PREFECT_HOME": str(workdir / f"prefect-{name}"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # noqa: E731
    flow = lambda seed: [sys.executable, "-m", "flows.lsdm_flow", json.dumps({"split.seed": seed})]  # noqa: E731
    outs = {s: [str(p) for p in stage_outputs(s, dvc_yaml=repo / "dvc.yaml")] for s in STAGES}
    all_outs = [o for v in outs.values() for o in v]
    t0 = time.perf_counter()
    run(flow(100), repo, extra_env=penv("timing"))
    row.runtime = time.perf_counter() - t0
    before = tree(repo)
    for k, delay in enumerate(delays(0.8 * row.runtime, kills, rng)):  # a run's time varies more than a stage's
        seed = 101 + k  # a new paired subset: the paired stages run again
        if not kill_after(flow(seed), repo, delay, logs / f"flow-{k}.log", extra_env=penv(k)):
            row.notes.append(f"kill {k}: the flow ended before {delay:.1f}s")
            continue
        row.kills += 1
        now = (repo / "params.yaml").read_bytes()
        if now not in (user, render_params(user.decode(), {"split.seed": seed}).encode()):
            row.torn += 1
            row.notes.append(f"kill {k} at {delay:.1f}s: params.yaml is neither text")
        dvc_torn(repo, row, f"kill {k} at {delay:.1f}s")  # the next flow run repairs it itself; this status needs it
        status = dvc_status(repo)
        for s in STAGES:
            check_outputs(repo, outs[s], s in status, row, f"kill {k} at {delay:.1f}s, stage {s}")
        if stray := not_ignored(repo, new_entries(repo, before, all_outs)):
            row.unignored += 1
            row.notes.append(f"kill {k}: not git-ignored: {stray}")
    final = run(flow(100), repo, check=False, extra_env=penv("final"))
    back = (repo / "params.yaml").read_bytes() == user
    repro = run(["dvc", "repro"], repo, check=False)
    status = dvc_status(repo)
    row.waiting = len(set(new_entries(repo, before, all_outs)) | set(temp_names(repo)))
    again = run(["dvc", "repro", "--force"], repo, check=False)  # every stage's next start
    left = sorted(set(new_entries(repo, before, all_outs)) | set(temp_names(repo))) + state_leftovers(repo)
    row.left = len(left)
    if left:
        row.notes.append(f"left after the next start: {describe(repo, left)}")
    row.final_ok = final.returncode == 0 and back and repro.returncode == 0 and status == {} and again.returncode == 0
    if not row.final_ok:
        row.notes.append(
            f"final flow exited {final.returncode}, params back {back}, repro {repro.returncode}, "
            f"status {status}, forced repro {again.returncode}"
        )
    return row


# --- the table -------------------------------------------------------------------------------

COLUMNS = (
    "target",
    "T (s)",
    "kills",
    "up to date",
    "accepted partial",
    "torn",
    "unignored",
    "waiting",
    "left",
    "DVC state torn",
    "final ok",
)


def table(rows: list[Row]) -> str:
    cells = [
        [
            r.target,
            f"{r.runtime:.1f}",
            r.kills,
            r.up_to_date,
            r.accepted,
            r.torn,
            r.unignored,
            r.waiting,
            r.left,
            r.dvc_torn,
            "yes" if r.final_ok else "NO",
        ]
        for r in rows
    ]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in cells]
    return "\n".join(lines)


def inject(workdir: Path, stages: list[str], kills: int, params_kills: int, flow_kills: int, seed: int) -> list[Row]:
    """Every target in turn, in `workdir`: the stages in one repo (each after its upstream), then params.yaml, then the flow."""
    rng, logs = random.Random(seed), workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    if stages:
        repo = make_repo(workdir / "repo", tiny_params())
        for stage in (s for s in STAGES if s in stages):
            rows.append(inject_stage(repo, stage, kills, rng, logs))
            print(f"{stage}: {rows[-1]}", file=sys.stderr, flush=True)
    if params_kills:
        rows.append(inject_params(workdir, params_kills, rng, logs))
        print(f"params: {rows[-1]}", file=sys.stderr, flush=True)
    if flow_kills:
        rows.append(inject_flow(workdir, flow_kills, rng, logs))
        print(f"flow: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--stages", nargs="*", default=list(STAGES), choices=STAGES, help="default: every stage; none: skip them"
    )
    ap.add_argument("--kills", type=int, default=5, help="kills per stage (default: %(default)s)")
    ap.add_argument(
        "--params-kills", type=int, default=20, help="kills of the params.yaml rewrite (default: %(default)s)"
    )
    ap.add_argument(
        "--flow-kills", type=int, default=3, help="kills of the Prefect flow (default: %(default)s; 0: none)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the scratch repositories and logs")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    workdir = Path(tempfile.mkdtemp(prefix="lsdm-faults-"))
    t0 = time.perf_counter()
    try:
        rows = inject(workdir, args.stages, args.kills, args.params_kills, args.flow_kills, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(rows))
    for r in rows:
        for note in r.notes:
            print(f"- {r.target}: {note}")
    kept = f"; kept {workdir}" if args.keep else ""
    print(f"{sum(r.kills for r in rows)} kills in {time.perf_counter() - t0:.0f}s (seed {args.seed}){kept}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

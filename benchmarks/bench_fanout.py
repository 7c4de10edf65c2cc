"""Benchmark (not a test): a sweep fanned out over 1 and then 2 local Prefect workers.

    python benchmarks/bench_fanout.py                      # tiny sweep (2 counts x 2 seeds, LSDM only), 1 vs 2 workers
    python benchmarks/bench_fanout.py --full --workers 2   # params.yaml's own sweep at its own budget
    python benchmarks/bench_fanout.py --full --workers 2 --keep   # ... and copy its table and report here

In throwaway directories it builds what a lab would have: a bare git remote, a directory DVC remote,
a Prefect server (SQLite, analytics off), the deployments of prefect.yaml, and one process worker per
requested count, each in its own clone, pinned to one thread (LSDM_THREADS=1) and taking one point
at a time. The sweep's parent flow runs in this process (so workers run only points), and the script
prints the wall time of the shared stages and of the points, and the speed-up of 2 workers over 1 on
the same grid (the second run draws other pairs, split seeds + 100, so no point comes from DVC's run
cache; its shared stages are DVC-skipped, which is why only the points are compared).

`--keep` copies the sweep's results/sweep/, reports/comparison.md and reports/comparison/ back into
this checkout (what `make sweep` would have written here). The timings are also written, with the
machine, date and commit, to results/benchmarks/bench_fanout-<tiny|shipped>.json (`--json` elsewhere),
which the README's fan-out figures are rendered from (`python -m lsdm.reports.readme`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from bench_pipeline import BIN, ROOT, env, make_clone, sh
from record import RESULTS, Run

from lsdm.presets import tiny


def start(cmd: list[str], cwd: Path, extra: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=cwd, env={**env(), **extra}, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def server(home: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    extra = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
    }
    proc = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        home,
        extra,
        home / "server.log",
    )
    import httpx

    for _ in range(180):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, extra
        time.sleep(1)
    raise SystemExit(f"prefect server did not start:\n{(home / 'server.log').read_text()[-3000:]}")


def figures(mode: str, timings: dict[int, dict]) -> dict:
    """The timings per worker count, and the speed-up of the most workers over the fewest on the points."""
    a, b = min(timings), max(timings)
    return {
        "params": mode,
        "timings": {str(n): t for n, t in timings.items()},
        "speedup_points": timings[a]["points"] / timings[b]["points"] if b != a else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="params.yaml as shipped (its sweep section) instead of tiny")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time, in order")
    ap.add_argument("--keep", action="store_true", help="copy the last sweep's table and report into this checkout")
    ap.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where the timings go (default: results/benchmarks/bench_fanout-<tiny|shipped>.json)",
    )
    args = ap.parse_args()
    run = Run()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if not args.full:  # the sweep section replaced, not merged: no budget overrides, no variants
        params = {**tiny(params), "methods": [], "sweep": {"counts": [2, 3], "seeds": [0, 1]}}
    base = Path(tempfile.mkdtemp(prefix="lsdm-fanout-"))
    origin, parent = base / "origin.git", make_clone(base / "parent", params)
    for d in ("flows", "benchmarks"):
        shutil.copytree(ROOT / d, parent / d, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "prefect.yaml", parent / "prefect.yaml")
    sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], base)
    for cmd in (
        ["git", "remote", "add", "origin", str(origin)],
        ["dvc", "remote", "add", "-d", "store", str(base / "store")],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "flows and remotes"],
        ["git", "push", "-q", "origin", "main"],
    ):
        sh(cmd, parent)
    proc, extra = server(base)
    os.environ.update(extra)  # the parent flow runs here, against that server
    workers: list[subprocess.Popen] = []
    try:
        prefect = [str(BIN / "prefect"), "--no-prompt"]
        subprocess.run(
            [*prefect, "work-pool", "create", "gpu", "--type", "process"],
            cwd=parent,
            env={**env(), **extra},
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*prefect, "deploy", "--all"], cwd=parent, env={**env(), **extra}, check=True, capture_output=True
        )
        sys.path.insert(0, str(ROOT))
        from flows.lsdm_flow import sweep

        timings, seeds = {}, params["sweep"]["seeds"]
        for i, n in enumerate(args.workers):
            while len(workers) < n:  # each worker: its own clone, one point at a time, one thread
                w = len(workers)
                clone = base / f"worker-{w}"
                sh(["git", "clone", "-q", str(origin), str(clone)], base)
                w_env = {
                    **extra,
                    "LSDM_REPO": str(clone),
                    "LSDM_WORKDIR": str(base / f"workspaces-{w}"),
                    "LSDM_THREADS": "1",
                    "OMP_NUM_THREADS": "1",
                }
                workers.append(
                    start(
                        [*prefect, "worker", "start", "--pool", "gpu", "--type", "process", "--limit", "1"],
                        clone,
                        w_env,
                        base / f"worker-{w}.log",
                    )
                )
            t0 = time.perf_counter()
            # later runs draw other pairs (split seeds + 100 i): nothing comes from DVC's run cache
            result = sweep(seeds=[s + 100 * i for s in seeds], tag=f"bench-w{n}", repo=str(parent), timeout=4 * 3600)
            wall = time.perf_counter() - t0
            timings[n] = {
                "wall": wall,
                "shared": result["shared_seconds"],
                "points": result["points_seconds"],
                "n_points": len(result["points"]),
            }
            hosts = sorted(
                {p["result"]["workspace"].split("/workspaces-")[1].split("/")[0] for p in result["points"].values()}
            )
            print(
                f"{n} worker(s): {len(result['points'])} points in {result['points_seconds']:.0f} s "
                f"(shared stages {result['shared_seconds']:.0f} s, total {wall:.0f} s); workers used: {hosts}",
                flush=True,
            )
        if len(timings) > 1:
            a, b = min(timings), max(timings)
            print(f"speed-up of {b} workers over {a} on the points: {timings[a]['points'] / timings[b]['points']:.2f}x")
        print(json.dumps(timings, indent=2))
        mode = "shipped" if args.full else "tiny"
        run.write(args.json or RESULTS / f"bench_fanout-{mode}.json", figures(mode, timings))
        if args.keep:
            for rel in ("results/sweep", "reports/comparison"):
                shutil.rmtree(ROOT / rel, ignore_errors=True)
                shutil.copytree(parent / rel, ROOT / rel)
            shutil.copy(parent / "reports/comparison.md", ROOT / "reports/comparison.md")
            print(f"copied results/sweep/ and reports/comparison* from {parent}")
    finally:
        with contextlib.suppress(Exception):  # this process's flow logs reach the server before it stops
            from prefect.logging.handlers import APILogHandler

            APILogHandler.flush()
        for w in workers:
            stop(w)
        stop(proc)
    print(f"workspaces, logs and remotes: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sweeps over the paired subset: DVC experiments over `split.n_paired_per_class` x `split.seed`,
run one at a time through the DVC queue, collected into one tidy table, then the comparison report.

    lsdm sweep                               # params.yaml's sweep: section (make sweep)
    lsdm sweep --counts 1 3 --seeds 0 -S latent.steps=50   # extra -S overrides for every run
    lsdm sweep --collect-only --tag sweep-20260101T120000  # re-collect an earlier sweep
    lsdm sweep --fanout                               # the same, over every worker of the Prefect pool
    lsdm sweep --name unpaired_pool                   # a named sweep of params.yaml's `sweeps:` section
    lsdm sweep --combine class_aware class_aware_30   # named sweeps run apart, as the shipped one
    lsdm sweep --combine filtered_draw class_aware --replace  # the first's samplers rerun (a new default)

What runs is `sweep:` in params.yaml (counts, seeds, and `set`: the overrides of every run, e.g. the
baselines and the training budget; `variants`: more LSDM runs per cell), or with `--name NAME` the
sweep `sweeps.NAME`, written to results/sweep-NAME/ and reports/comparison-NAME.md instead; the
Prefect deployment `lsdm/sweep` (`--fanout`) plans the same grid (`plan_sweep`) but fans it out,
one `lsdm/point` flow run per point (lsdm.orchestration.fanout), then collects and reports here. The
sweep holds the workspace lock (lsdm.lock) from planning to its report; `--fanout` leaves that to the
Prefect flow it starts. Each local run is
`dvc exp run --queue -S split.n_paired_per_class=N -S split.seed=S --name TAG-nN-sS`; `dvc queue start -j 1`
runs them one after another (DVC skips fit_latent and encode: the latent pool does not depend on these
params, so every run shares the cached autoencoder and latents). Counts larger than the smallest class
are skipped and flagged, not run. Data without classes (a flat image folder) sweeps `split.n_paired`
instead, capped by the training set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lsdm import paths
from lsdm.config import parse_assignments
from lsdm.errors import ParamsError
from lsdm.lock import BUSY_EXIT, WorkspaceBusy, cli_timeout, workspace_lock
from lsdm.orchestration.sweep.collecting import META, collect_and_report
from lsdm.orchestration.sweep.combining import combine_sweeps
from lsdm.orchestration.sweep.planning import check
from lsdm.orchestration.sweep.running import run_sweep
from lsdm.orchestration.tools import stream


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lsdm sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=None, help="paired counts (default: sweep.counts)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="split seeds (default: sweep.seeds)")
    ap.add_argument("--jobs", type=int, default=1, help="dvc queue workers (default 1: one run at a time)")
    ap.add_argument(
        "-S",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="param override for every run, after sweep.set, e.g. -S matcher.steps=500",
    )
    ap.add_argument("--tag", default=None, help="experiment name prefix (default: sweep-<UTC time>)")
    ap.add_argument(
        "--collect-only", action="store_true", help="do not run; collect experiments named TAG* (all if no tag)"
    )
    ap.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    ap.add_argument(
        "--name",
        default=None,
        help="run the sweep `sweeps.NAME` of params.yaml (default: its `sweep:` section); written to "
        "results/sweep-NAME/ and reports/comparison-NAME.md",
    )
    ap.add_argument(
        "--combine",
        nargs="+",
        default=None,
        metavar="NAME",
        help="do not run; combine the named sweeps' tables (pieces of one grid, run apart) into the "
        "shipped sweep's results/sweep/ (with --name: results/sweep-NAME/) and its report",
    )
    ap.add_argument(
        "--replace",
        action="store_true",
        help="with --combine: the first sweep reran some samplers of the others' grid (e.g. LSDM alone "
        "after its default changed); its rows replace theirs",
    )
    ap.add_argument("--repo", default=".", help="repository root (default: .)")
    ap.add_argument(
        "--fanout",
        action="store_true",
        help="submit it to the Prefect work pool instead (deployment lsdm/sweep: one run per point on any "
        "worker, README 'Sweeps over many workers'), and watch it",
    )
    args = ap.parse_args(argv)
    root = Path(args.repo).resolve()
    if args.fanout:
        check(
            root, args.counts, args.seeds, parse_assignments(args.overrides), args.name
        )  # fails here, not on a worker
        params = {
            "counts": args.counts,
            "seeds": args.seeds,
            "overrides": parse_assignments(args.overrides) or None,
            "tag": args.tag,
            "timeout": args.timeout,
            "repo": str(root),
            "name": args.name,
        }
        return stream(
            [
                "prefect",
                "deployment",
                "run",
                "lsdm/sweep",
                "--params",
                json.dumps({k: v for k, v in params.items() if v is not None}),
                "--watch",
            ],
            root,
        )
    try:
        if args.combine:
            with workspace_lock(root, "lsdm sweep --combine", timeout=cli_timeout()):
                combine_sweeps(root, args.combine, args.name, args.tag, args.replace)
            return 0
        if args.collect_only:  # keeps what the sweep itself recorded (status, wall time) when the tag matches
            with workspace_lock(root, "lsdm sweep --collect-only", timeout=cli_timeout()):
                meta_file = root / paths.sweep_dir(args.name) / META
                meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
                meta = meta if meta.get("tag") == args.tag else {"tag": args.tag, "name": args.name}
                collect_and_report(root, args.tag, {**meta, "collected_only": True})
            return 0
        _, meta = run_sweep(
            root,
            args.counts,
            args.seeds,
            parse_assignments(args.overrides),
            args.tag,
            args.jobs,
            args.timeout,
            args.name,
        )
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except WorkspaceBusy as e:
        print(f"lsdm sweep: {e}", file=sys.stderr)
        return BUSY_EXIT
    return 0 if all(s == "Success" for s in meta["status"].values()) else 1

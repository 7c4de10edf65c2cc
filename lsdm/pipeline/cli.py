"""`lsdm <stage>`: run one DVC stage with the parameters in params.yaml (`lsdm sweep`, `lsdm weights`: their own).

Parameters are validated before any work starts, then the cheap checks of `lsdm check`
(lsdm.checks.check_stage); bad parameters or data end with a one-paragraph error naming the key or
file, the value and what is allowed (exit status 2), and write nothing. A stage holds the workspace
lock (lsdm.lock) while it runs; one that finds the workspace busy waits up to $LSDM_LOCK_TIMEOUT
seconds, then says who holds it (exit status 75). `lsdm check` without `--stamp` writes nothing and
takes no lock.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from lsdm import interrupt, paths
from lsdm.config import PARAMS_FILE, load_params, resolve_threads
from lsdm.errors import DataError, ParamsError
from lsdm.lock import BUSY_EXIT, WorkspaceBusy, cli_timeout, workspace_lock
from lsdm.pipeline import STAGES

# Commands beside the plain stages: the baselines' foreach stage, and the sweep's comparison report.
EXTRA = {
    "fit_baseline": "lsdm.pipeline.fit_baseline",
    "evaluate_baseline": "lsdm.pipeline.evaluate_baseline",
    "compare": "lsdm.reports.comparison",
}


# Commands that move tables or text only: no torch to configure (and none to import: about 2 s of every
# run of the stage).
NO_TORCH = {"check", "prepare", "split", "report", "compare"}

# What a stage that ran on a GPU prints last (stderr), before its peak in MiB.
CUDA_PEAK = "peak CUDA memory allocated:"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="lsdm", description=__doc__.split("\n")[0])
    ap.add_argument(
        "stage",
        choices=[*STAGES, *EXTRA, "sweep", "weights"],
        help="a stage of dvc.yaml (`check`: validate params, device and data, writing nothing), "
        "`sweep` (see `lsdm sweep --help`) or `weights` (`lsdm weights --help`)",
    )
    ap.add_argument("--params", default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    ap.add_argument(
        "--method", default=None, help="fit_baseline / evaluate_baseline: the baseline (default: all of `methods`)"
    )
    ap.add_argument(
        "--stamp", action="store_true", help=f"check: on success write {paths.CHECK_STAMP} (the DVC stage's output)"
    )
    return ap.parse_args(argv)


def trace(path: str, args: argparse.Namespace, modules: list[str]) -> None:
    """Append what this stage imported (beyond params validation) and read, as one JSON line."""
    import json

    from lsdm.io import READS

    line = {
        "stage": args.stage,
        "method": args.method,
        "modules": [m for m in modules if m.split(".")[0] == "lsdm"],
        "reads": sorted(READS),
    }
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def report_cuda_peak(stage: str) -> None:
    """On a GPU, say how much of its memory the stage held at most (benchmarks/bench_pipeline.py
    reads this line; the process's own RSS says nothing of the GPU's)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        print(f"lsdm {stage}: {CUDA_PEAK} {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    interrupt.install()  # first: Ctrl-C stops every command at any moment, even where a library swallowed it
    os.environ.setdefault("DO_NOT_TRACK", "1")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:  # `lsdm sweep ...`: DVC experiments over the paired subset (its own options)
        from lsdm.orchestration.sweep import main as sweep

        return sweep(argv[1:])
    if argv[:1] == ["weights"]:  # `lsdm weights [fetch ...]`: the optional metrics' pretrained files (lsdm/weights.py)
        from lsdm.weights import main as weights

        return weights(argv[1:])
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        from lsdm.checks import check_interpolation, check_stage  # here: `lsdm sweep` and `--help` start without pandas

        check_stage(params, args.stage, uses_torch=args.stage not in NO_TORCH)
        if args.stage == "check":
            check_interpolation(args.params)
        if args.stage not in NO_TORCH:
            n, why = resolve_threads(params.base.threads)
            print(f"lsdm {args.stage}: {n} CPU threads ({why})", file=sys.stderr)
        who = f"lsdm {args.stage}" + (f" --method {args.method}" if args.method else "")
        writes = not (args.stage == "check" and not args.stamp)
        with workspace_lock(os.getcwd(), who, timeout=cli_timeout()) if writes else contextlib.nullcontext():
            if writes:
                from lsdm.io import clean_stage_leftovers

                items = [args.method] if args.method else params.methods  # a foreach stage's (`fit_baseline@<method>`)
                if cleaned := clean_stage_leftovers(args.stage, items):  # what a killed run of this stage left
                    print(
                        f"lsdm {args.stage}: cleaned up after a killed run: {', '.join(map(str, cleaned))}",
                        file=sys.stderr,
                    )
            before = set(sys.modules)
            module = importlib.import_module(EXTRA.get(args.stage, f"lsdm.pipeline.{args.stage}"))
            interrupt.check()  # a Ctrl-C swallowed while the stage's libraries were imported
            if args.stage == "check":
                module.run(params, stamp=args.stamp)
            else:
                module.run(params, method=args.method) if args.method else module.run(params)
            if os.environ.get("LSDM_TRACE"):
                trace(os.environ["LSDM_TRACE"], args, sorted(set(sys.modules) - before))
            report_cuda_peak(args.stage)
    except (ParamsError, DataError, FileNotFoundError) as e:
        print(f"lsdm {args.stage}: error: {e}", file=sys.stderr)
        return 2
    except WorkspaceBusy as e:
        print(f"lsdm {args.stage}: {e}", file=sys.stderr)
        return BUSY_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())

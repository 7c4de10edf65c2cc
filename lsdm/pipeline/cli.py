"""`lsdm <stage>`: run one DVC stage with the parameters in params.yaml.

Parameters are validated before any work starts; bad parameters or data end with a one-paragraph
error naming the key or file, the value and what is allowed (exit status 2), and write nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lsdm.config import PARAMS_FILE, load_params, resolve_threads
from lsdm.errors import DataError, ParamsError
from lsdm.pipeline import STAGES

# Commands beside the plain stages: the baselines' foreach stage, and the sweep's comparison report.
EXTRA = {
    "fit_baseline": "lsdm.pipeline.fit_baseline",
    "evaluate_baseline": "lsdm.pipeline.evaluate_baseline",
    "compare": "lsdm.reports.comparison",
}


# Commands that move tables or text only: no torch to configure (and none to import).
NO_TORCH = {"prepare", "split", "report", "compare"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="lsdm", description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=[*STAGES, *EXTRA, "check", "sweep"],
                    help="a stage of dvc.yaml, `check` to validate params, or `sweep` (see `lsdm sweep --help`)")  # fmt: skip
    ap.add_argument("--params", default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    ap.add_argument("--method", default=None, help="fit_baseline / evaluate_baseline: the baseline (default: all of `methods`)")
    return ap.parse_args(argv)


def trace(path: str, args: argparse.Namespace, modules: list[str]) -> None:
    """Append what this stage imported (beyond params validation) and read, as one JSON line."""
    import json

    from lsdm.io import READS

    line = {"stage": args.stage, "method": args.method, "modules": [m for m in modules if m.split(".")[0] == "lsdm"],
            "reads": sorted(READS)}  # fmt: skip
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:  # `lsdm sweep ...`: DVC experiments over the paired subset (its own options)
        from lsdm.orchestration.sweep import main as sweep

        return sweep(argv[1:])
    args = parse_args(argv)
    try:
        params = load_params(args.params)
        if args.stage == "check":
            print(f"{args.params}: ok")
            return 0
        if args.stage not in NO_TORCH:
            n, why = resolve_threads(params.base.threads)
            print(f"lsdm {args.stage}: {n} CPU threads ({why})", file=sys.stderr)
        from lsdm.io import clean_stage_leftovers

        items = [args.method] if args.method else params.methods  # a foreach stage's (`fit_baseline@<method>`)
        if cleaned := clean_stage_leftovers(args.stage, items):  # what a killed run of this stage left
            print(f"lsdm {args.stage}: cleaned up after a killed run: {', '.join(map(str, cleaned))}", file=sys.stderr)
        before = set(sys.modules)
        module = importlib.import_module(EXTRA.get(args.stage, f"lsdm.pipeline.{args.stage}"))
        module.run(params, method=args.method) if args.method else module.run(params)
        if os.environ.get("LSDM_TRACE"):
            trace(os.environ["LSDM_TRACE"], args, sorted(set(sys.modules) - before))
    except (ParamsError, DataError, FileNotFoundError) as e:
        print(f"lsdm {args.stage}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A sweep's experiments as one tidy table, its record and its sample grids (results/sweep/, or
results/sweep-NAME/), then the comparison report.

The table (sweep.parquet and .csv) has one row per experiment x sampler: the experiment's name and rev,
`n_paired_per_class` / `n_paired`, `seed`, `method` (lsdm or a baseline), `sampler` (latent_flow gives
one per NFE), `nfe`, the training time, and every `eval.*` value that experiment's evaluation files hold
(results/evaluate/ for LSDM, results/baselines/<method>/eval/ for the baselines), flattened with dots.
`dvc exp show` gives the headline metrics.json; the details.json beside it is read from the
experiment's git commit and merged in, so every column keeps its name wherever the registry files the
value. Whatever metrics exist are taken; none are required.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm import paths
from lsdm.evaluation.registry import DETAILS_FILE, METRICS_FILE, merge
from lsdm.orchestration.dvc import dvc
from lsdm.orchestration.git import git_file, git_files
from lsdm.orchestration.sweep.planning import variant_of
from lsdm.reports.stats import count_column

TABLE, TABLE_CSV, META, GRIDS = "sweep.parquet", "sweep.csv", "sweep.json", "grids"  # in paths.sweep_dir(name)
#: the rows' order, in every table a sweep writes (collected, combined, replaced)
ROW_ORDER = ["n_paired_per_class", "n_paired", "seed", "method", "nfe"]

# each stage's metrics file as `dvc exp show` names it
LSDM_EVAL = paths.EVAL_METRICS.as_posix()
FIT_MATCHER, FIT_LATENT = ((paths.live_dir(stage) / METRICS_FILE).as_posix() for stage in ("fit_matcher", "fit_latent"))
PSEUDO = paths.PSEUDO_METRICS.as_posix()
BASELINES = paths.BASELINE_RESULTS.as_posix()
BASELINE_RE = re.compile(rf"^{re.escape(BASELINES)}/(?P<method>[^/]+)/(?:(?P<sub>[^/]+)/)?{re.escape(METRICS_FILE)}$")
NFE_RE = re.compile(r"_nfe(\d+)$")
# a run's own sample grids: LSDM's (paths.SAMPLES) and each baseline's, not the other PNGs a commit holds
# (committed sweeps' grids under results/sweep*/, benchmark plots under results/benchmarks/)
SAMPLE_GRID_RE = re.compile(
    rf"({re.escape(paths.SAMPLES.as_posix())}|{re.escape(BASELINES)}/[^/]+/eval/samples/[^/]+\.png)$"
)
UNDER_RESULTS = f"{paths.RESULTS.as_posix()}/"

#: stage pseudo_label's measured quality on the unpaired pool (results/pseudo_label/metrics.json), per LSDM row:
#: its labels (`pseudo_*`) and its image classifier's (`pseudo_classifier_*`)
PSEUDO_KEYS = ("accuracy", "coverage", "accuracy_confident")


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The table in `ROW_ORDER` (stable: rows that tie keep their order), indexed afresh."""
    return df.sort_values([c for c in ROW_ORDER if c in df], kind="stable").reset_index(drop=True)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {dotted.key: scalar}; lists of numbers kept as JSON text, other lists dropped."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(d, (int, float, str, bool)) or d is None:
        out[prefix] = d
    elif isinstance(d, list) and all(isinstance(x, (int, float)) for x in d):
        out[prefix] = json.dumps(d)
    return out


def _exp_entries(show: list[dict]) -> Iterable[tuple[str, str, dict]]:
    """(name, rev, data) of every experiment in `dvc exp show --json` output (the baselines too)."""
    for entry in show:
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("data"):
                    yield rev.get("name") or exp.get("name") or rev["rev"][:7], rev["rev"], rev["data"]


# (experiment commit, path) -> the JSON of that file in that commit, or None
Reader = Callable[[str, str], "dict | None"]


def git_reader(root: Path) -> Reader:
    """Reads a file of an experiment's commit (the results are git-tracked `cache: false` outputs)."""

    def read(rev: str, path: str) -> dict | None:
        blob = git_file(root, rev, path)
        return json.loads(blob) if blob and blob.strip() else None

    return read


def _is_eval(path: str) -> bool:
    hit = BASELINE_RE.match(path)
    return path == LSDM_EVAL or bool(hit and hit["sub"] != "train")


def _metric_data(data: dict, rev: str | None = None, read: Reader | None = None) -> dict[str, dict]:
    """Each metrics file's values; an evaluation's with its details file (same keys) merged in."""
    out = {path: (m or {}).get("data") or {} for path, m in (data.get("metrics") or {}).items()}
    for path in [p for p in out if _is_eval(p)] if read and rev else []:
        details = read(rev, str(Path(path).with_name(DETAILS_FILE)))
        if isinstance(details, dict):
            out[path] = merge(out[path], details)
    return out


def _seconds(summary: dict, section: str) -> float | None:
    v = (summary.get(section) or {}).get("train_seconds")
    return float(v) if isinstance(v, (int, float)) else None


def experiment_rows(name: str, rev: str, data: dict, read: Reader | None = None) -> list[dict]:
    """The tidy rows of one experiment: LSDM's and each baseline sampler's (`read`: its details files)."""
    params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
    split = params.get("split", {})
    base = {
        "experiment": name,
        "rev": rev,
        "n_paired_per_class": split.get("n_paired_per_class"),
        "n_paired": split.get("n_paired"),
        "seed": split.get("seed"),
        "n_unpaired": split.get("n_unpaired"),  # None: every other training image
        "train_seed": (params.get("matcher") or {}).get("seed"),  # a sweep's training seed sets them all
        "task": params.get("task"),
        "data_source": (params.get("data") or {}).get("source"),
    }
    metrics = _metric_data(data, rev, read)
    variant = variant_of(name)
    lsdm = variant or "lsdm"  # a variant run is LSDM alone, under the variant's name
    rows = []
    if LSDM_EVAL in metrics or FIT_MATCHER in metrics:
        m = metrics.get(LSDM_EVAL, {})
        fit = metrics.get(FIT_MATCHER, {})
        latent = metrics.get(FIT_LATENT, {}).get("latent") or {}
        measured = metrics.get(PSEUDO, {}).get("pseudo") or {}
        pseudo, classifier = measured.get("unpaired") or {}, measured.get("classifier") or {}
        rows.append(
            {
                **base,
                "method": lsdm,
                "sampler": lsdm,
                "nfe": 1,
                "matcher": (fit.get("matcher") or {}).get("variant"),
                "train_seconds": _seconds(fit, "matcher"),
                "train_seconds_shared": _seconds(metrics.get(FIT_LATENT, {}), "latent"),
                "pool_size": latent.get("n_images"),
                "recon_test_mse": latent.get("test_mse"),
                **{f"pseudo_{k}": pseudo.get(k) for k in PSEUDO_KEYS},
                **{f"pseudo_classifier_{k}": classifier.get(k) for k in PSEUDO_KEYS},
                **flatten({"eval": {k: v for k, v in m.get("eval", {}).items() if k != "references"}}),
            }
        )
        times = m.get("eval", {}).get("stage_seconds") or {}  # the same figures, as evaluate read them
        for col, stage in (("train_seconds", "fit_matcher"), ("train_seconds_shared", "fit_latent")):
            if rows[-1][col] is None and isinstance(times.get(stage), (int, float)):
                rows[-1][col] = float(times[stage])
        for ref, ev in (m.get("eval", {}).get("references") or {}).items():  # the task's (bicubic), same test set
            rows.append(
                {**base, "method": ref, "sampler": ref, "nfe": 0, "train_seconds": 0.0, **flatten({"eval": ev})}
            )
    if variant:  # its baselines' files, if any, are the commit's, not this run's
        return rows
    by_method: dict[str, dict] = {}
    for path, m in metrics.items():
        hit = BASELINE_RE.match(path)
        if hit:
            by_method.setdefault(hit["method"], {})[hit["sub"] or ""] = m
    for method, files in sorted(by_method.items()):
        train = files.pop("train", {})
        common = {**base, "method": method, "train_seconds": _seconds(train, "baseline")}
        evals = []  # (sampler, eval dict)
        for sub, m in sorted(files.items()):
            ev = m.get("eval", {})
            nested = {k: v for k, v in ev.items() if isinstance(v, dict) and k.startswith(method)}
            if nested:
                evals += sorted(nested.items())
            elif ev:  # a flat eval.* of the method's one sampler
                evals.append((sub if sub not in ("", "eval") else method, ev))
        if not evals:
            evals = [(method, {})]
        for sampler, ev in evals:
            hit = NFE_RE.search(sampler)
            nfe = ev.get("nfe") if isinstance(ev.get("nfe"), (int, float)) else (int(hit[1]) if hit else 1)
            rows.append({**common, "sampler": sampler, "nfe": nfe, **flatten({"eval": ev})})
    return rows


def collect(show: list[dict], tag: str | None = None, read: Reader | None = None) -> pd.DataFrame:
    """`dvc exp show --json` output -> the tidy table (experiments whose name starts with `tag`), with
    each evaluation's details file as `read` gives it (`git_reader`: from the experiment's commit)."""
    rows = []
    for name, rev, data in _exp_entries(show):
        if tag is None or str(name).startswith(tag):
            rows += experiment_rows(name, rev, data, read)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    front = ["experiment", "rev", "n_paired_per_class", "n_paired", "seed", "method", "sampler", "nfe", "train_seconds"]
    return sort_rows(df[[c for c in front if c in df] + sorted(c for c in df if c not in front)])


def grid_cell(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cell whose sample grids a sweep shows: the smallest paired count, first split seed,
    first training seed (one run per sampler: each grid file comes from one experiment)."""
    by = [count_column(df), "seed", *(["train_seed"] if "train_seed" in df else [])]
    key = df[by].apply(lambda col: col.map(str))  # NaN never equals NaN (no training seed): compare as text
    first = key.iloc[df.reset_index(drop=True).sort_values(by, kind="stable").index[0]]
    return df[(key == first).all(axis=1).to_numpy()]


def extract_grids(df: pd.DataFrame, root: Path, out: Path = paths.SWEEP_DIR / GRIDS) -> list[Path]:
    """The sample grids (PNG under results/) of the experiments at the smallest paired count and
    first seed, copied out of their git commits: one file per grid, named after its path (a
    variant's, `<variant>__evaluate__samples.png`, after its LSDM alone)."""
    if df.empty:
        return []
    cell = grid_cell(df).drop_duplicates("experiment")
    out = root / out
    if out.exists():  # an earlier sweep's grids must not pass for this one's
        shutil.rmtree(out)
    found = []
    for _, exp in cell.iterrows():
        variant = variant_of(exp["experiment"])
        for f in git_files(root, exp["rev"], UNDER_RESULTS):
            if not SAMPLE_GRID_RE.match(f) or (variant and f != paths.SAMPLES.as_posix()):
                continue
            blob = git_file(root, exp["rev"], f)
            if blob is not None:
                name = f.removeprefix(UNDER_RESULTS).replace("/", "__")
                dest = out / (f"{variant}__{name}" if variant else name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(blob)
                found.append(dest)
    return found


def write_table(df: pd.DataFrame, root: Path, meta: dict) -> None:
    from lsdm.io import atomic_path, write_json

    out = root / paths.sweep_dir(meta.get("name"))
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / TABLE) as tmp:
        df.to_parquet(tmp, index=False)
    with atomic_path(out / TABLE_CSV) as tmp:
        df.to_csv(tmp, index=False)
    write_json(meta, out / META)


def commits(baseline: str | list[str] | None) -> list[str]:
    """A sweep record's `baseline`: the commit it was queued from, or the commits of a sweep queued in goes."""
    return [baseline] if isinstance(baseline, str) else list(baseline or [])


def collect_and_report(root: Path, tag: str | None, meta: dict) -> pd.DataFrame:
    """`dvc exp show --json` -> results/sweep/ (table, meta, grids) and reports/comparison.md.

    The experiments are those of the commit the sweep was queued from (`meta["baseline"]`, or a list
    of commits for one queued in several goes), so a commit made while the sweep runs does not hide
    them; without it, those of every commit (slow in a long history)."""
    revs = [arg for rev in commits(meta.get("baseline")) for arg in ("--rev", rev)] or ["--all-commits"]
    show = json.loads(dvc(["exp", "show", "--json", *revs], root).stdout)
    df = collect(show, tag, git_reader(root))
    out = paths.sweep_dir(meta.get("name"))
    grids = extract_grids(df, root, out / GRIDS)
    meta = {
        **meta,
        "rows": len(df),
        "experiments": int(df["experiment"].nunique()) if len(df) else 0,
        "grids": [str(g.relative_to(root)) for g in grids],
    }
    write_table(df, root, meta)
    print(f"sweep: {len(df)} rows from {meta['experiments']} experiments -> {out / TABLE}, {out / TABLE_CSV}")
    from lsdm.reports.comparison import write_report

    report = write_report(df, meta, root)
    print(f"sweep: comparison report -> {report}")
    return df

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

The table (results/sweep/sweep.parquet and .csv) has one row per experiment x sampler: the
experiment's name and rev, `n_paired_per_class` / `n_paired`, `seed`, `method` (lsdm or a baseline),
`sampler` (latent_flow gives one per NFE), `nfe`, the training time, and every `eval.*` value that
experiment's evaluation files hold (results/evaluate/ for LSDM, results/baselines/<method>/eval/ for
the baselines), flattened with dots. `dvc exp show` gives the headline metrics.json; the details.json
beside it is read from the experiment's git commit and merged in, so every column keeps its name
wherever the registry files the value. Whatever metrics exist are taken; none are required.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm import paths
from lsdm.config import PARAMS_FILE, load_params, parse_assignments
from lsdm.errors import ParamsError
from lsdm.evaluation.registry import DETAILS_FILE, merge
from lsdm.lock import BUSY_EXIT, WorkspaceBusy, cli_timeout, workspace_lock
from lsdm.orchestration.dvc import dvc
from lsdm.orchestration.experiments import set_args, start_queue
from lsdm.orchestration.git import git_file, git_files
from lsdm.orchestration.tools import run_tool, stream

TABLE, TABLE_CSV, META, GRIDS = "sweep.parquet", "sweep.csv", "sweep.json", "grids"  # in paths.sweep_dir(name)
LSDM_EVAL = "results/evaluate/metrics.json"
BASELINE_RE = re.compile(r"^results/baselines/(?P<method>[^/]+)/(?:(?P<sub>[^/]+)/)?metrics\.json$")
NFE_RE = re.compile(r"_nfe(\d+)$")
# a run's own sample grids: LSDM's (paths.SAMPLES) and each baseline's, not the other PNGs a commit holds
# (committed sweeps' grids under results/sweep*/, benchmark plots under results/benchmarks/)
SAMPLE_GRID_RE = re.compile(r"results/(evaluate/samples\.png|baselines/[^/]+/eval/samples/[^/]+\.png)$")


# --- planning ----------------------------------------------------------------------------------------


def class_counts(root: Path) -> pd.Series | None:
    """Training images per class (None when the data has no classes); prepares the data if needed."""
    from lsdm.data.pixels import image_meta
    from lsdm.data.schemas import UNLABELLED

    images_path = root / paths.IMAGES
    if not images_path.exists():
        dvc(["repro", "prepare"], root)
    images = image_meta(images_path)
    train = images[(images["split"] == "train")]
    labelled = train[train["label"] != UNLABELLED]
    if labelled.empty:
        return None if len(train) else pd.Series(dtype=int)
    return labelled.groupby("label").size()


def plan(counts: Iterable[int], seeds: Iterable[int], per_class: pd.Series | None, n_train: int | None = None):
    """(runs [(param, count, seed)], skipped [(count, reason)]): counts the data cannot supply are skipped."""
    key = "split.n_paired_per_class" if per_class is not None else "split.n_paired"
    limit = int(per_class.min()) if per_class is not None else n_train
    runs, skipped = [], []
    for n in sorted(set(counts)):
        if limit is not None and n > limit:
            what = f"{limit} training images"
            if per_class is not None:
                what = f"smallest class has {what}"
            skipped.append({"count": n, "reason": f"{key} = {n} skipped: {what}"})
            continue
        runs += [(key, n, s) for s in seeds]
    return runs, skipped


# --- running -----------------------------------------------------------------------------------------


#: stage pseudo_label's measured quality on the unpaired pool (results/pseudo_label/metrics.json), per LSDM row:
#: its labels (`pseudo_*`) and its image classifier's (`pseudo_classifier_*`)
PSEUDO_KEYS = ("accuracy", "coverage", "accuracy_confident")
VARIANT_RE = re.compile(r"-n\d+-s-?\d+(?:-t-?\d+)?--(?P<variant>[a-z][a-z0-9_]*)$")


def grid(
    runs, tag: str, overrides: dict[str, Any], variants: dict[str, dict[str, Any]], train_seeds: Iterable[int] = (0,)
) -> list[tuple[str, dict]]:
    """(experiment name, its overrides) of every run: TAG-nCOUNT-sSEED with the cell's paired count and
    split seed (and -tSEED, every training seed of `train_seed_keys`, when there are several training
    seeds), then `overrides`; each of `variants` adds TAG-nCOUNT-sSEED--NAME, LSDM alone with its keys.
    Every cell's main run comes first, then the variants cell by cell: a variant that changes only how
    LSDM draws (`sample.*`) then finds its cell's matcher in DVC's run cache instead of training it
    again beside it."""
    from lsdm.config import train_seed_keys

    train_seeds = list(train_seeds)
    cells = []
    for key, n, seed in runs:
        for t in train_seeds:
            cell = {key: n, "split.seed": seed, **overrides}
            name = f"{tag}-n{n}-s{seed}"
            if train_seeds != [0]:
                cell.update({k: t for k in train_seed_keys()})
                name += f"-t{t}"
            cells.append((name, cell))
    return cells + [
        (f"{name}--{v}", {**cell, **variant_overrides(extra)}) for v, extra in variants.items() for name, cell in cells
    ]


def queue(points: list[tuple[str, dict]], root: Path) -> list[str]:
    """One `dvc exp run --queue --name NAME -S ...` per point."""
    for name, overrides in points:
        dvc(["exp", "run", "--queue", "--name", name, *set_args(overrides)], root)
        print(f"queued {name}", flush=True)
    return [name for name, _ in points]


def queue_status(root: Path) -> list[dict]:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(repo.experiments.celery_queue.status())


def run_queue(
    names: list[str], root: Path, jobs: int = 1, poll: float = 5.0, timeout: float | None = None
) -> dict[str, str]:
    """JOBS queue workers (`start_queue`, again while tasks wait: workers may leave early), until every
    named task is done; return name -> status."""
    t0, last = time.monotonic(), None
    while True:
        status = {t["name"]: t["status"] for t in queue_status(root) if t.get("name") in names}
        pending = [n for n in names if status.get(n) in ("Queued", "Running", None)]
        if any(status.get(n) in ("Queued", None) for n in pending):
            for n in start_queue(root, jobs):
                print(f"[{time.monotonic() - t0:6.0f}s] started queue worker {n}", flush=True)
        line = ", ".join(f"{s}: {sum(v == s for v in status.values())}" for s in sorted(set(status.values())))
        if line != last:
            print(f"[{time.monotonic() - t0:6.0f}s] {line}", flush=True)
            last = line
        if not pending:
            break
        if timeout is not None and time.monotonic() - t0 > timeout:
            raise TimeoutError(f"sweep still running after {timeout:.0f}s: {pending}")
        time.sleep(poll)
    failed = [n for n, s in status.items() if s != "Success"]
    for n in failed:
        log = dvc(["queue", "logs", n], root, check=False)
        print(f"--- {n}: {status[n]} ---\n{log.stdout[-2000:]}", file=sys.stderr)
    return status


# --- collecting --------------------------------------------------------------------------------------


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
    hit = VARIANT_RE.search(str(name))
    variant = hit["variant"] if hit else None
    lsdm = variant or "lsdm"  # a variant run is LSDM alone, under the variant's name
    rows = []
    if LSDM_EVAL in metrics or "results/fit_matcher/metrics.json" in metrics:
        m = metrics.get(LSDM_EVAL, {})
        fit = metrics.get("results/fit_matcher/metrics.json", {})
        latent = metrics.get("results/fit_latent/metrics.json", {}).get("latent") or {}
        measured = metrics.get(str(paths.PSEUDO_METRICS), {}).get("pseudo") or {}
        pseudo, classifier = measured.get("unpaired") or {}, measured.get("classifier") or {}
        rows.append(
            {
                **base,
                "method": lsdm,
                "sampler": lsdm,
                "nfe": 1,
                "matcher": (fit.get("matcher") or {}).get("variant"),
                "train_seconds": _seconds(fit, "matcher"),
                "train_seconds_shared": _seconds(metrics.get("results/fit_latent/metrics.json", {}), "latent"),
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
    df = df[[c for c in front if c in df] + sorted(c for c in df if c not in front)]
    order = ["n_paired_per_class", "n_paired", "seed", "method", "nfe"]
    return df.sort_values(order, kind="stable").reset_index(drop=True)


def count_key(df: pd.DataFrame) -> str:
    """The table's paired-count column: per class where the data has classes, else in all."""
    return "n_paired_per_class" if df["n_paired_per_class"].notna().any() else "n_paired"


def grid_cell(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the cell whose sample grids a sweep shows: the smallest paired count, first split seed,
    first training seed (one run per sampler: each grid file comes from one experiment)."""
    by = [count_key(df), "seed", *(["train_seed"] if "train_seed" in df else [])]
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
        hit = VARIANT_RE.search(str(exp["experiment"]))
        for f in git_files(root, exp["rev"], "results/"):
            if not SAMPLE_GRID_RE.match(f) or (hit and f != paths.SAMPLES.as_posix()):
                continue
            blob = git_file(root, exp["rev"], f)
            if blob is not None:
                name = f.removeprefix("results/").replace("/", "__")
                dest = out / (f"{hit['variant']}__{name}" if hit else name)
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


# --- combining ---------------------------------------------------------------------------------------

#: what identifies a row across sweeps: the cell (paired count, split seed, training seed) and the sampler
CELL = ["n_paired_per_class", "n_paired", "seed", "train_seed", "sampler"]
REPEAT_METRICS = ["eval.label_accuracy", "eval.fid_evalnet", "eval.recall"]


def cell_ids(df: pd.DataFrame, key: list[str]) -> pd.Series:
    """Each row's `key` columns as one text, to match rows across tables: NaN never equals NaN (a count
    without classes has n_paired_per_class NaN), and a number must read the same from an int column as
    from a float one (3 and 3.0: the same column holds floats in a table where it also holds a NaN)."""
    numeric = lambda c: pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])  # noqa: E731
    # str() of each value: pandas 3's astype(str) keeps a NaN as a missing value, not the text "nan"
    cols = [(df[c].astype(float) if numeric(c) else df[c]).map(str) for c in key]
    return pd.concat(cols, axis=1).agg("|".join, axis=1)


def combine(parts: list[tuple[pd.DataFrame, dict]]) -> tuple[pd.DataFrame, list[dict]]:
    """Named sweeps' tables as one grid: (table, repeats). Their runs must share every setting (the
    sweeps' `set` overrides and the variants they both define): a grid run in pieces, e.g. across
    sessions, not different experiments side by side. Where a cell x sampler ran in more than one
    part, the first part's row is kept and both values of `REPEAT_METRICS` go into `repeats`: how
    far a rerun of the same point moved (another commit, another machine)."""
    first = parts[0][1]
    variants: dict[str, Any] = {}
    for _, meta in parts:
        if meta.get("overrides") != first.get("overrides"):
            raise ParamsError(
                f"sweep --combine: sweep {meta.get('name')!r} ran with {meta.get('overrides')}, "
                f"{first.get('name')!r} with {first.get('overrides')}: only pieces of one grid combine"
            )
        for v, extra in (meta.get("variants") or {}).items():
            if variants.setdefault(v, extra) != extra:
                raise ParamsError(
                    f"sweep --combine: variant {v!r} is {variants[v]} in one sweep, {extra} in "
                    f"{meta.get('name')!r}: only pieces of one grid combine"
                )
    df = pd.concat([t.assign(_part=i) for i, (t, _) in enumerate(parts)], ignore_index=True)
    key = [c for c in CELL if c in df]
    ids = cell_ids(df, key)
    twice = ids.duplicated(keep=False)
    repeats = []
    for _, dup in df[twice].groupby(ids[twice], sort=True):
        kept, *others = dup.sort_values("_part").to_dict("records")
        for other in others:
            repeats.append(
                {
                    **{k: kept[k] for k in key},
                    "kept": kept["experiment"],
                    "dropped": other["experiment"],
                    **{m: [kept.get(m), other.get(m)] for m in REPEAT_METRICS if m in dup},
                }
            )
    out = df[~ids.duplicated(keep="first")].drop(columns="_part")
    order = [c for c in ["n_paired_per_class", "n_paired", "seed", "method", "nfe"] if c in out]
    return out.sort_values(order, kind="stable").reset_index(drop=True), repeats


def replace_samplers(
    new: tuple[pd.DataFrame, dict], old: pd.DataFrame, old_metas: list[dict]
) -> tuple[pd.DataFrame, list[dict]]:
    """`--replace`: a sweep that reran some samplers of a grid (e.g. LSDM alone, `methods: []`, after its
    default changed) in place of the grid's rows of those samplers: (table, replaced). Its settings must
    be the grid's but for the methods it did not run, and it must hold every cell where the grid has a
    sampler it replaces: one name never mixes the old default's rows with the new one's. `replaced`
    pairs each new row with the old one it displaced (both values of `REPEAT_METRICS`)."""
    table, meta = new
    overrides = meta.get("overrides") or {}
    mine = set(overrides.get("methods") or [])
    for other in old_metas:
        theirs = other.get("overrides") or {}
        ran = set(theirs.get("methods") or []) - mine  # their methods' own sections are theirs alone
        mismatch = {
            k
            for k in set(theirs) | set(overrides)
            if k != "methods" and k.split(".")[0] not in ran and theirs.get(k) != overrides.get(k)
        }
        if mismatch:
            raise ParamsError(
                f"sweep --combine --replace: {meta.get('name')!r} and {other.get('name')!r} differ in "
                f"{sorted(mismatch)}: only the samplers of one grid can be rerun in place"
            )
    key = [c for c in CELL if c in table and c in old]
    ids_new, ids_old = cell_ids(table, key), cell_ids(old, key)
    hit = old["sampler"].isin(set(table["sampler"]))
    missing = sorted(set(ids_old[hit]) - set(ids_new))
    if missing:
        raise ParamsError(
            f"sweep --combine --replace: {meta.get('name')!r} lacks {len(missing)} cell(s) x sampler the "
            f"grid has ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): rerun them too"
        )
    by_id = table.assign(_id=ids_new).set_index("_id")
    replaced = [
        {
            **{k: row[k] for k in key},
            "kept": by_id.at[i, "experiment"],
            "dropped": row["experiment"],
            **{m: [by_id.at[i, m], row[m]] for m in REPEAT_METRICS if m in table and m in old},
        }
        for i, row in zip(ids_old[hit], old[hit].to_dict("records"))
    ]
    out = pd.concat([table, old[~hit]], ignore_index=True)
    order = [c for c in ["n_paired_per_class", "n_paired", "seed", "method", "nfe"] if c in out]
    return out.sort_values(order, kind="stable").reset_index(drop=True), replaced


def combine_sweeps(
    root: Path, names: list[str], into: str | None = None, tag: str | None = None, replace: bool = False
) -> pd.DataFrame:
    """`lsdm sweep --combine A B ...`: the named sweeps' committed tables (results/sweep-A/, ...) as one
    sweep, results/sweep/ (or results/sweep-INTO/) and its comparison report; its record lists each
    part (tag, commit, experiments, wall time) and every repeated point (`combine`). With `replace`,
    A's samplers replace B, C...'s rows of them (`replace_samplers`). The sample grids are those of
    the parts holding the grid's cell (the smallest count's first split seed), the first part's first."""
    from lsdm.io import read_json

    parts = []
    for name in names:
        folder = root / paths.sweep_dir(name)
        if not (folder / TABLE).exists():
            raise ParamsError(f"sweep --combine: {folder / TABLE} not found (run `lsdm sweep --name {name}` first)")
        parts.append((pd.read_parquet(folder / TABLE), read_json(folder / META)))
    if replace:
        if len(parts) < 2:
            raise ParamsError("sweep --combine --replace: name the sweep that reran, then the sweeps it reran")
        df, repeats = combine(parts[1:])
        df, replaced = replace_samplers(parts[0], df, [m for _, m in parts[1:]])
    else:
        (df, repeats), replaced = combine(parts), []
    count, kept = count_key(df), set(df["experiment"])
    cell = set(grid_cell(df)["experiment"])
    out = root / paths.sweep_dir(into)
    if (out / GRIDS).exists():
        shutil.rmtree(out / GRIDS)
    grids = []
    for table, meta in parts:
        if not cell & set(table["experiment"]):
            continue
        for g in meta.get("grids") or []:
            dest = out / GRIDS / Path(g).name
            if str(dest.relative_to(root)) in grids:  # an earlier part's grid of the same sampler
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / g, dest)
            grids.append(str(dest.relative_to(root)))
    ran = [
        {k: meta.get(k) for k in ("name", "tag", "baseline", "experiments", "wall_seconds", "jobs", "note")}
        for _, meta in parts
    ]
    pieces = "; ".join(
        f"`{p['name']}` ({p['tag']}, commit {' and '.join(c[:7] for c in commits(p['baseline']))}, "
        f"{p['experiments']} experiments"
        + (f", {p['wall_seconds'] / 60:.1f} min at {p['jobs']} runs at a time" if p.get("wall_seconds") else "")
        + ")"
        for p in ran
    )
    note = (
        f"Combined by `lsdm sweep --combine {' '.join(names)}` from {len(parts)} sweeps of one grid (the same "
        f"settings), run apart: {pieces}. Where a point ran in more than one, the first sweep's run is kept"
    )
    if repeats:
        moved = {m: [abs(r[m][0] - r[m][1]) for r in repeats if m in r and None not in r[m]] for m in REPEAT_METRICS}
        note += (
            f"; {len(repeats)} rows ran twice, and moved by at most "
            + ", ".join(f"{m.removeprefix('eval.')} {max(v):.3g}" for m, v in moved.items() if v)
            + " between runs"
        )
    if replaced:
        rerun = sorted(set(parts[0][0]["sampler"]))
        note += (
            f". With `--replace`: every row of {', '.join(rerun)} is `{names[0]}`'s, rerun in place of the "
            f"{len(replaced)} rows the other sweeps ran with the defaults of their commits; every other row is theirs"
        )
    grid = parts[1 if replace else 0][1]  # the grid's own settings: the parts rerun in place keep theirs
    meta = {
        "name": into,
        "tag": tag or parts[0][1].get("tag"),
        "combined": ran,
        "repeats": repeats,
        "replaced": replaced,
        "note": note + ".",
        "counts": sorted({int(c) for c in df[count].dropna()}),
        "seeds": sorted({int(s) for s in df["seed"].dropna()}),
        "train_seeds": sorted({int(s) for s in df["train_seed"].dropna()}) if "train_seed" in df else [0],
        "overrides": grid.get("overrides"),
        "variants": {k: v for _, m in parts for k, v in (m.get("variants") or {}).items()},
        "status": {k: v for _, m in parts for k, v in (m.get("status") or {}).items() if k in kept},
        "skipped": [s for _, m in parts for s in m.get("skipped") or []],
        "rows": len(df),
        "experiments": len(kept),
        "grids": grids,
    }
    write_table(df, root, meta)
    from lsdm.reports.comparison import write_report

    print(f"sweep: {len(df)} rows from {meta['experiments']} experiments of {len(parts)} sweeps -> {out / TABLE}")
    print(f"sweep: comparison report -> {write_report(df, meta, root)}")
    return df


def spec(root: Path, name: str | None = None):
    """The sweep to run: params.yaml's `sweep:`, or `sweeps.<name>`, and its dotted key there."""
    params = load_params(root / PARAMS_FILE)
    if name is None:
        return params.sweep, "sweep"
    if name not in params.sweeps:
        raise ParamsError(
            f"sweep --name {name!r}: not in params.yaml's `sweeps:` section; defined: {sorted(params.sweeps)}"
        )
    return params.sweeps[name], f"sweeps.{name}"


def check(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
) -> tuple[list[int], list[int], dict[str, Any]]:
    """The sweep's counts, seeds and per-run overrides (its section's unless given), checked by the
    typed config as every run will see them: a bad key or value is a ParamsError, now."""
    sweep, key = spec(root, name)
    counts, seeds = list(counts or sweep.counts), list(seeds if seeds is not None else sweep.seeds)
    overrides = {**sweep.set, **(overrides or {})}
    # one check, as params.yaml's: the sweep section as it will run, and every run's params
    load_params(
        root / PARAMS_FILE, {f"{key}.counts": counts, f"{key}.seeds": seeds, f"{key}.set": overrides, **overrides}
    )
    for variant, extra in sweep.variants.items():
        try:
            load_params(root / PARAMS_FILE, {**overrides, **variant_overrides(extra)})
        except ParamsError as e:
            raise ParamsError(f"{key}.variants.{variant}: {e}") from None
    return counts, seeds, overrides


def variant_overrides(extra: dict[str, Any]) -> dict[str, Any]:
    """A variant run's own overrides: LSDM alone (no baselines), then the variant's keys."""
    return {"methods": [], **extra}


def plan_sweep(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    name: str | None = None,
) -> tuple[list[tuple[str, dict]], dict]:
    """The sweep's points (name, overrides) and its metadata: `sweep.counts` x `sweep.seeds` of
    params.yaml (or of `sweeps.<name>`) unless given, every run with its `set` and then `overrides`,
    all checked first."""
    counts, seeds, overrides = check(root, counts, seeds, overrides, name)
    tag = check_tag(tag or "sweep-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S"))
    per_class = class_counts(root)
    n_train = None
    if per_class is None:
        from lsdm.data.pixels import image_meta

        n_train = int((image_meta(root / paths.IMAGES)["split"] == "train").sum())
    runs, skipped = plan(counts, seeds, per_class, n_train)
    for s in skipped:
        print(f"warning: {s['reason']}", file=sys.stderr)
    baseline = run_tool(["git", "rev-parse", "HEAD"], root).stdout.strip()
    sweep = spec(root, name)[0]
    meta = {
        "name": name,
        "tag": tag,
        "baseline": baseline,
        "counts": sorted(set(counts)),
        "seeds": seeds,
        "train_seeds": sweep.train_seeds,
        "overrides": overrides,
        "variants": sweep.variants,
        "skipped": skipped,
    }
    return grid(runs, tag, overrides, sweep.variants, sweep.train_seeds), meta


def start(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    name: str | None = None,
) -> tuple[list[str], dict]:
    """Plan and queue a sweep in this workspace's DVC queue (see `plan_sweep`)."""
    points, meta = plan_sweep(root, counts, seeds, overrides, tag, name)
    return queue(points, root), meta


def check_tag(tag: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", tag):
        raise ParamsError(f"sweep tag {tag!r}: use letters, digits, '-', '_' and '.' (it names DVC experiments)")
    return tag


def run_sweep(
    root: Path,
    counts: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
    overrides: dict[str, Any] | None = None,
    tag: str | None = None,
    jobs: int = 1,
    timeout: float | None = None,
    name: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The whole sweep: queue, run one at a time (`jobs` = 1), collect the table, write the report.

    It holds the workspace lock throughout (queueing edits params.yaml, the end writes the table and
    the report); the queued experiments run in DVC's temporary workspaces, each with its own lock."""
    t0 = time.perf_counter()
    with workspace_lock(root, "lsdm sweep" + (f" --tag {tag}" if tag else ""), timeout=cli_timeout()):
        names, meta = start(root, counts, seeds, overrides, tag, name)
        if not names:
            raise ParamsError(f"sweep: nothing to run ({'; '.join(s['reason'] for s in meta['skipped'])})")
        status = run_queue(names, root, jobs=jobs, timeout=timeout)
        meta = {**meta, "status": status, "wall_seconds": time.perf_counter() - t0, "jobs": jobs}
        return collect_and_report(root, meta["tag"], meta), meta


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


if __name__ == "__main__":
    sys.exit(main())

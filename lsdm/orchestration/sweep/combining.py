"""Named sweeps run apart as one sweep (`lsdm sweep --combine A B ...`): pieces of one grid merged, the
points that ran twice recorded, and with `--replace` the first sweep's samplers in place of the
others' rows of them; written as a sweep of its own (table, record, grids, report)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from lsdm import paths
from lsdm.errors import ParamsError
from lsdm.orchestration.sweep.collecting import GRIDS, META, TABLE, commits, grid_cell, sort_rows, write_table
from lsdm.reports.stats import count_column

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
    return sort_rows(df[~ids.duplicated(keep="first")].drop(columns="_part")), repeats


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
    return sort_rows(pd.concat([table, old[~hit]], ignore_index=True)), replaced


def combined_note(
    names: list[str], ran: list[dict], repeats: list[dict], replaced: list[dict], rerun: list[str]
) -> str:
    """The combined sweep's record's `note`, which its report prints: the command, each part (`ran`:
    name, tag, commit, experiments, wall time), how far the points that ran twice moved, and with
    `--replace` which samplers (`rerun`) are the first sweep's."""

    def part(p: dict) -> str:
        """One part; a part that was itself combined names its own parts and their commits."""
        inner = p.get("combined") or []
        shas = commits(p["baseline"]) or [c for q in inner for c in commits(q.get("baseline"))]
        return (
            f"`{p['name']}` ({p['tag']}, "
            + ("combined from " + ", ".join(f"`{q['name']}`" for q in inner) + ", " if inner else "")
            + f"commit {' and '.join(dict.fromkeys(c[:7] for c in shas))}, {p['experiments']} experiments"
            + (f", {p['wall_seconds'] / 60:.1f} min at {p['jobs']} runs at a time" if p.get("wall_seconds") else "")
            + ")"
        )

    pieces = "; ".join(part(p) for p in ran)
    note = (
        f"Combined by `lsdm sweep --combine {' '.join(names)}` from {len(ran)} sweeps of one grid (the same "
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
        note += (
            f". With `--replace`: every row of {', '.join(rerun)} is `{names[0]}`'s, rerun in place of the "
            f"{len(replaced)} rows the other sweeps ran with the defaults of their commits; every other row is theirs"
        )
    return note + "."


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
    count, kept = count_column(df), set(df["experiment"])
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
        {k: meta.get(k) for k in ("name", "tag", "baseline", "experiments", "wall_seconds", "jobs", "note", "combined")}
        for _, meta in parts
    ]
    grid = parts[1 if replace else 0][1]  # the grid's own settings: the parts rerun in place keep theirs
    meta = {
        "name": into,
        "tag": tag or parts[0][1].get("tag"),
        "combined": ran,
        "repeats": repeats,
        "replaced": replaced,
        "note": combined_note(names, ran, repeats, replaced, sorted(set(parts[0][0]["sampler"])) if replaced else []),
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

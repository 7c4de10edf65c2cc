"""The statistics of a sweep's comparison (lsdm.reports.comparison writes them as Markdown, lsdm.reports.plots
draws them): the metric columns judged, mean ± std per method and paired count, paired differences
and their verdicts, and the unpaired pool's effect.

Methods are compared on the same paired subsets: per split seed the difference of a metric between
LSDM and the other method, then its mean and 95% t-interval over the seeds; a difference is called a
win or a loss only when that interval excludes zero. Density is judged by its distance to the real
reference (≈ 1: samples neither crowd nor thin out), not by "higher is better". The metrics, labels
and directions are the registry's (`lsdm.evaluation.registry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from lsdm.evaluation import registry
from lsdm.evaluation.registry import Metric

PAIRED = ["eval.fid_evalnet", "eval.label_accuracy", "recall_gap", "density_gap"]  # judged in the reading
METHOD_ORDER = [
    "lsdm",
    "lsdm_paired_only",
    "latent_flow_pseudo",
    "pixel_wgan_pseudo",
    "pixel_wgan",
    "latent_flow",
    "bicubic",
]
POOL_METRICS = ["eval.fid_evalnet", "eval.coverage", "recall_gap", "density_gap", "eval.label_accuracy"]


def gap_column(m: Metric) -> str:
    """The column judging a metric whose ideal is its real reference: |value − reference|."""
    return f"{m.key.replace('.', '_')}_gap"


def metric_columns() -> list[tuple[str, str, bool | None]]:
    """(column, label, higher is better; None: closer to the real reference) in display order, from the
    registry's compared metrics; each judged against its real reference is followed by its gap column.
    Only those present in a table are shown."""
    out: list[tuple[str, str, bool | None]] = []
    for m in registry.METRICS:
        if m.compared:
            out.append((m.column, m.label, m.higher))
            if m.direction == "reference" and m.reference:
                out.append((gap_column(m), f"|{m.label} − real {m.label}|", False))
    return out + [("train_seconds", "training time (s)", False)]


def has_numbers(df: pd.DataFrame, col: str) -> bool:
    """Whether the table has column `col` with at least one number in it."""
    return col in df and pd.to_numeric(df[col], errors="coerce").notna().any()


def count_column(df: pd.DataFrame) -> str:
    """The paired count the sweep varied: per class when the data has classes (the judge then reports
    label accuracy), else in all; whichever one varies across the experiments wins."""
    varied = [c for c in ("n_paired_per_class", "n_paired") if c in df and df[c].nunique() > 1]
    if varied:
        return varied[0]
    labelled = has_numbers(df, "eval.label_accuracy")
    per_class = "n_paired_per_class" in df and df["n_paired_per_class"].notna().any()
    return "n_paired_per_class" if per_class and (labelled or "n_paired" not in df) else "n_paired"


def sampler_order(df: pd.DataFrame) -> list[str]:
    """The table's samplers in the report's order: LSDM, its variants, then the baselines of
    METHOD_ORDER, each method's samplers by NFE."""

    def key(s: str):
        method = df.loc[df["sampler"] == s, "method"].iloc[0]
        nfe = df.loc[df["sampler"] == s, "nfe"].iloc[0]
        rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else 0.5  # a sweep variant: LSDM's
        nfe = pd.to_numeric(nfe, errors="coerce")
        return rank, 0 if pd.isna(nfe) else float(nfe), s

    return sorted(df["sampler"].unique(), key=key)


def with_reference_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Add each gap column (`density_gap` = |density − the real reference's density|, ...), the
    reference being the one LSDM's evaluate measured in the same experiment (every method there is
    judged on the same set)."""
    for m in registry.METRICS:
        ref = f"eval.{m.reference}"
        if m.direction != "reference" or not m.reference or m.column not in df or ref not in df:
            continue
        real = pd.to_numeric(df[ref], errors="coerce").groupby(df["experiment"]).transform("first")
        df = df.assign(**{gap_column(m): (pd.to_numeric(df[m.column], errors="coerce") - real).abs()})
    return df


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and number of seeds per (sampler, count) for every metric present."""
    df = with_reference_gaps(df)
    count = count_column(df)
    cols = [c for c, _, _ in metric_columns() if has_numbers(df, c)]
    num = df[["sampler", "method", "nfe", count, *cols]].copy()
    for c in cols:
        num[c] = pd.to_numeric(num[c], errors="coerce")
    g = num.groupby(["sampler", "method", "nfe", count], dropna=False)[cols]
    out = g.agg(["mean", "std", "count"])
    out.columns = [f"{c}|{s}" for c, s in out.columns]
    return out.reset_index()


def summary_cell(summary: pd.DataFrame, sampler: str, count: str, c, col: str) -> tuple[float, float, int] | None:
    """(mean, std, n) of `col` for `sampler` at paired count c in a `summarise` table; None if it has none."""
    r = summary[(summary["sampler"] == sampler) & (summary[count] == c)]
    if r.empty or f"{col}|mean" not in r or pd.isna(r[f"{col}|mean"].iloc[0]):
        return None
    std = r[f"{col}|std"].iloc[0]
    return float(r[f"{col}|mean"].iloc[0]), 0.0 if pd.isna(std) else float(std), int(r[f"{col}|count"].iloc[0])


def spread(values: pd.Series) -> tuple[float, float, int]:
    """Mean, std (nan for one value) and number of the numbers in `values`."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(v.mean()), float(v.std()) if len(v) > 1 else float("nan"), len(v)


def mean_by(df: pd.DataFrame, col: str, by: str) -> pd.Series:
    """The mean of the numbers in `col` per value of `by`, groups without any left out."""
    return pd.to_numeric(df[col], errors="coerce").groupby(df[by]).mean().dropna()


# --- paired differences ------------------------------------------------------------------------------


def pair_keys(df: pd.DataFrame) -> list[str]:
    """What makes two runs a pair: the split seed (the same pairs), and the training seed when a sweep
    had several."""
    trained = "train_seed" in df and df["train_seed"].nunique() > 1
    return ["seed", "train_seed"] if trained else ["seed"]


def runs_per_count(df: pd.DataFrame, count: str) -> dict[int, int]:
    """Each paired count's number of runs (distinct `pair_keys`): a grid run in pieces may have more
    at one count than another (`lsdm sweep --combine`)."""
    if "seed" not in df:
        return {int(c): 1 for c in df[count].dropna().unique()}
    sizes = df.groupby(count)[pair_keys(df)].apply(lambda g: len(g.drop_duplicates()))
    return {int(c): int(n) for c, n in sizes.items()}


def pairs_per_count(df: pd.DataFrame, count: str) -> int:
    """The fewest pairs (distinct `pair_keys`) any paired count has; 1 without seeds."""
    return min(runs_per_count(df, count).values(), default=1)


def runs_phrase(df: pd.DataFrame, count: str, what: str = "pairs") -> str:
    """ "6 pairs per count", or where the counts differ "4 / 3 / 5 pairs at 3 / 10 / 30 pairs per class"."""
    runs = runs_per_count(df, count)
    if len(set(runs.values())) <= 1:
        return f"{min(runs.values(), default=1)} {what} per count"
    unit = "pairs per class" if count == "n_paired_per_class" else "pairs"
    return (
        f"{' / '.join(str(runs[c]) for c in sorted(runs))} {what} at {' / '.join(str(c) for c in sorted(runs))} {unit}"
    )


def t_interval(d: pd.Series) -> tuple[float, float, int]:
    """Mean, 95% t half-width (nan for one value) and n of paired differences."""
    from scipy import stats

    d = d.dropna()
    n = len(d)
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return float(d.mean()) if n else float("nan"), half, n


def paired_runs(df: pd.DataFrame, a: str, b: str, n: int, source: str) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """Tuning runs of variants `a` and `b` at `n` pairs per class, each indexed by split seed, and the
    split seeds both have (the same pairs: the unit of a paired difference); fewer than two is an
    error naming `source`, the table they came from."""
    at = df[df["n_per_class"] == n]
    va, vb = (at[at["variant"] == v].set_index("seed") for v in (a, b))
    seeds = sorted(set(va.index) & set(vb.index))
    if len(seeds) < 2:
        raise KeyError(f"{source}: fewer than two split seeds with both {a!r} and {b!r} at {n} pairs/class")
    return va, vb, seeds


def paired_cells(a: pd.DataFrame, b: pd.DataFrame, seeds: list, cols) -> list[str]:
    """'mean ± half-width' of a − b on the rows `seeds` (the index both share), for each (column, _,
    decimals) of `cols`: the 95% t-interval of the paired differences."""
    cells = []
    for key, _, digits in cols:
        mean, half, _ = t_interval(a.loc[seeds, key] - b.loc[seeds, key])
        cells.append(f"{mean:+.{digits}f} ± {half:.{digits}f}")
    return cells


def paired_difference(
    df: pd.DataFrame, a: str, b: str, count: str, c, col: str, by_split: bool = False
) -> tuple[float, float, int] | None:
    """Mean of a − b over the (split seed, training seed) runs both samplers had at count c (the same
    pairs), the half-width of its 95% t-interval (nan for one pair) and the number of pairs; None if
    they share none. `by_split`: the differences are first averaged over the training seeds, so the
    split seeds alone are the unit (the runs of one split share its pairs: the stricter test)."""
    rows, keys = df[df[count] == c], pair_keys(df)
    va, vb = (pd.to_numeric(rows[rows["sampler"] == s].set_index(keys)[col], errors="coerce") for s in (a, b))
    d = (va - vb).dropna()
    if by_split and len(keys) > 1:
        d = d.groupby(level="seed").mean()
    mean, half, n = t_interval(d)
    return None if n == 0 else (mean, half, n)


def paired_verdict(mean: float, half: float, higher: bool) -> str:
    """'better' / 'worse' when the 95% interval of the paired difference excludes 0, else 'tie'."""
    if math.isnan(half) or abs(mean) <= half:
        return "tie"
    return "better" if (mean > 0) == higher else "worse"


@dataclass(frozen=True)
class Judged:
    """LSDM minus another sampler at one paired count: the paired difference and its verdict."""

    mean: float
    half: float  # of the 95% t-interval; nan for one pair
    n: int
    verdict: str  # 'better', 'worse' or 'tie', for LSDM, in the metric's direction
    by_split: bool  # the stricter test over split seeds alone gives the same verdict


def judge(df: pd.DataFrame, other: str, count: str, c, col: str, higher: bool) -> Judged | None:
    """LSDM against `other` on `col` at paired count c (`paired_difference`, `paired_verdict`); the
    stricter test is run only where a verdict is not a tie and the runs have training seeds too."""
    d = paired_difference(df, "lsdm", other, count, c, col)
    if d is None:
        return None
    mean, half, n = d
    verdict = paired_verdict(mean, half, higher)
    same = True
    if verdict != "tie" and pair_keys(df) != ["seed"]:
        m2, h2, _ = paired_difference(df, "lsdm", other, count, c, col, by_split=True)
        same = paired_verdict(m2, h2, higher) == verdict
    return Judged(mean, half, n, verdict, same)


def verdicts(df: pd.DataFrame, summary: pd.DataFrame, count: str, other: str, col: str, higher: bool) -> list[tuple]:
    """(paired count, LSDM's verdict against `other`, LSDM's mean, the other's mean) at every count
    where both have a summary cell and paired runs."""
    out = []
    for c in sorted(summary[count].dropna().unique()):
        a, b = summary_cell(summary, "lsdm", count, c, col), summary_cell(summary, other, count, c, col)
        d = paired_difference(df, "lsdm", other, count, c, col)
        if a and b and d:
            out.append((c, paired_verdict(d[0], d[1], higher), a[0], b[0]))
    return out


# --- the unpaired pool (the paper's first claim) ----------------------------------------------------


def pool_rows(df: pd.DataFrame, variants: dict[str, dict] | None = None) -> pd.DataFrame:
    """LSDM's rows that differ only in the size of the latent pool's unpaired part, with `unpaired`:
    how many unpaired images the pool held (the main runs, `n_unpaired` null, hold all the others).

    A row counts when it is LSDM's own or a variant that sets `split.n_unpaired` and nothing else (the
    sweep's metadata says; without it, any sampler with a finite `n_unpaired`)."""
    need = {"pool_size", "n_unpaired", "seed"}
    if not need <= set(df):
        return df.iloc[0:0]
    only_pool = {v for v, ov in (variants or {}).items() if set(ov) == {"split.n_unpaired"}}
    finite = df["n_unpaired"].notna() & (df["sampler"].isin(only_pool) if variants else True)
    rows = df[df["pool_size"].notna() & (((df["sampler"] == "lsdm") & df["n_unpaired"].isna()) | finite)].copy()
    if rows["n_unpaired"].notna().sum() == 0:
        return rows.iloc[0:0]
    count = count_column(df)
    rows["pool_size"] = pd.to_numeric(rows["pool_size"], errors="coerce")
    given = rows.dropna(subset=["n_unpaired"])
    pairs = (given["pool_size"] - pd.to_numeric(given["n_unpaired"])).groupby([given[count], given["seed"]]).first()
    key = pd.MultiIndex.from_frame(rows[[count, "seed"]])
    rows["unpaired"] = pd.to_numeric(rows["n_unpaired"]).fillna(rows["pool_size"] - pairs.reindex(key).to_numpy())
    return with_reference_gaps(rows.dropna(subset=["unpaired"]))


def pool_varies(rows: pd.DataFrame) -> bool:
    """Whether `pool_rows` hold more than one pool size: something to compare."""
    return not rows.empty and rows["unpaired"].nunique() >= 2


def pool_effects(rows: pd.DataFrame, count: str) -> pd.DataFrame:
    """Per paired count and metric: the largest pool minus no unpaired images, paired over split seeds
    (same pairs), its 95% t-interval and verdict in the metric's direction."""
    labels = {c: (lab, h) for c, lab, h in metric_columns()}
    out = []
    for c, at in rows.groupby(count):
        lo, hi = at["unpaired"].min(), at["unpaired"].max()
        if lo != 0 or hi == lo:
            continue
        keys = [at[k] for k in pair_keys(rows)]
        for col in [m for m in POOL_METRICS if m in at]:
            v = pd.to_numeric(at[col], errors="coerce")
            diff = v[at["unpaired"] == hi].groupby(keys).mean() - v[at["unpaired"] == 0].groupby(keys).mean()
            mean, half, n = t_interval(diff)
            if n:
                out.append(
                    {
                        count: c,
                        "metric": col,
                        "label": labels[col][0],
                        "higher": labels[col][1],
                        "unpaired": hi,
                        "diff": mean,
                        "half": half,
                        "n": n,
                        "verdict": paired_verdict(mean, half, labels[col][1]),
                        "per_seed": diff.dropna(),
                    }
                )
    return pd.DataFrame(out)


@dataclass(frozen=True)
class GainTrend:
    """Does the pool's effect shrink with more pairs: its gain (in the metric's direction) at the fewest
    and at the most pairs, and their paired difference over split seeds with its 95% half-width."""

    few: pd.Series  # the `pool_effects` row at the fewest pairs
    many: pd.Series  # and at the most
    few_gain: float
    many_gain: float
    mean: float
    half: float

    @property
    def larger(self) -> bool:
        """The gain is larger with fewer pairs."""
        return self.few_gain > self.many_gain

    @property
    def resolved(self) -> bool:
        """The interval of the difference excludes zero."""
        return not math.isnan(self.half) and abs(self.mean) > self.half


def gain_trend(effects: pd.DataFrame) -> GainTrend:
    """The `GainTrend` of one metric's `pool_effects` rows, sorted by paired count (two or more)."""
    few, many = effects.iloc[0], effects.iloc[-1]
    gain = lambda r, v: v if r["higher"] else -v  # improvement, in the metric's direction  # noqa: E731
    mean, half, _ = t_interval(gain(few, few["per_seed"]) - gain(many, many["per_seed"]))
    return GainTrend(few, many, gain(few, few["diff"]), gain(many, many["diff"]), mean, half)


# --- a sweep, summarised once ------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """A sweep's tidy table (lsdm.orchestration.sweep) with what every part of its report reads."""

    df: pd.DataFrame  # one row per experiment x sampler
    count: str  # the paired count it varied (`count_column`)
    samplers: list[str]  # in the report's order (`sampler_order`)
    summary: pd.DataFrame  # mean, std, n per sampler and count (`summarise`)
    pool: pd.DataFrame  # LSDM's rows by the size of the unpaired pool (`pool_rows`)

    @classmethod
    def of(cls, df: pd.DataFrame, variants: dict[str, dict] | None = None) -> Sweep:
        """The statistics of a non-empty table; `variants`: the sweep's, from its metadata."""
        return cls(df, count_column(df), sampler_order(df), summarise(df), pool_rows(df, variants))

"""How the blocks write a figure: decimals, durations, lists in words, where a benchmark was measured,
and which of two values the metric registry calls better."""

from __future__ import annotations

import math
from typing import Any

from lsdm.evaluation.registry import BY_KEY


def num(x: float | None, digits: int) -> str:
    """A figure with `digits` decimals and thousands separators; '–' where there is none."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def duration(seconds: float) -> str:
    """'4 min 07 s' above a minute, else '47 s'."""
    s = round(seconds)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def short(commit: str | None) -> str:
    return f"`{commit[:7]}`" if commit else "an unrecorded commit"


def provenance(doc: dict[str, Any]) -> str:
    """Where a benchmark's figures were measured: command, commit, date, machine, load."""
    m = doc.get("machine") or {}
    dirty = " with uncommitted changes" if doc.get("dirty") else ""
    parts = [
        f"`{doc['command']}`" if doc.get("command") else None,
        f"at commit {short(doc.get('commit'))}{dirty}",
        (doc.get("date") or "")[:10] or None,
    ]
    if m.get("cores"):
        parts.append(f"{m['cores']} cores")
    if m.get("load_average_at_start"):
        parts.append(f"load average {m['load_average_at_start'][0]:.1f} at the start")
    if m.get("threads_env"):
        parts.append(f"`LSDM_THREADS={m['threads_env']}`")
    return ", ".join(p for p in parts if p)


def transcribed(doc: dict[str, Any]) -> str | None:
    """The warning a transcribed (not re-measured) figure file carries into a page."""
    if not doc.get("transcribed_from"):
        return None
    what = f"`{doc['command']}`" if doc.get("command") else "the run"
    at = f" at commit {short(doc.get('measured_at_commit'))}" if doc.get("measured_at_commit") else ""
    note = f" {doc['note']}" if doc.get("note") else ""
    return (
        f"*Transcribed, not re-measured:* the figures the {doc['transcribed_from']} stated for {what}{at}"
        f" ({doc.get('date', 'date not recorded')}).{note}"
    )


def listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def better(metric: str, a: float, b: float, reference: float | None = None, digits: int | None = None) -> bool | None:
    """Whether `a` is better than `b` in the registry's direction for `metric` (None: equal, or equal
    at the `digits` a page shows them with)."""
    m = BY_KEY[metric]
    if digits is not None:
        a, b = round(a, digits), round(b, digits)
    if m.direction == "reference":
        a, b = -abs(a - reference), -abs(b - reference)
    elif m.direction == "lower":
        a, b = -a, -b
    return None if a == b else a > b

"""Training curves through dvclive, written atomically: the live directory appears only when
the stage finishes, so an interrupted run leaves no partial curves or summary behind."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from lsdm.io import atomic_dir

os.environ.setdefault("DVCLIVE_LOGLEVEL", "WARNING")


class Tracker:
    """`tracker(step, {name: value})` logs points of curves; `tracker.summary` is the metrics.json."""

    def __init__(self, live) -> None:
        self.live = live
        self.curves: set[str] = set()

    @property
    def summary(self) -> dict:
        return self.live.summary  # dvclive replaces this dict as it logs: never keep a reference

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        self.live.step = step
        for name, value in metrics.items():
            self.curves.add(name)
            self.live.log_metric(name, float(value), plot=True)


def without_curves(summary: dict, curves: set[str]) -> dict:
    """The summary less each curve's last point and the step: the curves are plots, and as metrics they
    would crowd `dvc exp show` with a column each."""
    out = {k: v for k, v in summary.items() if k != "step" and k not in curves}
    for name in curves:
        head, _, rest = name.partition("/")
        if rest and isinstance(out.get(head), dict):
            out[head] = without_curves(out[head], {rest})
            if not out[head]:
                del out[head]
    return out


@contextlib.contextmanager
def tracked(out_dir: str | Path) -> Iterator[Tracker]:
    from dvclive import Live

    with atomic_dir(out_dir) as tmp:
        live = Live(str(tmp), save_dvc_exp=False, dvcyaml=None, report=None)
        tracker = Tracker(live)
        yield tracker
        live.make_summary()
        live.end()
        summary = json.loads(Path(live.metrics_file).read_text())
        Path(live.metrics_file).write_text(json.dumps(without_curves(summary, tracker.curves), indent=4))

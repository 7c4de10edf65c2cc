"""Training curves through dvclive, written atomically: the live directory appears only when
the stage finishes, so an interrupted run leaves no partial curves or summary behind."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from lsdm.io import atomic_dir

os.environ.setdefault("DVCLIVE_LOGLEVEL", "WARNING")


class Tracker:
    """`tracker(step, {name: value})` logs points of curves; `tracker.summary` is the metrics.json."""

    def __init__(self, live) -> None:
        self.live = live

    @property
    def summary(self) -> dict:
        return self.live.summary  # dvclive replaces this dict as it logs: never keep a reference

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        self.live.step = step
        for name, value in metrics.items():
            self.live.log_metric(name, float(value), plot=True)


@contextlib.contextmanager
def tracked(out_dir: str | Path) -> Iterator[Tracker]:
    from dvclive import Live

    with atomic_dir(out_dir) as tmp:
        live = Live(str(tmp), save_dvc_exp=False, dvcyaml=None, report=None)
        yield Tracker(live)
        live.make_summary()
        live.end()

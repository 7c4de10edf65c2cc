"""fit_baseline: one baseline (`lsdm fit_baseline --method NAME`), trained on the same paired subset as
LSDM; checkpoints in data/baselines/NAME/, curves and summary in results/baselines/NAME/train/.
Without --method, every method of `methods` in turn (handy outside DVC)."""

from __future__ import annotations

from lsdm.baselines import BASELINES, data_dir, live_dir
from lsdm.config import Params, resolve_device
from lsdm.errors import ParamsError
from lsdm.io import atomic_dir
from lsdm.tracking import tracked


def run(params: Params, method: str | None = None) -> None:
    if method is None:
        for m in params.methods:
            run(params, m)
        return
    if method not in BASELINES:
        raise ParamsError(f"--method {method!r}: unknown baseline; allowed: {list(BASELINES)}")
    device = resolve_device(params.base.device)
    with tracked(live_dir(method)) as track, atomic_dir(data_dir(method)) as out:
        summary = BASELINES[method].fit(params, device, out, track)
        track.summary["baseline"] = {"method": method, **summary}
    print(f"fit_baseline {method}: {summary['n_pairs']} pairs in {summary['train_seconds']:.0f}s -> {data_dir(method)}")

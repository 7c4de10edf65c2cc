"""fit_baseline: one method of lsdm.methods (`lsdm fit_baseline --method NAME`), trained on the same
paired subset as LSDM; checkpoints in data/baselines/NAME/, curves and summary in
results/baselines/NAME/train/. Without --method, every method of `methods` in turn."""

from __future__ import annotations

from lsdm import paths
from lsdm.config import METHOD_NAMES, Params, resolve_device
from lsdm.errors import ParamsError
from lsdm.io import atomic_dir
from lsdm.methods import method as method_module
from lsdm.tracking import tracked


def run(params: Params, method: str | None = None) -> None:
    if method is None:
        for m in params.methods:
            run(params, m)
        return
    if method not in METHOD_NAMES:
        raise ParamsError(f"--method {method!r}: unknown baseline; allowed: {list(METHOD_NAMES)}")
    device, out_dir = resolve_device(params.base.device), paths.method_data(method)
    with tracked(paths.method_results(method) / "train") as track, atomic_dir(out_dir) as out:
        summary = method_module(method).fit(params, device, out, track)
        track.summary["baseline"] = {"method": method, **summary}
    print(f"fit_baseline {method}: {summary['n_pairs']} pairs in {summary['train_seconds']:.0f}s -> {out_dir}")

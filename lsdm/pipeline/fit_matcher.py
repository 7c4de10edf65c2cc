"""fit_matcher: LSDM's matching stage (`lsdm.methods.lsdm.fit`) on the shared latents; the matcher
checkpoint in data/matcher/, curves and summary in results/fit_matcher/."""

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.io import atomic_dir
from lsdm.methods import lsdm
from lsdm.tracking import tracked


def run(params: Params) -> None:
    device = resolve_device(params.base.device)
    with tracked(paths.live_dir("fit_matcher")) as track, atomic_dir(paths.MATCHER.parent) as out:
        summary = lsdm.fit(params, device, out, track)
        track.summary["matcher"] = summary
    print(
        f"fit_matcher: {summary['variant']}, {summary['n_pairs']} pairs, {params.matcher.steps} generator steps "
        f"in {summary['train_seconds']:.0f}s"
    )

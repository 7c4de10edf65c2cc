"""evaluate_baseline: a baseline's samplers judged exactly like LSDM (`lsdm.evaluation.judge`), on the
same test set, evaluation net and seeds. One DVC stage per method (`evaluate_baseline@<method>`).

Writes results/baselines/<method>/eval/metrics.json with `eval.<sampler>.*` (latent_flow has one
sampler per NFE: `latent_flow_nfe10`, ...): the registry's headline scalars, for `dvc exp show`;
the rest under the same keys in eval/details.json; and eval/samples/<sampler>.png.
"""

from __future__ import annotations

from torchvision.utils import save_image

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.evaluation import registry
from lsdm.evaluation.judge import Reference, as_evaluated, judge_sampler
from lsdm.io import atomic_dir, write_json
from lsdm.methods import samplers


def run(params: Params, method: str | None = None) -> None:
    if method is None:
        for m in params.methods:
            run(params, m)
        return
    device = resolve_device(params.base.device)
    ref = Reference.load(params, device)
    results, grids = {}, {}
    for name, sampler in samplers(method, device, params):
        judgement = judge_sampler(ref, as_evaluated(ref, sampler))
        results[name] = {**judgement.metrics, "nfe": getattr(sampler, "nfe", 1)}
        grids[name] = (judgement.grid, judgement.grid_nrow)
        e = judgement.metrics
        shown = ", ".join(f"{k} {e[k]:.3f}" for k in ("label_accuracy", "fid_evalnet", "psnr") if e.get(k) is not None)
        print(f"evaluate_baseline: {name}: {shown}")
    with atomic_dir(paths.method_results(method) / "eval") as out:
        (out / "samples").mkdir()
        for name, (grid, nrow) in grids.items():
            save_image(grid, out / "samples" / f"{name}.png", nrow=nrow, padding=2, pad_value=1.0)
        split = {name: registry.split_results(e) for name, e in results.items()}
        write_json({"eval": {name: head for name, (head, _) in split.items()}}, out / registry.METRICS_FILE)
        write_json({"eval": {name: rest for name, (_, rest) in split.items()}}, out / registry.DETAILS_FILE)

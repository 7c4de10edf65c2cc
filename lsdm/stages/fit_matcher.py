"""fit_matcher: the LSDM matcher G(x, eta) -> z against a critic f(x, z) on the paired subset; with
`matcher.marginal_weight` > 0 also against the pooled latents of every training image."""

import time

from lsdm import paths
from lsdm.config import Params, resolve_device, variant_name
from lsdm.io import read_table, save_checkpoint
from lsdm.models import build
from lsdm.models.matcher import matcher_config
from lsdm.schemas import IMAGES, LATENT_POOL, LATENTS, PAIRED
from lsdm.data import codes, labels_tensor, to_tensor
from lsdm.tasks import make_task
from lsdm.tracking import tracked
from lsdm.train import seed_everything, train_matcher


def run(params: Params) -> None:
    p, device, task = params.matcher, resolve_device(params.base.device), make_task(params)
    images = read_table(paths.IMAGES, IMAGES)
    paired = read_table(paths.PAIRED, PAIRED)
    latents = read_table(paths.LATENTS, LATENTS)
    z = codes(latents, paired["id"]).to(device)
    marginal = p.marginal_weight > 0  # then G's pooled codes also match every training image's latent
    pool = codes(latents, read_table(paths.LATENT_POOL, LATENT_POOL)["id"]).to(device) if marginal else None
    pair_images = to_tensor(images.set_index("id").loc[paired["id"]])
    cond = task.conditions(pair_images, labels_tensor(paired)).to(device)
    config = matcher_config(p, task.condition_spec(images), z.shape[1])
    seed_everything(p.seed)
    matcher = build("wgan_gp_mlp", config).to(device)

    with tracked(paths.live_dir("fit_matcher")) as track:
        t0 = time.perf_counter()
        train_matcher(matcher, p, cond, z, pool, log=track)
        seconds = time.perf_counter() - t0
        track.summary["matcher"] = {"train_seconds": seconds, "n_pairs": len(paired), "variant": variant_name(p),
                                    "n_pool": len(pool) if marginal else 0}  # fmt: skip
        save_checkpoint(paths.MATCHER, "wgan_gp_mlp", config, matcher.state_dict(), task=params.task)
    print(f"fit_matcher: {variant_name(p)}, {len(paired)} pairs, {p.steps} generator steps in {seconds:.0f}s")

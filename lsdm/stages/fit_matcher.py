"""fit_matcher: the LSDM matcher G(x, eta) -> z against a critic f(x, z), on the paired subset only."""

import time

import numpy as np
import torch

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.io import read_table, save_checkpoint
from lsdm.models import build
from lsdm.schemas import IMAGES, LATENTS, PAIRED
from lsdm.data import labels_tensor, to_tensor
from lsdm.tasks import make_task
from lsdm.tracking import tracked
from lsdm.train import seed_everything, train_wgan_gp


def run(params: Params) -> None:
    p, device, task = params.matcher, resolve_device(params.base.device), make_task(params)
    images = read_table(paths.IMAGES, IMAGES)
    paired = read_table(paths.PAIRED, PAIRED)
    latents = read_table(paths.LATENTS, LATENTS).set_index("id").loc[paired["id"]]
    z = torch.from_numpy(np.stack(latents["z"].to_numpy())).to(device)
    pair_images = to_tensor(images.set_index("id").loc[paired["id"]])
    cond = task.conditions(pair_images, labels_tensor(paired)).to(device)
    config = dict(condition=task.condition_spec(images), z_dim=z.shape[1], noise_dim=p.noise_dim, width=p.width, depth=p.depth)
    seed_everything(p.seed)
    matcher = build("wgan_gp_mlp", config).to(device)

    with tracked(paths.live_dir("fit_matcher")) as track:
        t0 = time.perf_counter()
        train_wgan_gp(
            matcher, cond, z, steps=p.steps, n_critic=p.n_critic, batch_size=p.batch_size,
            lr=p.lr, gp_weight=p.gp_weight, seed=p.seed, log=track,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        track.summary["matcher"] = {"train_seconds": seconds, "n_pairs": len(paired)}
        save_checkpoint(paths.MATCHER, "wgan_gp_mlp", config, matcher.state_dict(), task=params.task)
    print(f"fit_matcher: {len(paired)} pairs, {p.steps} generator steps in {seconds:.0f}s")

"""lsdm_paired_only: LSDM whose autoencoder is fitted on the paired images only, isolating what the
unpaired data buys. Its latents are standardised with the pairs' own statistics."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from lsdm import paths
from lsdm.io import save_checkpoint, write_json
from lsdm.methods.common import Track, paired_inputs
from lsdm.methods.lsdm import LSDMSampler
from lsdm.models.autoencoder import ConvAutoencoder
from lsdm.models.matcher import wgan_gp_mlp
from lsdm.models.training import batched, seed_everything, train_autoencoder, train_wgan_gp

FIT_READS = (paths.IMAGES, paths.PAIRED)
SAMPLE_READS = ()  # its own checkpoints and statistics only


def fit(params, device: torch.device, out_dir: Path, track: Track, root: str | Path = ".") -> dict:
    p = params.lsdm_paired_only
    images, paired, y, cond, task = paired_inputs(params, device, root)
    ae_config = dict(image_size=y.shape[-1], in_channels=y.shape[1], dim=p.dim, channels=p.channels, noise=p.noise)
    seed_everything(p.seed)
    ae = ConvAutoencoder(**ae_config).to(device)
    t0 = time.perf_counter()
    train_autoencoder(ae, y, steps=p.ae_steps, batch_size=p.ae_batch_size, lr=p.ae_lr, seed=p.seed,
                      log=lambda s, m: track(s, {f"ae/{k}": v for k, v in m.items()}), desc="lsdm_paired_only/ae")  # fmt: skip
    ae_seconds = time.perf_counter() - t0
    z = batched(ae.encode, y).double()
    mean, std = z.mean(0), z.std(0, unbiased=False) + 1e-8
    zs = ((z - mean) / std).float()
    m_config = dict(condition=task.condition_spec(images), z_dim=p.dim, noise_dim=p.noise_dim, width=p.width,
                    depth=p.depth, critic=p.critic)  # fmt: skip
    seed_everything(p.seed)
    matcher = wgan_gp_mlp(**m_config).to(device)
    t1 = time.perf_counter()
    train_wgan_gp(matcher, cond, zs, steps=p.steps, n_critic=p.n_critic, batch_size=p.batch_size, lr=p.lr,
                  gp_weight=p.gp_weight, seed=p.seed, log=track, desc="lsdm_paired_only")  # fmt: skip
    matcher_seconds = time.perf_counter() - t1
    save_checkpoint(out_dir / "autoencoder.pt", "conv_ae", ae_config, ae.state_dict())
    save_checkpoint(out_dir / "matcher.pt", "wgan_gp_mlp", m_config, matcher.state_dict(), task=params.task)
    write_json({"mean": mean.tolist(), "std": std.tolist(), "n": len(zs)}, out_dir / "stats.json")
    return {"train_seconds": ae_seconds + matcher_seconds, "ae_train_seconds": ae_seconds,
            "matcher_train_seconds": matcher_seconds, "n_pairs": len(paired)}  # fmt: skip


def samplers(device: torch.device, params=None, root: str | Path = ".") -> list[tuple[str, nn.Module]]:
    d = paths.method_data("lsdm_paired_only", root)
    return [("lsdm_paired_only", LSDMSampler.from_files(d / "matcher.pt", d / "autoencoder.pt", d / "stats.json", device))]

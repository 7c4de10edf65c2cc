"""Training loops. No file I/O here: tensors in, trained modules out, curves through `log`.

Every loop draws its batches from a `torch.Generator` seeded by the caller, so a run is
deterministic on the CPU. `log(step, {name: value})` is called every `log_every` steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from lsdm import interrupt

Logger = Callable[[int, dict[str, float]], None]


def _no_log(step: int, metrics: dict[str, float]) -> None:
    pass


def seed_everything(seed: int) -> None:
    """Seed torch's global RNG: call before building a model, so its initial weights are reproducible."""
    torch.manual_seed(seed)


def adam(params, lr: float, **kwargs) -> torch.optim.Adam:
    """Adam with the fused kernel: one op updates every parameter, instead of a dozen small ops
    per tensor (~10% of a small model's step on the CPU; the same update up to rounding)."""
    return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)


def _batch(n: int, batch_size: int, gen: torch.Generator) -> torch.Tensor:
    """`batch_size` indices into range(n), with replacement (works for n < batch_size), drawn on the
    generator's own device: a CUDA generator's draws stay on the GPU (no copy, and a CUDA graph can hold them)."""
    return torch.randint(0, n, (batch_size,), generator=gen, device=gen.device)


class _Progress(tqdm):
    """tqdm whose every update first raises a Ctrl-C that something swallowed (lsdm.interrupt)."""

    def update(self, n: float = 1) -> bool | None:
        interrupt.check()
        return super().update(n)


def _progress(total: int, desc: str) -> tqdm:
    return _Progress(total=total, desc=desc, mininterval=2.0, dynamic_ncols=True)


def minimise(
    model: nn.Module,
    batch_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    n: int,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    desc: str,
    metric: str,
    log: Logger = _no_log,
    log_every: int = 25,
) -> nn.Module:
    """Adam with a cosine-decayed learning rate on `batch_loss(indices, generator)`, batches of
    `batch_size` indices drawn from range(n); logs the loss as `metric` every `log_every` steps."""
    gen = torch.Generator().manual_seed(seed)  # batch draws; weights were seeded by the caller
    opt = adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.05)
    model.train()
    with _progress(steps, desc) as bar:
        for step in range(1, steps + 1):
            loss = batch_loss(_batch(n, batch_size, gen), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % log_every == 0 or step == steps:
                log(step, {metric: loss.item(), "lr": sched.get_last_lr()[0]})
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            bar.update()
    return model.eval()


def train_autoencoder(
    model: nn.Module,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    log: Logger = _no_log,
    log_every: int = 25,
    desc: str = "fit_latent",
) -> nn.Module:
    """Minimise the reconstruction MSE on `images`: [N, C, H, W] in [0, 1] on the model's device, or
    any sized store whose `images[idx]` is such a batch (`lsdm.data.pixels.PixelFile`)."""

    def loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        y = images[idx.to(images.device)]
        return nn.functional.mse_loss(model(y), y)

    return minimise(
        model,
        loss,
        len(images),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        desc=desc,
        metric="train/mse",
        log=log,
        log_every=log_every,
    )


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    shift: float = 0.0,
    epoch_size: int | None = None,
    log: Logger = _no_log,
    desc: str = "eval_net",
) -> nn.Module:
    """Cross-entropy over shuffled epochs, images randomly shifted by up to `shift` of their size;
    logs the mean loss and accuracy per epoch. `epoch_size`: an epoch visits at most that many
    examples (the head of its fresh shuffle), so the time is bounded at scale; at or above the
    data's size (or None) every epoch is the whole set, draw for draw as without it."""
    gen = torch.Generator().manual_seed(seed)  # batch draws; weights were seeded by the caller
    opt = adam(model.parameters(), lr=lr)
    model.train()
    n_all = len(images)
    n = n_all if epoch_size is None else min(n_all, epoch_size)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    with _progress(epochs * steps_per_epoch, desc) as bar:
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(n_all, generator=gen)[:n].to(images.device)
            total_loss, correct = 0.0, 0
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                y = images[idx]
                logits = model(random_shift(y, shift, gen) if shift > 0 else y)
                loss = nn.functional.cross_entropy(logits, labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += loss.item() * len(idx)
                correct += (logits.argmax(1) == labels[idx]).sum().item()
                bar.update()
            log(epoch, {"train/loss": total_loss / n, "train/accuracy": correct / n})
    return model.eval()


def random_shift(y: torch.Tensor, max_shift: float, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` of its size (bilinear, zero fill): cheap augmentation."""
    theta = torch.zeros(len(y), 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = (torch.rand(len(y), 2, generator=gen) * 2 - 1) * 2 * max_shift
    grid = nn.functional.affine_grid(theta.to(y.device), list(y.shape), align_corners=False)
    return nn.functional.grid_sample(y, grid, align_corners=False)


@torch.no_grad()
def timed(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int = 3) -> tuple[torch.Tensor, float]:
    """Run `fn` once to warm up, then `repeats` times; return the output and the best wall time (s)."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return out, best


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Apply `fn` to `x` in chunks (inference on sets larger than fit in memory at once)."""
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])

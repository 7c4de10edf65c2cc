"""The matching stage's objective and loop: the WGAN-GP critics' losses, the terms that train
(the paper's joint one and what the unpaired latents add), the rule for which of them `matcher`
params ask for, and the loop that trains a generator against them.

The rule (`marginal_terms`) lives here, beside the terms it switches and in fit_matcher's deps:
the critic's build (`lsdm.models.matcher.matcher_config`), the training terms (`matching_terms`)
and the run's label (`variant_name`, written into fit_matcher's metrics) all read it, so an edit
to it reruns what it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import nn

from lsdm.models.training import Logger, _batch, _no_log, _progress, adam

# --- which terms train: the rule, and what reports call the result ---------------------------------


class MarginalTerms(NamedTuple):
    """Which unpaired-latent terms train beside the joint one (`marginal_terms`)."""

    pooled: bool  # the class-blind W1 between G's pooled codes and every pool latent (marginal_weight)
    class_aware: bool  # the conditional W1 on the pool's confident pseudo-labels (class_weight)

    @property
    def kind(self) -> str:
        """What ran, as a `matcher.marginal` value (MARGINAL_NAMES names it)."""
        return "class_aware" if self.class_aware else "pooled" if self.pooled else "none"


def marginal_terms(matcher, has_classes: bool = True) -> MarginalTerms:
    """`matcher.marginal` with the zero weights taken out (a pooled term at weight 0 is the paper's
    method); without classes (super-resolution) class_aware keeps only its pooled term. The one
    place this rule lives: the critic's build, the training terms and the run's label all read it."""
    return MarginalTerms(
        pooled=matcher.marginal != "none" and matcher.marginal_weight > 0,
        class_aware=matcher.marginal == "class_aware" and has_classes and matcher.class_weight > 0,
    )


MARGINAL_NAMES = {"none": "LSDM", "pooled": "LSDM + marginal", "class_aware": "LSDM + class-aware marginal"}


def variant_name(matcher, has_classes: bool = True) -> str:
    """What reports call the matcher that ran: "LSDM" is the paper's method (pairs only in the
    matching stage), "LSDM + marginal" ours; the critic's conditioning in brackets."""
    return f"{MARGINAL_NAMES[marginal_terms(matcher, has_classes).kind]} ({matcher.critic} critic)"


class Term(Protocol):
    """One term of the matching objective, at `weight`; its critic is a head of the matcher's critic
    `f` (built by `lsdm.models.matcher.matcher_config` from `marginal_terms`)."""

    weight: float

    def critic_loss(
        self,
        f: nn.Module,
        G: nn.Module,
        rows: torch.Tensor,
        z_fake: torch.Tensor,
        gen: torch.Generator,
        gp_scale: float = 1,
    ) -> tuple[torch.Tensor, dict]:
        """Its critic's loss (the gradient penalty at gp_scale x its weight; 0: not computed) and what it logs."""
        ...

    def generator_score(
        self, f: nn.Module, G: nn.Module, x: torch.Tensor, z_g: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """What G maximises."""
        ...


# --- the critics' losses ---------------------------------------------------------------------------


def gradient_penalty(critic: nn.Module, x: torch.Tensor, z_real: torch.Tensor, z_fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: (|grad_z f(x, z_hat)| - 1)^2 at random points between real and fake codes of the same x.
    Codes may have any shape [B, ...] (latents [B, d], images [B, C, H, W]); the norm is per sample."""
    alpha = torch.rand(z_real.shape[0], *([1] * (z_real.dim() - 1)), device=z_real.device)
    z_hat = (alpha * z_real + (1 - alpha) * z_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x, z_hat).sum(), z_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def critic_objective(
    critic: nn.Module,
    x: torch.Tensor,
    z_real: torch.Tensor,
    z_fake: torch.Tensor,
    gp_weight: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The critic's loss -W1 + gp_weight * GP, and the W1 estimate and GP themselves; with `weights`
    [B] (one per condition, e.g. a pseudo-label's confidence) both sides' means are weighted.

    Same value as `gradient_penalty` plus two separate critic calls, with the condition encoded once
    (`critic.encode(x)`) and scored against the real and fake codes in one pass: on the CPU small
    networks are dominated by per-call overhead, and a conv condition encoder (super-resolution) by
    its FLOPs. Requires a critic without batch statistics (no BatchNorm).

    A latent critic (an MLP of z: `critic.input_grad`) gives grad_z f at the interpolates in closed
    form (`lsdm.models.matcher.leaky_input_grad`): one backward instead of a double backward, the
    same gradients up to rounding. Other critics
    (the pixel critic's conv body) take autograd's double backward over the interpolates' own pass;
    where grad_z f does not depend on the encoded condition (`critic.penalty_ignores_condition`) with
    the condition detached there, so that backward skips the condition encoder.
    """
    b = z_real.shape[0]
    h = critic.encode(x)
    out = critic.score(h, torch.cat([z_real, z_fake]))
    if weights is None:
        w1 = out[:b].mean() - out[b:].mean()
    else:
        w = weights / weights.sum()
        w1 = (out[:b] * w).sum() - (out[b:] * w).sum()
    if not gp_weight:  # a lazy penalty's off step (`train_wgan_gp`'s gp_every): nothing to compute
        return -w1, w1, None
    alpha = torch.rand(b, *([1] * (z_real.dim() - 1)), device=z_real.device)
    z_hat = alpha * z_real + (1 - alpha) * z_fake
    if hasattr(critic, "input_grad"):
        grad = critic.input_grad(h, z_hat)
    else:
        h_hat = h.detach() if getattr(critic, "penalty_ignores_condition", False) else h
        z_hat.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic.score(h_hat, z_hat).sum(), z_hat, create_graph=True)
    gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return -w1 + gp_weight * gp, w1, gp


def marginal_objective(
    critic: nn.Module, z_pool: torch.Tensor, z_fake: torch.Tensor, gp_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The marginal critic's loss -W1_m + gp_weight * GP_m, W1_m and GP_m: `critic.marginal(z)`
    separates pooled latents (any training image, paired or not) from G's codes pooled over
    conditions, and is kept 1-Lipschitz at interpolates between the two, as the joint critic
    (its gradient there in closed form: `critic.marginal_input_grad`)."""
    b = min(len(z_pool), len(z_fake))
    z_pool, z_fake = z_pool[:b], z_fake[:b]
    out = critic.marginal(torch.cat([z_pool, z_fake]))
    w1 = out[:b].mean() - out[b:].mean()
    if not gp_weight:  # a lazy penalty's off step
        return -w1, w1, None
    alpha = torch.rand(b, 1, device=z_pool.device)
    grad = critic.marginal_input_grad(alpha * z_pool + (1 - alpha) * z_fake)
    gp = ((grad.norm(dim=1) - 1) ** 2).mean()
    return -w1 + gp_weight * gp, w1, gp


# --- the terms: the joint W1 term, and what the unpaired latents add --------------------------------
#
# Each term's `critic_loss(f, G, rows, z_fake, gen, gp_scale)` is its critics' loss with the gradient
# penalty at gp_scale x its weight (0: not computed, a lazy penalty's off step) and what it logs;
# `generator_score(f, G, x, z_g, gen)` what G maximises.


def _logged(values: dict) -> dict:
    """The values a term logs, detached (a logged value must not keep its step's autograd graph alive),
    less a penalty not computed on this step (a lazy penalty keeps its last)."""
    return {k: v.detach() for k, v in values.items() if v is not None}


@dataclass
class Joint:
    """The paper's term: W1 between the pairs' (x, z) and (x, G(x, eta)), by the critic f(x, z)."""

    cond: torch.Tensor
    z: torch.Tensor
    gp_weight: float
    weight: float = 1.0

    def critic_loss(self, f, G, rows, z_fake, gen, gp_scale=1):
        loss, w1, gp = critic_objective(f, self.cond[rows], self.z[rows], z_fake, self.gp_weight * gp_scale)
        return loss, _logged({"critic/w1": w1, "critic/gp": gp})

    def generator_score(self, f, G, x, z_g, gen):
        return f(x, z_g).mean()


@dataclass
class Pooled:
    """The class-blind marginal: W1 between G's codes pooled over the pairs' conditions and every
    latent of the pool, by the marginal critic m(z) (`marginal_objective`)."""

    pool: torch.Tensor
    weight: float
    gp_weight: float

    def critic_loss(self, f, G, rows, z_fake, gen, gp_scale=1):
        z_pool = self.pool[_batch(len(self.pool), len(rows), gen).to(self.pool.device)]
        loss, w1, gp = marginal_objective(f, z_pool, z_fake, self.gp_weight * gp_scale)
        return loss, _logged({"critic/w1_marginal": w1, "critic/gp_marginal": gp})

    def generator_score(self, f, G, x, z_g, gen):
        return f.marginal(z_g).mean()


@dataclass
class ClassAware:
    """The class-aware marginal: W1 between (y, z) over the pool latents z whose pseudo-label y is
    confident and (y, G(y, eta)), by the class critic `f.class_critic`, each row weighted by its
    confidence. Unlike `Pooled` it cannot pull class y's codes towards another class's latents;
    it is as right as the pseudo-labels (`lsdm.models.pseudo_labels`)."""

    z: torch.Tensor  # [M, d] the confident pool latents
    labels: torch.Tensor  # [M] their pseudo-labels (G's condition for them)
    confidence: torch.Tensor  # [M]
    weight: float
    gp_weight: float

    def _draw(self, n: int, gen: torch.Generator):
        i = _batch(len(self.z), n, gen).to(self.z.device)
        return self.labels[i], self.z[i], self.confidence[i]

    def critic_loss(self, f, G, rows, z_fake, gen, gp_scale=1):
        y, z, c = self._draw(len(rows), gen)
        with torch.no_grad():
            fake = G(y)
        loss, w1, gp = critic_objective(f.class_critic, y, z, fake, self.gp_weight * gp_scale, weights=c)
        return loss, _logged({"critic/w1_class": w1, "critic/gp_class": gp})

    def generator_score(self, f, G, x, z_g, gen):
        y, _, c = self._draw(len(x), gen)
        return (f.class_critic(y, G(y)) * c).sum() / c.sum()


def train_wgan_gp(
    matcher: nn.Module,
    cond: torch.Tensor,
    z: torch.Tensor,
    *,
    steps: int,
    n_critic: int,
    batch_size: int,
    lr: float,
    gp_weight: float,
    seed: int,
    terms: Sequence = (),
    critic_lr: float | None = None,
    gp_every: int = 1,
    cuda_graph: bool = False,
    log: Logger = _no_log,
    log_every: int = 10,
    desc: str = "fit_matcher",
) -> nn.Module:
    """Match the joint law of (x, G(x, eta)) to that of the pairs (x, z) in W1 (the `Joint` term),
    plus each of `terms` (`Pooled`, `ClassAware`) at its weight.

    `steps` counts generator updates; each follows `n_critic` critic updates, every critic (joint and
    the terms') updated together on the same fakes of the pairs' conditions. The logged `critic/w1`
    is the joint critic's estimate E f(x, z) - E f(x, G(x, eta)) on the last critic batch; each
    term logs its own.

    The schedule's cost levers: the critics learn at `critic_lr` (None: `lr`; a larger one lets
    fewer critic updates keep up, as in TTUR, Heusel et al. 2017), and the gradient penalties are
    computed on every `gp_every`-th critic update only, at `gp_every` x their weight (the lazy
    regularisation of StyleGAN2, Karras et al. 2020): the same penalty on average for a fraction
    of its cost.

    On a GPU the batches are drawn by the device's default generator (seeded with `seed`), so a step
    never waits on the host. With `cuda_graph` (and `gp_every` 1: a lazy penalty changes the step's
    kernels from one update to the next) the step, a fixed sequence of a few hundred small kernels
    whose cost on a GPU is launching them, is captured once as a CUDA graph after `GRAPH_WARMUP`
    eager steps and replayed (`_replayed`): the same kernels on the same draws, one launch per step.
    """
    on_gpu = z.is_cuda
    graphed = cuda_graph and on_gpu and gp_every == 1
    # batch draws; weights were seeded by the caller
    gen = (torch.cuda.default_generators[z.device.index or 0] if on_gpu else torch.Generator()).manual_seed(seed)
    G, f = matcher.generator, matcher.critic
    terms = [Joint(cond, z, gp_weight), *terms]
    critic_lr = critic_lr or lr
    # a graph reads the learning rates from tensors (the schedules fill them in place) and updates
    # Adam's step counts on the GPU (capturable); its gradients live in fixed buffers (not set to None)
    as_lr = (lambda v: torch.tensor(v, device=z.device)) if graphed else float
    opt_g = adam(G.parameters(), lr=as_lr(lr), betas=(0.5, 0.9), capturable=graphed)
    opt_f = adam(f.parameters(), lr=as_lr(critic_lr), betas=(0.5, 0.9), capturable=graphed)
    to_none = not graphed
    # Cosine decay of both learning rates: late small steps let G settle on the pairs' modes
    # instead of orbiting them.
    sched_g = torch.optim.lr_scheduler.CosineAnnealingLR(opt_g, T_max=steps, eta_min=lr * 0.05)
    sched_f = torch.optim.lr_scheduler.CosineAnnealingLR(opt_f, T_max=steps, eta_min=critic_lr * 0.05)
    n = len(z)
    updates, logged = 0, {}  # critic updates so far (the lazy penalty's clock); the last logged values

    def one_step() -> tuple[dict, torch.Tensor]:
        """n_critic updates of every critic, then G's: the last logged values and G's loss."""
        nonlocal updates, logged
        # G is fixed while the critic learns: its codes for all n_critic batches come from one call
        idx = _batch(n, n_critic * batch_size, gen).to(z.device)
        with torch.no_grad():
            fakes = G(cond[idx]).split(batch_size)
        for rows, z_fake in zip(idx.split(batch_size), fakes):
            gp_scale = gp_every if updates % gp_every == 0 else 0
            updates, loss_f = updates + 1, 0.0
            for term in terms:
                loss, values = term.critic_loss(f, G, rows, z_fake, gen, gp_scale)
                loss_f, logged = loss_f + term.weight * loss, {**logged, **values}
            opt_f.zero_grad(set_to_none=to_none)
            loss_f.backward()
            opt_f.step()
        x = cond[_batch(n, batch_size, gen).to(z.device)]
        f.requires_grad_(False)  # the generator step needs no gradients of the critic's weights
        z_g = G(x)
        loss_g = -sum(term.weight * term.generator_score(f, G, x, z_g, gen) for term in terms)
        opt_g.zero_grad(set_to_none=to_none)
        loss_g.backward()
        opt_g.step()
        f.requires_grad_(True)
        return logged, loss_g.detach()

    run_step = _replayed(one_step) if graphed else one_step
    matcher.train()
    with _progress(steps, desc) as bar:
        for step in range(1, steps + 1):
            logged, loss_g = run_step()
            sched_g.step()
            sched_f.step()
            if step % log_every == 0 or step == steps:
                log(step, {**{k: v.item() for k, v in logged.items()}, "generator/loss": loss_g.item()})
                bar.set_postfix(w1=f"{logged['critic/w1'].item():.3f}", refresh=False)
            bar.update()
    return matcher.eval()


GRAPH_WARMUP = 3  # eager steps before the capture: cuBLAS handles, autograd's buffers, Adam's state


def _replayed(step: Callable[[], tuple]) -> Callable[[], tuple]:
    """`step` as a CUDA graph: its first `GRAPH_WARMUP` calls run it eagerly on a side stream (as
    capture requires), the next captures it once and every call from then on replays the capture.
    Each call is one real training step (capturing runs nothing, so the capture's call replays too);
    what it returns are the graph's output tensors, which each replay overwrites in place."""
    calls, graph, out, side = 0, None, None, None

    def run() -> tuple:
        nonlocal calls, graph, out, side
        calls += 1
        if calls <= GRAPH_WARMUP:
            side = side or torch.cuda.Stream()  # one side stream for every warm-up step, as torch's docs do
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                result = step()
            torch.cuda.current_stream().wait_stream(side)
            return result
        if graph is None:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = step()
        graph.replay()
        return out

    return run


# --- a critic-free estimator: debiased minibatch optimal transport (`matcher.estimator: minibatch_ot`) ---


def condition_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[len(a), len(b)] distances between conditions: 0/1 for class labels (integers), Euclidean
    between flattened conditions otherwise (low-resolution images)."""
    if not a.is_floating_point():
        return (a[:, None] != b[None, :]).to(torch.float32)
    return torch.cdist(a.flatten(1).float(), b.flatten(1).float())


def transport_cost(
    z_a: torch.Tensor, z_b: torch.Tensor, ground: torch.Tensor | float = 0.0, mass: torch.Tensor | None = None
) -> torch.Tensor:
    """The exact OT cost between the rows of z_a (masses `mass`, else uniform) and of z_b (uniform)
    under ||z - z'|| + `ground` (a [len(z_a), len(z_b)] cost of their conditions), differentiable in
    both codes: the plan is solved on the detached costs (POT's network simplex); by the envelope
    theorem the gradient of the minimum is the cost's gradient at the optimal plan."""
    import ot

    cost = ((z_a[:, None, :] - z_b[None, :, :]) ** 2).sum(-1).clamp_min(1e-12).sqrt() + ground
    a = (mass / mass.sum()).double().cpu().numpy() if mass is not None else ot.unif(len(z_a))
    plan = ot.emd(a, ot.unif(len(z_b)), cost.detach().double().cpu().numpy(), numItermax=1_000_000)
    return (torch.as_tensor(plan, dtype=cost.dtype, device=cost.device) * cost).sum()


@dataclass
class Transport:
    """One term of the critic-free matcher: a debiased minibatch OT between real rows (x, z) and G's
    codes, S = OT(real, G) - OT(G, G') / 2 (G' a second draw for the same conditions), under the cost
    ||z - z'|| + condition_cost * d(x, x') (`condition_distance`; with labels a cost that keeps codes
    in their class). OT(real, G) alone has a minibatch bias towards G's collapse onto a few codes;
    the second term, as in the Sinkhorn divergence (Genevay et al. 2018), removes it: a spread-out G
    pays for its spread twice. The joint term asks G for the real rows' own conditions; the pooled one
    (`condition_cost` 0) for conditions drawn from `fake_cond` (the pairs'), codes compared alone."""

    z: torch.Tensor  # [M, d] the real codes
    cond: torch.Tensor | None  # [M, ...] their conditions (pseudo-labels for the class-aware term); None: pooled
    weight: float
    condition_cost: float
    name: str  # what it logs: transport/<name>
    mass: torch.Tensor | None = None  # [M] row weights (a pseudo-label's confidence)
    fake_cond: torch.Tensor | None = None  # the conditions G is asked for, when not the rows' own
    debiased: bool = True  # False: OT(real, G) alone (the biased estimate; for comparison)

    def loss(self, G: nn.Module, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, dict]:
        i = _batch(len(self.z), batch_size, gen).to(self.z.device)
        z, x = self.z[i], None if self.cond is None else self.cond[i]
        x_fake = (
            x if self.fake_cond is None else self.fake_cond[_batch(len(self.fake_cond), batch_size, gen).to(z.device)]
        )
        fake, again = G(torch.cat([x_fake, x_fake])).chunk(2) if self.debiased else (G(x_fake), None)
        ground = self.condition_cost * condition_distance(x, x_fake) if self.condition_cost else 0.0
        s = transport_cost(z, fake, ground, None if self.mass is None else self.mass[i])
        if self.debiased:
            ground_fake = self.condition_cost * condition_distance(x_fake, x_fake) if self.condition_cost else 0.0
            s = s - transport_cost(fake, again, ground_fake) / 2
        return s, {f"transport/{self.name}": s.detach()}


def transport_terms(
    p, cond: torch.Tensor, z: torch.Tensor, pool: torch.Tensor | None = None, pseudo=None
) -> list[Transport]:
    """The critic-free terms `p` asks for, by the same rule as the critics' (`marginal_terms`)."""
    which = marginal_terms(p, has_classes=pseudo is not None)
    terms = [Transport(z, cond, 1.0, p.ot_condition_cost, "joint")]
    if which.pooled:
        terms.append(Transport(pool, None, p.marginal_weight, 0.0, "pooled", fake_cond=cond))
    if which.class_aware:
        z_c, labels, confidence = pseudo
        terms.append(
            Transport(z_c, labels.to(cond.dtype), p.class_weight, p.ot_condition_cost, "class", mass=confidence)
        )
    return terms


def train_transport(
    matcher: nn.Module,
    terms: Sequence[Transport],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    log: Logger = _no_log,
    log_every: int = 10,
    desc: str = "fit_matcher",
) -> nn.Module:
    """Minimise the weighted sum of `terms` (`Transport`) in G's weights by Adam, learning rate on a
    cosine: no critic, one generator update a step. The critic in `matcher` is left as built."""
    gen = torch.Generator().manual_seed(seed)  # batch draws; weights were seeded by the caller
    G = matcher.generator
    opt = adam(G.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.05)
    matcher.train()
    with _progress(steps, desc) as bar:
        for step in range(1, steps + 1):
            loss, logged = 0.0, {}
            for term in terms:
                value, values = term.loss(G, batch_size, gen)
                loss, logged = loss + term.weight * value, {**logged, **values}
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % log_every == 0 or step == steps:
                log(step, {**{k: v.item() for k, v in logged.items()}, "generator/loss": loss.item()})
                bar.set_postfix(ot=f"{loss.item():.3f}", refresh=False)
            bar.update()
    return matcher.eval()


def matching_terms(p, matcher: nn.Module, pool: torch.Tensor | None = None, pseudo=None) -> list:
    """The terms beside the joint one that the `matcher` params section `p` asks for (`marginal` and
    its weights, as `marginal_terms` reads them): `Pooled` on the latent `pool`,
    `ClassAware` on `pseudo` = (confident pool latents, their labels, their confidences)."""
    which = marginal_terms(p, has_classes=pseudo is not None)
    terms = []
    if which.class_aware:
        if not hasattr(matcher.critic, "class_critic"):
            raise ValueError("matcher.marginal = class_aware needs a critic built with a class critic")
        terms.append(ClassAware(*pseudo, weight=p.class_weight, gp_weight=p.gp_weight))
    if which.pooled:
        if pool is None or not getattr(matcher.critic, "has_marginal", False):
            raise ValueError("matcher.marginal_weight > 0 needs the latent pool and a critic built with marginal=True")
        terms.insert(0, Pooled(pool, p.marginal_weight, p.gp_weight))
    return terms


def train_matcher(
    matcher: nn.Module, p, cond: torch.Tensor, z: torch.Tensor, pool: torch.Tensor | None = None, pseudo=None, **kwargs
) -> nn.Module:
    """Train `matcher` by the estimator, budget, terms and weights of the `matcher` params section `p`:
    `train_wgan_gp` against critics, or `train_transport` (`estimator: minibatch_ot`) without."""
    if p.estimator == "minibatch_ot":
        return train_transport(
            matcher,
            transport_terms(p, cond, z, pool, pseudo),
            steps=p.steps,
            batch_size=p.batch_size,
            lr=p.lr,
            seed=p.seed,
            **kwargs,
        )
    return train_wgan_gp(
        matcher,
        cond,
        z,
        steps=p.steps,
        n_critic=p.n_critic,
        batch_size=p.batch_size,
        lr=p.lr,
        gp_weight=p.gp_weight,
        seed=p.seed,
        terms=matching_terms(p, matcher, pool, pseudo),
        critic_lr=p.critic_lr,
        gp_every=p.gp_every,
        cuda_graph=p.cuda_graph,
        **kwargs,
    )

"""The matching stage: generator G(x, eta) -> z and critic f(x, z), trained as a WGAN-GP so that
the joint law of (x, G(x, eta)) matches that of (x, E(y)) in the 1-Wasserstein distance.

The condition x enters both networks through a condition encoder chosen by the task
(`lsdm.tasks`): a one-hot label for class-conditional generation, a small conv net of the
low-resolution image for super-resolution. The critic sees it one of two ways (`matcher.critic`):

- `concat`: f = MLP([cond(x), z]), the paper's generic critic;
- `projection`: f = w.phi(z) + <embed(cond(x)), phi(z)> (Miyato & Koyama 2018): with labels, one
  linear head per class on shared features of z, i.e. the conditional W1 class by class.

Either critic can carry what the unpaired latents add (`matcher.marginal`, our extension beyond the
paper): a marginal critic m(z), the W1 critic between G's codes pooled over conditions and all latents
of the pool, an MLP of its own (sharing the joint critic's features was worse on validation); and a
class critic f_c(y, z) on the pool latents with confident pseudo-labels y (`matcher.marginal:
class_aware`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lsdm.models.matching import marginal_terms


def mlp(d_in: int, width: int, depth: int, d_out: int | None) -> nn.Sequential:
    """`depth` LeakyReLU layers `width` wide, then a linear output (none when d_out is None: features)."""
    layers, d = [], d_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.LeakyReLU(0.2)]
        d = width
    return nn.Sequential(*layers, *([nn.Linear(d, d_out)] if d_out is not None else []))


@torch.no_grad()  # the derivative of a LeakyReLU is piecewise constant: no gradient flows through it
def leaky_derivatives(layers: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The derivative of each of `layers`' LeakyReLUs at its input for `layers(x)`: 1 where the input
    is > 0, the slope elsewhere (as LeakyReLU's own backward), one tensor per LeakyReLU."""
    out = []
    for layer in layers:
        if isinstance(layer, nn.LeakyReLU):
            # LeakyReLU's own backward of ones: 3x faster on the CPU than torch.where(x > 0, 1, slope)
            out.append(torch.ops.aten.leaky_relu_backward(torch.ones_like(x), x, layer.negative_slope, False))
        x = layer(x)
    return out


def leaky_input_grad(weights: list[torch.Tensor], derivatives: list[torch.Tensor], v: torch.Tensor) -> torch.Tensor:
    """v^T d out / d input of a LeakyReLU MLP, each row at its own point: `weights[i]` maps into the
    LeakyReLU whose derivatives there are `derivatives[i]` (`leaky_derivatives`), `v` [B, width] is
    d out / d (last activation).

    Why by hand: the gradient penalty needs grad_z f as a function of the weights. Autograd's
    `create_graph=True` records the backward pass and differentiates it again (a double backward);
    a LeakyReLU's derivative is piecewise constant, so grad_z f is this chain of products with
    fixed factors and matrix products, and one ordinary backward through it gives the same weight
    gradients, with a third of the kernels. The factors are precomputed once, so each link is one
    multiply (a `torch.where` on the mask each time cost ~10% of the matcher's training)."""
    g = v
    for w, d in zip(reversed(weights), reversed(derivatives)):
        g = (g * d) @ w
    return g  # [B, input dim]


class Generator(nn.Module):
    def __init__(self, cond: nn.Module, cond_dim: int, noise_dim: int, z_dim: int, width: int, depth: int):
        super().__init__()
        self.cond, self.noise_dim = cond, noise_dim
        self.net = mlp(cond_dim + noise_dim, width, depth, z_dim)

    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        c = self.cond(x)  # [B, cond_dim]
        if eta is None:
            eta = torch.randn(c.shape[0], self.noise_dim, device=c.device)
        return self.net(torch.cat([c, eta], dim=1))  # [B, z_dim]


class MarginalCritic(nn.Module):
    """What a latent critic may carry beside f: the marginal critic m(z) = MLP(z), trained by the
    same optimiser (`lsdm.models.matching.marginal_objective`)."""

    def add_marginal(self, z_dim: int, width: int, depth: int) -> None:
        self.marginal_net = mlp(z_dim, width, depth, 1)

    def add_class_critic(self, n_classes: int, z_dim: int, width: int, depth: int) -> None:
        """The class-aware marginal's critic f_c(y, z): a projection critic on (pseudo-label, pool
        latent) pairs (`lsdm.models.matching.ClassAware`), with weights of its own."""
        self.class_critic = ProjectionCritic(OneHot(n_classes), n_classes, z_dim, width, depth)

    @property
    def has_marginal(self) -> bool:
        return "marginal_net" in self._modules

    def marginal(self, z: torch.Tensor) -> torch.Tensor:
        """m(z), the marginal critic of codes pooled over conditions: [N]."""
        return self.marginal_net(z).squeeze(1)

    def marginal_input_grad(self, z_hat: torch.Tensor) -> torch.Tensor:
        """grad m at each row of z_hat [B, d], in closed form (`leaky_input_grad`)."""
        net = self.marginal_net
        linears = [m.weight for m in net[:-1] if isinstance(m, nn.Linear)]
        return leaky_input_grad(linears, leaky_derivatives(net[:-1], z_hat), net[-1].weight.expand(len(z_hat), -1))


class Critic(MarginalCritic):
    """f(x, z) = MLP([cond(x), z]): no normalisation layers, since the gradient penalty is taken per sample.

    Training scores three codes per condition (real, fake, interpolated; `lsdm.models.matching.critic_objective`),
    so the condition's share of the first layer, W_c cond(x) + b, is computed once (`encode`) and
    added to each code's share W_z z (`score`): the same function as the MLP on the concatenation.
    """

    penalty_ignores_condition = True  # grad_z f is piecewise constant in encode(x) (see critic_objective)

    def __init__(
        self,
        cond: nn.Module,
        cond_dim: int,
        z_dim: int,
        width: int,
        depth: int,
        marginal: bool = False,
        class_critic: int = 0,
    ):
        super().__init__()
        self.cond, self.cond_dim = cond, cond_dim
        self.net = mlp(cond_dim + z_dim, width, depth, 1)
        if marginal:
            self.add_marginal(z_dim, width, depth)
        if class_critic:
            self.add_class_critic(class_critic, z_dim, width, depth)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.score(self.encode(x), z)  # [B]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The condition's pre-activation share of the first layer, W_c cond(x) + b: [B, width]."""
        first = self.net[0]
        return F.linear(self.cond(x), first.weight[:, : self.cond_dim], first.bias)

    def score(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f for codes z [k*B, z_dim], k blocks of B rows each scored against encoded conditions h [B, width]."""
        pre = per_block(F.linear(z, self.net[0].weight[:, self.cond_dim :]), h, torch.add)
        return self.net[1:](pre).squeeze(1)  # [k*B]

    def input_grad(self, h: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
        """grad_z f at each row of z_hat [B, d] against encoded conditions h [B, width], in closed
        form (`leaky_input_grad`): the penalty needs no double backward."""
        net = self.net
        w_z = net[0].weight[:, self.cond_dim :]
        derivatives = leaky_derivatives(net[1:-1], F.linear(z_hat, w_z) + h)
        weights = [w_z, *(m.weight for m in net[2:-1] if isinstance(m, nn.Linear))]
        return leaky_input_grad(weights, derivatives, net[-1].weight.expand(len(z_hat), -1))


class Projection(nn.Module):
    """A projection critic over features h = body(z): f(x, z) = w.h + <embed(cond(x)), h>.

    Why: with the condition concatenated, the critic can score z while half-ignoring x, and G's
    label accuracy fell as pairs grew; projected, every class has its own linear head
    on shared features, so x cannot be ignored. No normalisation layers (the GP is per sample).
    Subclasses set `body`; `lsdm.models.pixel_gan.PixelCritic` is the same head over a conv body.
    """

    penalty_ignores_condition = False  # grad_z f is linear in encode(x): the penalty must see it

    def __init__(self, cond: nn.Module, cond_dim: int, body: nn.Module, features: int):
        super().__init__()
        self.cond, self.body = cond, body
        self.out = nn.Linear(features, 1)
        self.embed = nn.Linear(cond_dim, features, bias=False)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.score(self.encode(x), z)  # [B]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The condition's projection vector embed(cond(x)): [B, features]."""
        return self.embed(self.cond(x))

    def score(self, e: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f for codes z [k*B, ...], k blocks of B against encoded conditions e [B, features]
        (see `lsdm.models.matching.critic_objective`)."""
        h = self.body(z)
        return self.out(h).squeeze(1) + per_block(h, e, torch.mul).sum(1)  # [k*B]


class ProjectionCritic(Projection, MarginalCritic):
    """The projection critic on latent codes: body = an MLP of z; optionally the marginal critic."""

    def __init__(
        self,
        cond: nn.Module,
        cond_dim: int,
        z_dim: int,
        width: int,
        depth: int,
        marginal: bool = False,
        class_critic: int = 0,
    ):
        super().__init__(cond, cond_dim, mlp(z_dim, width, depth, None), width)
        if marginal:
            self.add_marginal(z_dim, width, depth)
        if class_critic:
            self.add_class_critic(class_critic, z_dim, width, depth)

    def input_grad(self, e: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
        """grad_z f at each row of z_hat [B, d]: d f / d h = w + e, pulled back through the body in
        closed form (`leaky_input_grad`)."""
        weights = [m.weight for m in self.body if isinstance(m, nn.Linear)]
        return leaky_input_grad(weights, leaky_derivatives(self.body, z_hat), self.out.weight + e)


def per_block(rows: torch.Tensor, h: torch.Tensor, op) -> torch.Tensor:
    """op(rows, h) with rows [k*B, ...] taken as k blocks of B, each block against h [B, ...]:
    how a critic scores several codes per condition without repeating the condition."""
    return op(rows.unflatten(0, (-1, len(h))), h).flatten(0, 1)


class Matcher(nn.Module):
    """Generator and critic together, so one checkpoint holds the matching stage."""

    def __init__(self, generator: Generator, critic: Critic):
        super().__init__()
        self.generator, self.critic = generator, critic

    def forward(self, x: torch.Tensor, eta: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(x, eta)


class OneHot(nn.Module):
    """Class label -> one-hot vector: the condition encoder for class-conditional generation."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x.long(), self.n_classes).float()  # [B] -> [B, n_classes]


class ConvCondition(nn.Module):
    """Low-resolution image -> feature vector: the condition encoder for super-resolution.

    A 3x3 conv at the input's resolution keeps local detail, a stride-2 one halves it (7 -> 4 px for
    MNIST, 16 -> 8 for 64-px faces), and average pooling caps it at 4x4 so the head stays small.
    It runs on every critic batch, so its width (`sr.encoder_width`) trades speed for quality; the
    README's super-resolution section has the measured trade.
    """

    def __init__(self, channels: int, size: int, width: int = 8, out_dim: int = 128):
        super().__init__()
        side = (size + 1) // 2  # after the stride-2 conv (padding 1)
        pool = [nn.AdaptiveAvgPool2d(4)] if side > 4 else []
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            *pool,
            nn.Flatten(),
            nn.Linear(2 * width * min(4, side) ** 2, out_dim),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # [B, C, h, w] -> [B, out_dim]


def condition_encoder(kind: str, **spec) -> tuple[nn.Module, int]:
    """A fresh condition encoder and its output width, from a task's condition spec."""
    if kind == "label":
        return OneHot(spec["n_classes"]), spec["n_classes"]
    if kind == "image":
        enc = ConvCondition(**spec)  # channels, size and, from the task, width
        return enc, enc.net[-2].out_features
    raise ValueError(f"unknown condition kind {kind!r}; allowed: ['label', 'image']")


CRITICS: dict[str, type[nn.Module]] = {"concat": Critic, "projection": ProjectionCritic}


def matcher_config(p, condition: dict, z_dim: int) -> dict:
    """`wgan_gp_mlp`'s arguments from the `matcher` params section (what a checkpoint stores)."""
    terms = marginal_terms(p, has_classes=condition["kind"] == "label")
    return dict(
        condition=condition,
        z_dim=z_dim,
        noise_dim=p.noise_dim,
        width=p.width,
        depth=p.depth,
        critic=p.critic,
        marginal=terms.pooled,
        class_critic=condition["n_classes"] if terms.class_aware else 0,
        critic_width=p.critic_width,
    )


def wgan_gp_mlp(
    condition: dict,
    z_dim: int,
    noise_dim: int,
    width: int,
    depth: int,
    critic: str = "concat",
    marginal: bool = False,
    class_critic: int = 0,
    critic_width: int | None = None,
) -> Matcher:
    """MLP generator and critic; each gets its own condition encoder (they must not share weights).
    `critic` names how f sees the condition (CRITICS); `marginal` adds the marginal critic m(z);
    `class_critic` (a number of classes) the class-aware marginal's critic f_c(y, z); the critics are
    `critic_width` wide (None: `width`, as G)."""
    g_cond, c_dim = condition_encoder(**condition)
    f_cond, _ = condition_encoder(**condition)
    return Matcher(
        Generator(g_cond, c_dim, noise_dim, z_dim, width, depth),
        CRITICS[critic](
            f_cond, c_dim, z_dim, critic_width or width, depth, marginal=marginal, class_critic=class_critic
        ),
    )

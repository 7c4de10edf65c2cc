"""Shapes, registry round-trips through checkpoints, and a few steps of each loop moving its loss."""

import pytest
import torch

from lsdm.io import save_checkpoint
from lsdm.models import MODELS, build, load
from lsdm.models.matching import ClassAware, Pooled, gradient_penalty, matching_terms, train_wgan_gp
from lsdm.models.training import train_autoencoder, train_classifier

CONFIGS = {
    "conv_ae": dict(image_size=28, in_channels=1, dim=8, channels=[8, 16], noise=0.05),
    "wgan_gp_mlp": dict(condition={"kind": "label", "n_classes": 10}, z_dim=8, noise_dim=4, width=32, depth=2),
    "lenet": dict(image_size=28, in_channels=1, n_classes=10),
    "pixel_wgan": dict(condition={"kind": "label", "n_classes": 10}, image_size=28, channels=1, noise_dim=8, width=4),
    "flow_mlp": dict(condition={"kind": "label", "n_classes": 10}, z_dim=8, width=16, depth=2),
}


def test_every_registered_model_has_a_test_config():
    assert set(MODELS) == set(CONFIGS)


@pytest.mark.parametrize("size, channels, levels", [(28, 1, [8, 16]), (32, 3, [8, 16, 32]), (16, 3, [4])])
def test_autoencoder_shapes(size, channels, levels):
    ae = build("conv_ae", dict(image_size=size, in_channels=channels, dim=5, channels=levels))
    y = torch.rand(3, channels, size, size)
    assert ae.encode(y).shape == (3, 5)
    out = ae(y)
    assert out.shape == y.shape and 0 <= out.min() and out.max() <= 1


def test_autoencoder_rejects_indivisible_size():
    with pytest.raises(ValueError, match="divisible"):
        build("conv_ae", dict(image_size=30, in_channels=1, dim=4, channels=[8, 8]))


def test_matcher_and_evalnet_shapes():
    m = build("wgan_gp_mlp", CONFIGS["wgan_gp_mlp"])
    x = torch.tensor([0, 3, 9])
    z = m(x)
    assert z.shape == (3, 8) and m.critic(x, z).shape == (3,)
    eta = torch.randn(3, 4)
    assert torch.equal(m(x, eta), m(x, eta))  # deterministic given eta: one step, no hidden noise
    net = build("lenet", CONFIGS["lenet"])
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10) and net.features(torch.rand(2, 1, 28, 28)).shape == (2, 128)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_checkpoint_rebuilds_the_same_network(name, tmp_path):
    torch.manual_seed(0)
    model = build(name, CONFIGS[name])
    save_checkpoint(tmp_path / "m.pt", name, CONFIGS[name], model.state_dict())
    again = load(tmp_path / "m.pt")
    assert list(again.state_dict()) == list(model.state_dict()) != []
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_gradient_penalty_zero_for_unit_slope_critic():
    class Slope(torch.nn.Module):  # f(x, z) = z[0]: gradient norm exactly 1 everywhere
        def forward(self, x, z):
            return z[:, 0]

    z = torch.randn(16, 4)
    assert gradient_penalty(Slope(), None, z, z + 1).item() == pytest.approx(0.0, abs=1e-10)


def test_loops_reduce_their_losses():
    torch.manual_seed(0)
    y = torch.rand(64, 1, 8, 8).round()
    ae = build("conv_ae", dict(image_size=8, in_channels=1, dim=4, channels=[8]))
    log: list = []
    train_autoencoder(
        ae, y, steps=60, batch_size=16, lr=1e-2, seed=0, log=lambda s, m: log.append(m["train/mse"]), log_every=10
    )
    assert log[-1] < log[0]

    labels = torch.randint(0, 2, (64,))
    x = torch.rand(64, 1, 8, 8) * 0.3 + labels.view(-1, 1, 1, 1) * 0.7  # separable by brightness
    net = build("lenet", dict(image_size=8, in_channels=1, n_classes=2))
    accs: list = []
    train_classifier(
        net, x, labels, epochs=8, batch_size=16, lr=3e-3, seed=0, log=lambda s, m: accs.append(m["train/accuracy"])
    )
    assert accs[-1] > 0.9

    cond = torch.randint(0, 2, (64,))
    z = torch.randn(64, 2) * 0.1 + torch.stack([cond * 4.0 - 2, torch.zeros(64)], 1)  # class k sits at x = 4k - 2
    m = build("wgan_gp_mlp", dict(condition={"kind": "label", "n_classes": 2}, z_dim=2, noise_dim=2, width=64, depth=2))
    train_wgan_gp(m, cond, z, steps=300, n_critic=3, batch_size=64, lr=1e-3, gp_weight=10.0, seed=0)
    with torch.no_grad():
        means = [m(torch.full((256,), k))[:, 0].mean().item() for k in (0, 1)]
    assert means[0] < -1 and means[1] > 1, means  # the generator learned which mode each label owns


def test_cuda_graph_changes_nothing_on_the_cpu():
    """`matcher.cuda_graph` is for a GPU only: on the CPU the matcher trains bit for bit as without it
    (the default run's numbers do not depend on the flag). Its GPU side: tests/test_gpu.py."""

    def fit(cuda_graph: bool) -> torch.Tensor:
        torch.manual_seed(0)
        m = build(
            "wgan_gp_mlp", dict(condition={"kind": "label", "n_classes": 2}, z_dim=2, noise_dim=2, width=16, depth=2)
        )
        cond = torch.arange(32) % 2
        train_wgan_gp(
            m,
            cond,
            torch.randn(32, 2),
            steps=8,
            n_critic=2,
            batch_size=16,
            lr=1e-3,
            gp_weight=10.0,
            seed=0,
            cuda_graph=cuda_graph,
        )
        return torch.cat([q.detach().flatten() for q in m.parameters()])

    assert torch.equal(fit(True), fit(False))


def test_classifier_epoch_size_bounds_an_epoch_and_changes_nothing_above_the_data():
    """`evalnet.epoch_size`: at or above the data's size the weights are bit-identical to no cap (the
    default run's evaluation net is unchanged); below it each epoch takes that many examples only."""
    labels = torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(1))
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 0.3 + labels.view(-1, 1, 1, 1) * 0.7

    def fit(epoch_size):
        torch.manual_seed(0)
        net, batches = build("lenet", dict(image_size=8, in_channels=1, n_classes=2)), []
        net.register_forward_pre_hook(lambda _, inputs: batches.append(len(inputs[0])))
        train_classifier(net, x, labels, epochs=3, batch_size=16, lr=3e-3, seed=0, epoch_size=epoch_size)
        return net.state_dict(), batches

    whole, whole_batches = fit(None)
    same, _ = fit(64)
    assert all(torch.equal(whole[k], same[k]) for k in whole)
    capped, capped_batches = fit(24)
    assert sum(whole_batches) == 3 * 64 and capped_batches == [16, 8] * 3  # 24 examples an epoch
    assert not all(torch.equal(whole[k], capped[k]) for k in whole)


def test_fused_critic_objective_equals_separate_terms():
    from lsdm.models.matching import critic_objective

    torch.manual_seed(0)
    m = build("wgan_gp_mlp", CONFIGS["wgan_gp_mlp"])
    x, z_real, z_fake = torch.randint(0, 10, (16,)), torch.randn(16, 8), torch.randn(16, 8)
    torch.manual_seed(1)
    loss, w1, gp = critic_objective(m.critic, x, z_real, z_fake, 10.0)
    torch.manual_seed(1)  # same interpolation points
    gp_ref = gradient_penalty(m.critic, x, z_real, z_fake)
    w1_ref = m.critic(x, z_real).mean() - m.critic(x, z_fake).mean()
    assert torch.allclose(w1, w1_ref, atol=1e-6) and torch.allclose(gp, gp_ref, atol=1e-5)
    assert torch.allclose(loss, -w1_ref + 10.0 * gp_ref, atol=1e-4)


@pytest.mark.parametrize(
    "name, critic", [("wgan_gp_mlp", "concat"), ("wgan_gp_mlp", "projection"), ("pixel_wgan", None)]
)
def test_critic_gradients_through_an_image_condition_match_the_unfused_loss(name, critic):
    """The fused objective detaches the condition at the interpolates only where that is exact (the
    MLP critic); the projection critic keeps it. Either way every critic parameter's gradient is the reference's."""
    from lsdm.models.matching import critic_objective

    cfg = dict(
        CONFIGS[name], condition={"kind": "image", "channels": 1, "size": 7}, **({"critic": critic} if critic else {})
    )
    torch.manual_seed(0)
    m = build(name, cfg)
    x = torch.rand(16, 1, 7, 7)
    shape = (16, 8) if name == "wgan_gp_mlp" else (16, 1, 28, 28)
    z_real, z_fake = torch.randn(shape), torch.randn(shape)
    grads = []
    for fused in (True, False):
        m.critic.zero_grad()
        torch.manual_seed(1)
        if fused:
            loss = critic_objective(m.critic, x, z_real, z_fake, 10.0)[0]
        else:
            gp = gradient_penalty(m.critic, x, z_real, z_fake)
            loss = -(m.critic(x, z_real).mean() - m.critic(x, z_fake).mean()) + 10.0 * gp
        loss.backward()
        grads.append([p.grad.clone() for p in m.critic.parameters()])
    assert len(grads[0]) == len(grads[1]) > 0
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(*grads))


def test_critic_scores_blocks_of_codes_against_one_encoded_condition():
    """score(encode(x), [z1; z2]) is the MLP on [cond(x), z] for each block: the split first layer
    changes the cost, not the function."""
    torch.manual_seed(0)
    f = build("wgan_gp_mlp", dict(CONFIGS["wgan_gp_mlp"], condition={"kind": "image", "channels": 1, "size": 7})).critic
    x, z1, z2 = torch.rand(5, 1, 7, 7), torch.randn(5, 8), torch.randn(5, 8)
    c = f.cond(x)
    want = torch.cat([f.net(torch.cat([c, z], 1)).squeeze(1) for z in (z1, z2)])
    assert torch.allclose(f.score(f.encode(x), torch.cat([z1, z2])), want, atol=1e-6)
    assert torch.allclose(f(x, z2), want[5:], atol=1e-6)


def test_projection_critic_is_a_linear_head_per_class_on_shared_features():
    """With labels, f(x, z) = w.phi(z) + e_x.phi(z): the class only picks the head; and scoring
    blocks of codes against one encoded condition is the same function as calling f per block."""
    torch.manual_seed(0)
    m = build("wgan_gp_mlp", dict(CONFIGS["wgan_gp_mlp"], critic="projection"))
    f = m.critic
    x, z1, z2 = torch.tensor([0, 3, 3, 9]), torch.randn(4, 8), torch.randn(4, 8)
    h = f.body(z1)
    heads = f.out.weight[0] + f.embed.weight.T[x]  # [4, width]: one weight vector per class
    assert torch.allclose(f(x, z1), (h * heads).sum(1) + f.out.bias, atol=1e-5)
    assert torch.allclose(f.score(f.encode(x), torch.cat([z1, z2])), torch.cat([f(x, z1), f(x, z2)]), atol=1e-6)
    assert not f.has_marginal  # the marginal critic exists only when asked for


@pytest.mark.parametrize("critic", ["concat", "projection"])
def test_marginal_objective_is_w1_and_penalty_of_the_marginal_critic(critic):
    from lsdm.models.matching import marginal_objective

    torch.manual_seed(0)
    f = build("wgan_gp_mlp", dict(CONFIGS["wgan_gp_mlp"], critic=critic, marginal=True)).critic
    z_pool, z_fake = torch.randn(16, 8), torch.randn(16, 8) + 1
    torch.manual_seed(1)
    loss, w1, gp = marginal_objective(f, z_pool, z_fake, 10.0)
    torch.manual_seed(1)
    alpha = torch.rand(16, 1)
    z_hat = (alpha * z_pool + (1 - alpha) * z_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(f.marginal(z_hat).sum(), z_hat)
    gp_ref = ((grad.norm(dim=1) - 1) ** 2).mean()
    w1_ref = f.marginal(z_pool).mean() - f.marginal(z_fake).mean()
    assert torch.allclose(w1, w1_ref, atol=1e-6) and torch.allclose(gp, gp_ref, atol=1e-5)
    assert torch.allclose(loss, -w1_ref + 10.0 * gp_ref, atol=1e-4)


@pytest.mark.parametrize("critic", ["concat", "projection"])
@pytest.mark.timeout(600)  # 2 x 250 training steps against a 2,000-code pool: minutes on a loaded 2-core machine
def test_marginal_term_pulls_pooled_codes_toward_the_pool(critic):
    """Few pairs near 0, a large pool near +3: without the marginal term G copies the pairs; with
    it G's pooled codes move toward the pool (W1 to both is traded by the weight)."""
    torch.manual_seed(0)
    cond = torch.zeros(8, dtype=torch.long)
    z = torch.randn(8, 2) * 0.3
    pool = torch.randn(2000, 2) * 0.3 + torch.tensor([3.0, 0.0])
    means = {}
    for weight in (0.0, 4.0):
        torch.manual_seed(0)
        m = build(
            "wgan_gp_mlp",
            dict(
                condition={"kind": "label", "n_classes": 1},
                z_dim=2,
                noise_dim=2,
                width=32,
                depth=2,
                critic=critic,
                marginal=weight > 0,
            ),
        )
        terms = [Pooled(pool, weight, 10.0)] if weight > 0 else []
        train_wgan_gp(m, cond, z, steps=250, n_critic=3, batch_size=32, lr=2e-3, gp_weight=10.0, seed=0, terms=terms)
        with torch.no_grad():
            means[weight] = m(torch.zeros(512, dtype=torch.long))[:, 0].mean().item()
    assert abs(means[0.0]) < 1.5 and means[4.0] > means[0.0] + 1.0, means


def test_marginal_terms_need_a_pool_and_their_critics():
    from lsdm.config import MatcherParams

    m = build("wgan_gp_mlp", CONFIGS["wgan_gp_mlp"])
    with pytest.raises(ValueError, match="marginal_weight > 0 needs"):
        matching_terms(MatcherParams(marginal="pooled"), m, pool=None)
    with pytest.raises(ValueError, match="class_aware needs a critic built with a class critic"):
        matching_terms(
            MatcherParams(marginal="class_aware"),
            m,
            torch.randn(4, 8),
            (torch.randn(4, 8), torch.zeros(4), torch.ones(4)),
        )
    assert matching_terms(MatcherParams(marginal="none"), m) == []  # the paper's method: the joint term only


@pytest.mark.parametrize("critic", ["concat", "projection"])
def test_closed_form_penalties_give_the_double_backward_weight_gradients(critic):
    """The latent critics' grad_z in closed form (`leaky_input_grad`) is an exact rewrite of autograd's
    `create_graph` double backward: the loss and every parameter's gradient, joint and marginal terms
    together, equal the reference built from `torch.autograd.grad` (up to float rounding)."""
    from lsdm.models.matching import critic_objective, marginal_objective

    torch.manual_seed(0)
    f = build("wgan_gp_mlp", dict(CONFIGS["wgan_gp_mlp"], critic=critic, marginal=True)).critic
    x, z_real, z_fake, z_pool = (
        torch.randint(0, 10, (16,)),
        torch.randn(16, 8),
        torch.randn(16, 8) + 1,
        torch.randn(16, 8),
    )
    grads, losses = [], []
    for closed in (True, False):
        f.zero_grad()
        torch.manual_seed(1)
        if closed:
            loss = (
                critic_objective(f, x, z_real, z_fake, 10.0)[0] + 0.5 * marginal_objective(f, z_pool, z_fake, 10.0)[0]
            )
        else:
            gp = gradient_penalty(f, x, z_real, z_fake)
            a = torch.rand(16, 1)
            z_hat = (a * z_pool + (1 - a) * z_fake).requires_grad_(True)
            (g,) = torch.autograd.grad(f.marginal(z_hat).sum(), z_hat, create_graph=True)
            gp_m = ((g.norm(dim=1) - 1) ** 2).mean()
            loss = -(f(x, z_real).mean() - f(x, z_fake).mean()) + 10.0 * gp
            loss = loss + 0.5 * (-(f.marginal(z_pool).mean() - f.marginal(z_fake).mean()) + 10.0 * gp_m)
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in f.named_parameters()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert grads[0].keys() == grads[1].keys() and any(k.startswith("marginal_net") for k in grads[0])
    bad = [n for n in grads[0] if not torch.allclose(grads[0][n], grads[1][n], atol=1e-5, rtol=1e-4)]
    assert not bad, bad


@pytest.mark.timeout(600)
def test_class_aware_term_pulls_each_class_toward_its_own_pseudo_labelled_latents():
    """Pairs of both classes sit at 0; the pool holds class 0 near (+3, 0) and class 1 near (-3, 0).
    The class-blind pooled term can only pull the codes of both classes toward the mixture; the
    class-aware term pulls class 0's to +3 and class 1's to -3, and its low-confidence rows count less."""
    torch.manual_seed(0)
    cond = torch.tensor([0, 1] * 4)
    z = torch.randn(8, 2) * 0.3
    pool_y = torch.arange(1000) % 2
    pool = torch.randn(1000, 2) * 0.3 + torch.stack([3.0 - 6.0 * pool_y, torch.zeros(1000)], 1)
    m = build(
        "wgan_gp_mlp",
        dict(
            condition={"kind": "label", "n_classes": 2},
            z_dim=2,
            noise_dim=2,
            width=32,
            depth=2,
            critic="projection",
            class_critic=2,
        ),
    )
    logs = []
    terms = [ClassAware(pool, pool_y, torch.full((1000,), 0.95), weight=4.0, gp_weight=10.0)]
    train_wgan_gp(
        m,
        cond,
        z,
        steps=250,
        n_critic=3,
        batch_size=32,
        lr=2e-3,
        gp_weight=10.0,
        seed=0,
        terms=terms,
        log=lambda s, d: logs.append(d),
        log_every=50,
    )
    with torch.no_grad():
        means = [m(torch.full((512,), k))[:, 0].mean().item() for k in (0, 1)]
    assert means[0] > 1.0 and means[1] < -1.0, means
    assert {"critic/w1", "critic/w1_class", "critic/gp_class"} <= set(logs[-1])


def test_class_aware_weights_rows_by_confidence():
    """A row at confidence 0 does not move the class critic's W1 estimate."""
    from lsdm.models.matching import critic_objective

    torch.manual_seed(0)
    f = build("wgan_gp_mlp", dict(CONFIGS["wgan_gp_mlp"], critic="projection")).critic
    y, z_real, z_fake = torch.randint(0, 10, (8,)), torch.randn(8, 8), torch.randn(8, 8)
    w = torch.tensor([1.0] * 4 + [0.0] * 4)
    changed = z_real.clone()
    changed[4:] += 5.0  # only the zero-weight rows differ
    torch.manual_seed(1)
    a = critic_objective(f, y, z_real, z_fake, 10.0, weights=w)[1]
    torch.manual_seed(1)
    b = critic_objective(f, y, changed, z_fake, 10.0, weights=w)[1]
    torch.manual_seed(1)
    c = critic_objective(f, y, changed, z_fake, 10.0)[1]
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c, atol=1e-3)


@pytest.mark.parametrize("gp_every", [1, 3])
def test_lazy_penalty_runs_on_every_kth_critic_update_at_k_times_its_weight(gp_every, monkeypatch):
    """`gp_every` k: of 12 critic updates (4 steps x n_critic 3) the joint and marginal penalties are
    computed on the 1st, (k+1)th, ... at k x gp_weight, and on none of the others (weight 0: skipped,
    its logged value kept from the last update that computed it)."""
    from lsdm.models import matching

    seen = {"joint": [], "marginal": []}
    joint, marginal = matching.critic_objective, matching.marginal_objective

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            seen[name].append((args[4] if name == "joint" else args[3], out[2] is None))
            return out

        return wrapped

    monkeypatch.setattr(matching, "critic_objective", spy("joint", joint))
    monkeypatch.setattr(matching, "marginal_objective", spy("marginal", marginal))
    torch.manual_seed(0)
    m = build("wgan_gp_mlp", dict(CONFIGS["wgan_gp_mlp"], marginal=True))
    logs = []
    train_wgan_gp(
        m,
        torch.randint(0, 10, (40,)),
        torch.randn(40, 8),
        steps=4,
        n_critic=3,
        batch_size=16,
        lr=1e-3,
        gp_weight=10.0,
        seed=0,
        terms=[Pooled(torch.randn(100, 8), 1.0, 10.0)],
        gp_every=gp_every,
        log=lambda s, d: logs.append(d),
        log_every=1,
    )
    want = [(10.0 * gp_every, False) if u % gp_every == 0 else (0.0, True) for u in range(12)]
    assert seen["joint"] == want and seen["marginal"] == want
    assert all(d["critic/gp"] > 0 and d["critic/gp_marginal"] > 0 for d in logs)


def test_the_critics_learn_at_critic_lr_and_are_critic_width_wide():
    """critic_lr sets the critics' optimiser alone (G keeps lr), critic_width the critics' layers alone:
    after one step with lr 0 for G and a positive critic_lr, only the critic's weights moved."""
    from lsdm.config import MatcherParams
    from lsdm.models.matcher import matcher_config
    from lsdm.models.matching import train_matcher

    p = MatcherParams(width=32, depth=2, critic_width=16, steps=1, n_critic=1, lr=1e-12, critic_lr=1e-2, batch_size=16)
    torch.manual_seed(0)
    m = build("wgan_gp_mlp", matcher_config(p, {"kind": "label", "n_classes": 10}, 8))
    widths = {name: mod.out_features for name, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}
    assert widths["generator.net.0"] == 32 and widths["critic.body.0"] == widths["critic.marginal_net.0"] == 16
    before = {k: v.clone() for k, v in m.state_dict().items()}
    train_matcher(m, p, torch.randint(0, 10, (40,)), torch.randn(40, 8), torch.randn(100, 8))
    moved = {k for k, v in m.state_dict().items() if not torch.allclose(v, before[k], atol=1e-8)}
    assert moved and all(k.startswith("critic.") for k in moved), moved


# --- the latent class model and LSDM's filtered draw (sample.candidates) -----------------------


def three_blobs(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes of three classes in 4-d, overlapping enough that some codes are ambiguous."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[0.0, 0, 0, 0], [2.0, 0, 0, 0], [0, 2.0, 0, 0]])
    return centres[labels] + torch.randn(n, 4, generator=g) * torch.tensor([1.0, 0.7, 1.3, 0.5]), labels


def test_gaussian_classes_give_qdas_posteriors():
    """The sampler's class model is scikit-learn's QDA (the pseudo-labeller's refinement) in torch."""
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis

    from lsdm.models.latent_classes import GaussianClasses

    z, labels = three_blobs()
    for reg in (0.0, 0.1, 0.5):
        ours = GaussianClasses.fit(z, labels, 3, reg)(z).exp()
        theirs = QuadraticDiscriminantAnalysis(reg_param=reg).fit(z.numpy(), labels.numpy()).predict_proba(z.numpy())
        assert torch.allclose(ours, torch.as_tensor(theirs, dtype=torch.float32), atol=1e-4), reg
    assert torch.allclose(
        GaussianClasses.fit(z, labels, 3, 0.1).posterior(z, labels),
        GaussianClasses.fit(z, labels, 3, 0.1)(z).exp()[torch.arange(len(z)), labels],
    )


def test_filtered_draw_decodes_the_first_code_of_the_asked_class():
    """A class-blind generator (its code ignores the condition) draws the asked class a third of the
    time; with 16 candidates it decodes the first whose posterior reaches `accept`, else the likeliest."""
    from lsdm.methods.lsdm import LSDMSampler
    from lsdm.models.latent_classes import GaussianClasses

    z, labels = three_blobs()
    classes = GaussianClasses.fit(z, labels, 3, 0.1)

    class Blind(torch.nn.Module):  # G(x, eta) = eta: the condition is ignored
        noise_dim = 4

        def forward(self, x, eta):
            return eta

    decoder = type("Identity", (torch.nn.Module,), {"decode": lambda self, z: z})()
    zero, one = torch.zeros(4), torch.ones(4)
    plain = LSDMSampler(Blind(), decoder, zero, one)
    filtered = LSDMSampler(Blind(), decoder, zero, one, classes, candidates=16, accept=0.9)
    assert plain.noise_dim == 4 and filtered.noise_dim == 64
    x = torch.arange(3).repeat(200)
    eta = z[
        torch.randint(0, len(z), (600, 16), generator=torch.Generator().manual_seed(1))
    ]  # [B, K, 4]: codes of the data
    drawn_plain, drawn = plain(x, eta[:, 0]), filtered(x, eta.reshape(600, 64))
    assert torch.equal(drawn_plain, eta[:, 0])
    p = classes.posterior(drawn, x)
    assert (classes.posterior(drawn_plain, x) >= 0.9).float().mean() < 0.3 and (p >= 0.9).float().mean() > 0.8
    post = torch.stack([classes.posterior(eta[:, k], x) for k in range(16)], 1)  # [B, K]
    for i in range(600):  # row by row: the first candidate to reach 0.9, or the likeliest
        ok = (post[i] >= 0.9).nonzero()
        k = int(ok[0]) if len(ok) else int(post[i].argmax())
        assert torch.equal(drawn[i], eta[i, k]), i
    # without a class model (data without classes) it draws once, whatever the candidates
    assert LSDMSampler(Blind(), decoder, zero, one, None, candidates=16).noise_dim == 4


def test_image_filter_asks_the_classifier_about_the_decoded_code_once_per_row_it_needs():
    """`DecodedClasses` decodes the un-standardised code and classifies the image: with an identity
    decoder and a classifier that is the Gaussian model of the decoder's codes, its posteriors are
    that model's at z * std + mean. The draw asks it only about the rows not yet accepted: a fraction
    of the K questions per row a draw of all K candidates would ask."""
    from lsdm.methods.lsdm import LSDMSampler
    from lsdm.models.latent_classes import DecodedClasses, GaussianClasses

    z, labels = three_blobs()
    mean, std = torch.tensor([1.0, -1.0, 0.5, 0.0]), torch.tensor([2.0, 1.0, 0.5, 1.0])
    gauss = GaussianClasses.fit(z, labels, 3, 0.1)
    asked = []

    class Classifier(torch.nn.Module):  # logits of the Gaussian model; counts the images it is shown
        def forward(self, y):
            asked.append(len(y))
            return gauss(y)

    decoder = type("Identity", (torch.nn.Module,), {"decode": lambda self, z: z})()
    image = DecodedClasses(Classifier(), decoder, mean, std)
    standardised = (z - mean) / std
    assert torch.allclose(image.posterior(standardised, labels), gauss.posterior(z, labels), atol=1e-6)

    class Oracle(torch.nn.Module):  # G(x, eta) = eta; the first candidate a code of class x, later ones anything
        noise_dim = 4

        def forward(self, x, eta):
            return eta

    x = labels[:300]
    eta = standardised[torch.randint(0, len(z), (300, 16), generator=torch.Generator().manual_seed(2))]
    eta[:, 0] = standardised[:300]  # the first candidate: the row's own code, mostly of its class already
    asked.clear()
    drawn = LSDMSampler(Oracle(), decoder, mean, std, image, candidates=16, accept=0.9).codes(x, eta.reshape(300, 64))
    post = torch.stack([gauss.posterior(eta[:, k] * std + mean, x) for k in range(16)], 1)  # [B, K]
    waiting = [int((post[:, :k] < 0.9).all(1).sum()) for k in range(16)]  # rows with none accepted before k
    assert asked == [w for w in waiting if w] and sum(asked) < 16 * 300 / 3
    first_ok = post[:, 0] >= 0.9
    assert torch.equal(drawn[first_ok], standardised[:300][first_ok])


def test_minibatch_ot_matches_two_gaussians_and_lowers_its_objective():
    """The critic-free estimator (`matcher.estimator: minibatch_ot`) on a toy problem whose answer is
    known: class k's codes are N((4k - 2, 0), 0.5^2 I). Its debiased OT objective falls, each class's
    codes land on their own Gaussian, and they keep its spread; without the debiasing term the
    minibatch estimate pulls them together (a smaller spread)."""
    from lsdm.models.matching import Transport, train_transport

    gen = torch.Generator().manual_seed(0)
    cond = torch.arange(400) % 2
    z = torch.randn(400, 2, generator=gen) * 0.5 + torch.stack([cond * 4.0 - 2, torch.zeros(400)], 1)

    def fit(debiased: bool) -> tuple[torch.nn.Module, list[float]]:
        torch.manual_seed(0)
        m = build(
            "wgan_gp_mlp", dict(condition={"kind": "label", "n_classes": 2}, z_dim=2, noise_dim=2, width=64, depth=2)
        )
        curve: list[float] = []
        train_transport(
            m,
            [Transport(z, cond, 1.0, 100.0, "joint", debiased=debiased)],
            steps=300,
            batch_size=64,
            lr=2e-3,
            seed=0,
            log=lambda s, d: curve.append(d["transport/joint"]),
            log_every=10,
        )
        return m, curve

    m, curve = fit(debiased=True)
    assert sum(curve[-5:]) / 5 < 0.5 * sum(curve[:3]) / 3, curve
    with torch.no_grad():
        spreads = []
        for k in (0, 1):
            out = m(torch.full((2000,), k))
            assert (out.mean(0) - torch.tensor([4.0 * k - 2, 0.0])).norm() < 0.3, (k, out.mean(0))
            spreads.append(out.std(0).mean().item())
            assert 0.35 < spreads[-1] < 0.7, (k, out.std(0))  # the target's 0.5, not collapsed
    plain, _ = fit(debiased=False)
    with torch.no_grad():
        assert plain(torch.full((2000,), 0)).std(0).mean() < spreads[0]

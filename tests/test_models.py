"""Shapes, registry round-trips through checkpoints, and a few steps of each loop moving its loss."""

import pytest
import torch

from lsdm.io import save_checkpoint
from lsdm.models import MODELS, build, load
from lsdm.train import gradient_penalty, train_autoencoder, train_classifier, train_wgan_gp

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
    train_autoencoder(ae, y, steps=60, batch_size=16, lr=1e-2, seed=0, log=lambda s, m: log.append(m["train/mse"]), log_every=10)
    assert log[-1] < log[0]

    labels = torch.randint(0, 2, (64,))
    x = torch.rand(64, 1, 8, 8) * 0.3 + labels.view(-1, 1, 1, 1) * 0.7  # separable by brightness
    net = build("lenet", dict(image_size=8, in_channels=1, n_classes=2))
    accs: list = []
    train_classifier(net, x, labels, epochs=8, batch_size=16, lr=3e-3, seed=0, log=lambda s, m: accs.append(m["train/accuracy"]))
    assert accs[-1] > 0.9

    cond = torch.randint(0, 2, (64,))
    z = torch.randn(64, 2) * 0.1 + torch.stack([cond * 4.0 - 2, torch.zeros(64)], 1)  # class k sits at x = 4k - 2
    m = build("wgan_gp_mlp", dict(condition={"kind": "label", "n_classes": 2}, z_dim=2, noise_dim=2, width=64, depth=2))
    train_wgan_gp(m, cond, z, steps=300, n_critic=3, batch_size=64, lr=1e-3, gp_weight=10.0, seed=0)
    with torch.no_grad():
        means = [m(torch.full((256,), k))[:, 0].mean().item() for k in (0, 1)]
    assert means[0] < -1 and means[1] > 1, means  # the generator learned which mode each label owns


def test_fused_critic_objective_equals_separate_terms():
    from lsdm.train import critic_objective

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


@pytest.mark.parametrize("name", ["wgan_gp_mlp", "pixel_wgan"])
def test_critic_gradients_through_an_image_condition_match_the_unfused_loss(name):
    """The fused objective detaches the condition at the interpolates only where that is exact (the
    MLP critic); the projection critic keeps it. Either way every critic parameter's gradient is the reference's."""
    from lsdm.train import critic_objective

    cfg = dict(CONFIGS[name], condition={"kind": "image", "channels": 1, "size": 7})
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

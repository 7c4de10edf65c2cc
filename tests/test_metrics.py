"""The evaluation metrics against hand-checkable cases, reference implementations and sanity data.

- precision/recall/density/coverage: a 1-d case worked by hand, the `prdc` package on random
  data, and real-vs-real (~1) / noise-vs-real (~0) on MNIST digits;
- FID/KID: the same numbers as clean-fid's own entry points (`compute_fid` with a custom feature
  extractor on PNG folders, `kernel_distance` with its subsets);
- the bound's terms on maps whose answer is known;
- the weight loaders: missing files give a reason and never touch the network; small stand-in
  files placed where the loaders look run the Inception and LPIPS code paths end to end.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from support.checkout import ROOT
from support.weights import write_stand_in_inception, write_stand_in_squeezenet

import lsdm.evaluation.features as features
from lsdm.evaluation.bound import critic_w1, decoder_lipschitz, lipschitz_probe_points
from lsdm.evaluation.geometry import knn_radii, mean_pairwise_distance, prdc, prdc_many, within_class_diversity
from lsdm.evaluation.metrics import fid, kid, label_accuracy, mean_l2, mean_std, per_class_fid_kid

# ---------------------------------------------------------------- precision / recall / density / coverage


def test_prdc_hand_checkable_1d():
    """real = 0,1,2,3 (each real ball has radius 1 at k=1); fake = 0.5 and 10 (fake radius 9.5).
    precision: 0.5 is in the balls of 0 and 1, 10 in none -> 1/2. recall: the ball around 0.5
    (radius 9.5) holds every real point -> 1. density: (2 + 0) / 2 / k -> 1. coverage: 0 and 1
    have a fake point within 1, 2 and 3 do not -> 1/2."""
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    fake = np.array([[0.5], [10.0]])
    r = prdc(real, fake, pr_k=1, dc_k=1)
    assert (r.precision, r.recall, r.density, r.coverage) == (0.5, 1.0, 1.0, 0.5)


def test_prdc_density_above_one_when_samples_crowd_dense_region():
    """real = 0, 0.1, 0.25, 5, 9; k=2 radii: 0.25, 0.15, 0.25, 4.75, 8.75. Five fakes, all at 0.1,
    at distances 0.1, 0, 0.15, 4.9, 8.9: inside the first three balls only. So precision 1,
    density 3/2 (> 1: crowding), coverage 3/5, and recall 0 (the fakes' own radius is 0)."""
    real = np.array([[0.0], [0.1], [0.25], [5.0], [9.0]])
    fake = np.full((5, 1), 0.1)
    r = prdc(real, fake, pr_k=2, dc_k=2)
    assert r.precision == 1.0 and r.recall == 0.0
    assert r.density == pytest.approx(1.5) and r.coverage == pytest.approx(0.6)
    # dc_k=1 radii: 0.1, 0.1, 0.15, 4.75, 4. The fakes sit *on* the spheres of 0 and 0.25 (distance =
    # radius), which does not count (strict <, as in `prdc`): only the ball of 0.1 holds them.
    r1 = prdc(real, fake, pr_k=2, dc_k=1)
    assert r1.precision == 1.0 and r1.density == pytest.approx(1.0) and r1.coverage == pytest.approx(0.2)


def test_knn_radii_exclude_self_and_chunking_does_not_matter():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    d = torch.cdist(x.double(), x.double()).sort(1).values
    assert torch.allclose(knn_radii(x, 3), d[:, 3])  # column 0 is the point itself
    assert torch.allclose(knn_radii(x, 3, chunk=7), knn_radii(x, 3, chunk=1000))
    with pytest.raises(ValueError, match="k = 50"):
        knn_radii(x, 50)


@pytest.mark.parametrize(
    "n_real, n_fake, dim, k, shift", [(200, 200, 8, 3, 0.0), (150, 230, 16, 5, 0.5), (300, 120, 3, 1, 1.5)]
)
def test_prdc_matches_reference_package(n_real, n_fake, dim, k, shift):
    """Same numbers as Naeem et al.'s `prdc` package (which uses one k for all four)."""
    prdc_ref = pytest.importorskip("prdc")
    rng = np.random.default_rng(n_real + n_fake + k)
    real = rng.normal(size=(n_real, dim)).astype(np.float32)
    fake = (rng.normal(size=(n_fake, dim)) * 1.2 + shift).astype(np.float32)
    ref = prdc_ref.compute_prdc(real, fake, nearest_k=k)
    for ours in (prdc(real, fake, k, k), prdc(real, fake, k, k, chunk=17), prdc_many(real, fake, [(1, 2), (k, k)])[1]):
        for name in ("precision", "recall", "density", "coverage"):
            assert getattr(ours, name) == pytest.approx(float(ref[name]), abs=1e-9), name


def test_prdc_never_holds_more_than_a_block_of_distances(monkeypatch):
    """Distances are computed in row blocks of `chunk` x N, which is what lets 10,000 x 10,000 sets
    fit in memory (about 80 MB per float64 block at chunk=1024)."""
    import lsdm.evaluation.geometry as geometry

    shapes = []
    real_cdist = torch.cdist

    def recording_cdist(a, b, *args, **kwargs):
        shapes.append((a.shape[0], b.shape[0]))
        return real_cdist(a, b, *args, **kwargs)

    monkeypatch.setattr(geometry.torch, "cdist", recording_cdist)
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(1500, 4)), rng.normal(size=(1500, 4))
    chunked = prdc(real, fake, 3, 5, chunk=200)
    assert max(rows for rows, _ in shapes) <= 200 and len(shapes) > 3 * (1500 // 200)
    monkeypatch.setattr(geometry.torch, "cdist", real_cdist)
    assert chunked == prdc(real, fake, 3, 5, chunk=5000)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """MNIST digits as flat pixel vectors in [0, 1] (the bundled 5,000-digit subset), shuffled."""
    from lsdm.config import DataParams
    from lsdm.data.sources import loader

    raw = loader("mnist5k")(DataParams())
    x = raw.images.reshape(len(raw.images), -1).astype(np.float64) / 255.0
    return x[np.random.default_rng(0).permutation(len(x))]


def test_prdc_sanity_real_vs_heldout_real_is_near_one(digits):
    r = prdc(digits[:500], digits[500:1000], pr_k=3, dc_k=5)
    assert r.precision > 0.8 and r.recall > 0.8
    assert 0.85 < r.density < 1.2
    assert r.coverage > 0.9  # expected 1 - 2**-5 ~ 0.97 for identical laws


def test_prdc_sanity_noise_vs_real_is_near_zero(digits):
    noise = np.random.default_rng(1).random((500, digits.shape[1]))
    r = prdc(digits[:500], noise, pr_k=3, dc_k=5)
    assert r.density < 0.02 and r.coverage < 0.02 and r.precision < 0.02


def test_diversity_is_zero_for_collapse_and_matches_definition():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert mean_pairwise_distance(x) == pytest.approx((5 + 5 + 0) * 2 / 6)
    assert mean_pairwise_distance(x, chunk=2) == pytest.approx((5 + 5 + 0) * 2 / 6)  # rows in chunks: the same
    collapsed = np.ones((6, 3))
    total, per_class = within_class_diversity(collapsed, np.array([0, 0, 0, 1, 1, 2]))
    assert total == 0.0 and set(per_class) == {"0", "1"}  # class 2 has one point: no pair


# ---------------------------------------------------------------- FID / KID through clean-fid


def _tiny_features(x: torch.Tensor) -> torch.Tensor:
    """A fixed 'feature network' for [B, 1, 8, 8] images in [0, 1]."""
    w = torch.randn(64, 12, generator=torch.Generator().manual_seed(3))
    return torch.tanh(x.flatten(1) @ w) * 10


def test_fid_equals_cleanfid_compute_fid_with_custom_extractor(tmp_path):
    """Our in-memory FID == clean-fid's folder pipeline with the same custom feature extractor."""
    from cleanfid import fid as cleanfid

    rng = np.random.default_rng(0)
    sets = {
        "a": rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
        "b": (rng.random((40, 8, 8)) ** 2 * 255).astype(np.uint8),
    }
    for name, imgs in sets.items():
        (tmp_path / name).mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray(im, mode="L").save(tmp_path / name / f"{i:03d}.png")

    def extractor(batch):  # clean-fid hands over RGB in [0, 255]; undo that for our net
        return _tiny_features(batch[:, :1] / 255.0)

    theirs = cleanfid.compute_fid(
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        mode="clean",
        custom_feat_extractor=extractor,
        custom_fn_resize=lambda x: x,
        device=torch.device("cpu"),
        num_workers=0,
        batch_size=16,
        verbose=False,
    )
    ours = fid(*(_tiny_features(torch.from_numpy(s).float()[:, None] / 255.0).double().numpy() for s in sets.values()))
    assert ours == pytest.approx(theirs, rel=1e-4)
    assert ours > 0


def test_fid_is_cleanfid_fid_from_feats_also_for_singular_covariances():
    """`fid` writes out clean-fid's `fid_from_feats` (which newer scipy breaks): the same number, also
    where features never fire (ReLU zeros: singular covariances, scipy's sqrtm warns)."""
    from cleanfid import fid as cleanfid

    rng = np.random.default_rng(1)
    real, fake = np.maximum(rng.normal(size=(2, 300, 24)), 0)
    real[:, :3] = 0  # three features that never fire
    fake[:, :3] = 0
    for a, b in [(real, fake), (real, fake + 0.5), (real[:50], real[50:])]:
        try:
            theirs = cleanfid.fid_from_feats(a, b)
        except TypeError:  # scipy >= 1.18 took sqrtm's `disp`: clean-fid's own FID cannot run here
            pytest.skip("clean-fid's fid_from_feats fails under this scipy")
        assert fid(a, b) == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert fid(real, fake + 0.5) > fid(real, fake) > 0


def _subset_kids(a: np.ndarray, b: np.ndarray, subsets: int, size: int, seed: int) -> np.ndarray:
    """Each KID subset's value, worked here: clean-fid's draws (`kernel_distance`: `size` rows of the
    second set, then of the first, from numpy's global RNG seeded with `seed`) and the unbiased MMD^2
    of its kernel (x.y / d + 1)^3 on them."""
    rng = np.random.RandomState(seed)  # the global RNG after np.random.seed(seed) draws the same
    a, b, d, out = a.astype(np.float64), b.astype(np.float64), a.shape[1], []
    for _ in range(subsets):
        x = b[rng.choice(len(b), size, replace=False)]
        y = a[rng.choice(len(a), size, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        within = [(k.sum() - np.trace(k)) / (size * (size - 1)) for k in (kxx, kyy)]
        out.append(sum(within) - 2 * kxy.mean())
    return np.array(out)


def test_kid_is_cleanfid_kernel_distance_with_its_std():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(120, 6)).astype(np.float32), (rng.normal(size=(100, 6)) + 0.3).astype(np.float32)
    np.random.seed(123)
    state = np.random.get_state()
    mean, std = kid(a, b, subsets=20, subset_size=50, seed=7)
    assert np.array_equal(np.random.get_state()[1], state[1])  # the global RNG is left as it was
    np.random.seed(7)
    assert mean == pytest.approx(kernel_distance(a, b, num_subsets=20, max_subset_size=50), rel=1e-6)
    values = _subset_kids(a, b, 20, 50, seed=7)  # the std is the sample std of the subsets' values
    assert mean == pytest.approx(values.mean(), rel=1e-4) and std == pytest.approx(values.std(ddof=1), rel=1e-4)
    assert kid(a, b, 20, 50, seed=7) == (mean, std)  # deterministic
    # subsets as large as the sets would all be the same draw: capped at half, so the std is a spread
    small = kid(a[:50], b[:50], subsets=20, subset_size=500, seed=7)
    np.random.seed(7)
    assert small[0] == pytest.approx(kernel_distance(a[:50], b[:50], num_subsets=20, max_subset_size=25), rel=1e-6)
    assert small[1] == pytest.approx(_subset_kids(a[:50], b[:50], 20, 25, seed=7).std(ddof=1), rel=1e-4)
    assert kid(a[:3], b[:3], subsets=20, subset_size=500)[1] is None  # too small to halve: one value, no spread


def test_kid_and_fid_of_identical_laws_are_small():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(600, 5)), rng.normal(size=(600, 5))
    same, shifted = kid(a, b, 20, 300)[0], kid(a, b + 1.0, 20, 300)[0]
    assert abs(same) < 0.05 * shifted
    assert fid(a, b) < 0.1 < fid(a, b + 1.0)


def test_per_class_fid_only_with_more_points_than_dims():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
    labels = np.repeat([0, 1, 2], 20)
    labels[:3] = 2  # class 0 now has 17 points
    fids, kids, note = per_class_fid_kid(real, labels, fake, labels, min_samples=18, kid_subsets=5, kid_subset_size=10)
    assert set(fids) == {"0", "1", "2"}  # 17+ points > 4 dims: each class's FID, on its own points
    for c in range(3):
        assert fids[str(c)] == pytest.approx(fid(real[labels == c], fake[labels == c]), rel=1e-6), c
    assert kids["0"] is None  # 17 < 18 points
    for c in (1, 2):
        assert kids[str(c)] == pytest.approx(kid(real[labels == c], fake[labels == c], 5, 10)[0], rel=1e-6), c
    assert "at least 18" in note
    fids, _, note = per_class_fid_kid(
        real[:, :1].repeat(30, 1),
        labels,
        fake[:, :1].repeat(30, 1),
        labels,
        min_samples=2,
        kid_subsets=2,
        kid_subset_size=10,
    )
    assert set(fids) == {"0", "1", "2"} and all(v is None for v in fids.values()) and "more than 30" in note


def test_label_accuracy_and_spread():
    acc, per_class = label_accuracy(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 4)
    assert acc == 0.75 and per_class == {"0": 1.0, "1": 1.0, "2": 0.5}
    s = mean_std([1.0, 3.0])
    assert s == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2}
    assert mean_std([1.0])["std"] is None and mean_std([None])["n"] == 0


# ---------------------------------------------------------------- the bound's terms


def test_decoder_lipschitz_of_a_linear_map_is_its_spectral_norm():
    W = torch.randn(30, 5, generator=torch.Generator().manual_seed(0))
    z = torch.randn(12, 5)
    out = decoder_lipschitz(lambda v: v @ W.T, z)
    assert out["decoder_lipschitz_spectral_max"] == pytest.approx(torch.linalg.matrix_norm(W, 2).item(), rel=1e-4)
    assert out["decoder_jacobian_frobenius_max"] == pytest.approx(torch.linalg.matrix_norm(W).item(), rel=1e-4)
    assert out["decoder_lipschitz_n_points"] == 12


def test_decoder_lipschitz_finds_the_steepest_point():
    """D(z) = sin(3 z) elementwise: Jacobian diag(3 cos 3z), spectral norm 3 max|cos 3z_i|."""
    z = torch.tensor([[0.0, 0.5], [0.4, 0.2], [np.pi / 6, np.pi / 6]])
    out = decoder_lipschitz(lambda v: torch.sin(3 * v), z)
    assert out["decoder_lipschitz_spectral_max"] == pytest.approx(3.0, rel=1e-5)


def test_jacobian_norms_in_smaller_batches_where_the_jacobians_are_large():
    """A cap on the Jacobian entries per batch changes how many points go at once, not the norms."""
    from lsdm.evaluation.bound import decoder_jacobian_norms

    W = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(40, 8)
    whole = decoder_jacobian_norms(lambda v: torch.tanh(v @ W.T), z)
    capped = decoder_jacobian_norms(lambda v: torch.tanh(v @ W.T), z, max_entries=3 * 300 * 8)  # 3 points a batch
    assert all(torch.allclose(a, b, rtol=1e-5) for a, b in zip(whole, capped)) and len(capped[0]) == 40


def test_probe_points_and_critic_w1():
    zr, zf = torch.zeros(10, 3), torch.ones(10, 3)
    pts = lipschitz_probe_points(zr, zf, 9, seed=0)
    assert pts.shape == (9, 3) and (pts >= 0).all() and (pts <= 1).all()

    class SumCritic(torch.nn.Module):
        def forward(self, x, z):
            return z.sum(1) + 0 * x.float()

    assert critic_w1(SumCritic(), torch.zeros(10), zf, zr) == pytest.approx(3.0)
    assert mean_l2(torch.ones(4, 1, 2, 2), torch.zeros(4, 1, 2, 2)) == pytest.approx(2.0)


# ---------------------------------------------------------------- weight loaders


def test_missing_weights_give_reasons_and_never_download(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model, path, reason = features.load_inception(None, torch.device("cpu"))
    assert model is None and path is None and "not found" in reason
    assert str(tmp_path / "cache" / "lsdm" / features.INCEPTION_FILE) in reason
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / features.INCEPTION_FILE) in reason
    model, path, reason = features.load_inception(str(tmp_path / "nowhere.pt"), torch.device("cpu"))
    assert model is None and "evaluate.inception_weights" in reason and "nowhere.pt" in reason
    model, reason = features.load_lpips("alex", torch.device("cpu"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert model is None and str(expected) in reason
    assert features.lpips_backbone_file("squeeze").name == "squeezenet1_1-b8a52dc0.pth"
    assert no_network == []


def test_inception_is_looked_for_in_the_users_cache_never_in_tmp(tmp_path, monkeypatch):
    """By default: $XDG_CACHE_HOME/lsdm (~/.cache/lsdm when unset or relative), then torch hub's
    checkpoints; clean-fid's own cache, /tmp, is searched only when the param names it."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CACHE_HOME", "TORCH_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert features.inception_dirs() == [home / ".cache/lsdm", home / ".cache/torch/hub/checkpoints"]
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec: ignored unless absolute
    assert features.inception_dirs()[0] == home / ".cache/lsdm"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert features.inception_dirs() == [tmp_path / "xdg/lsdm", tmp_path / "torch/hub/checkpoints"]


def test_lip_d_and_the_inception_print_no_torchscript_notice(tmp_path):
    """torch 2.x deprecates TorchScript, which torch's own forward-mode AD (behind Lip(D)) and clean-fid's
    Inception loader still use: `lsdm evaluate` printed the notice on every run. A fresh process (torch
    loads its jvp decompositions once per process) where that notice is an error."""
    weights = tmp_path / features.INCEPTION_FILE
    write_stand_in_inception(weights)
    code = (
        "import torch\n"
        "from lsdm.evaluation.bound import decoder_lipschitz\n"
        "from lsdm.evaluation.features import load_inception\n"
        "decoder_lipschitz(torch.nn.Linear(2, 4), torch.randn(3, 2))\n"
        f"model, _, reason = load_inception({str(weights)!r}, torch.device('cpu'))\n"
        "assert reason is None, reason\n"
        "model(torch.rand(2, 1, 28, 28))\n"
    )
    p = subprocess.run(
        [sys.executable, "-W", "error:`torch.jit:FutureWarning", "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr[-2000:]


def test_stand_in_inception_runs_cleanfid_path(tmp_path, monkeypatch, no_network):
    """Stand-in weights in the user's cache, in torch hub's checkpoints, and at a param path with
    another file name."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached, hub = (
        tmp_path / "cache/lsdm" / features.INCEPTION_FILE,
        tmp_path / "torch/hub/checkpoints" / features.INCEPTION_FILE,
    )
    cached.parent.mkdir(parents=True)
    write_stand_in_inception(cached)
    images = torch.rand(5, 1, 28, 28)
    model, path, reason = features.load_inception(None, torch.device("cpu"))
    assert reason is None and path == cached.resolve()
    feats = model(images)
    assert feats.shape == (5, 2048) and feats.dtype == np.float64

    hub.parent.mkdir(parents=True)
    cached.rename(hub)
    assert features.find_inception(None) == (hub.resolve(), None)

    other = tmp_path / "elsewhere" / "my-inception.pt"
    other.parent.mkdir()
    hub.rename(other)
    model, path, reason = features.load_inception(str(other), torch.device("cpu"))
    assert reason is None and np.allclose(model(images), feats)
    assert no_network == []


def test_stand_in_lpips_backbone_runs_lpips(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    write_stand_in_squeezenet(tmp_path)
    dist, reason = features.load_lpips("squeeze", torch.device("cpu"), size=64)
    assert reason is None
    a, b = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    d = dist(a, b)
    assert d.shape == (4,) and (d > 0).all() and torch.allclose(dist(a, a), torch.zeros(4), atol=1e-6)
    # class 1: one image four times (a collapsed condition); class 0: four different images
    mean, per_class = features.pairwise_same_condition(
        dist, torch.cat([a, b[:1].expand(4, -1, -1, -1)]), torch.tensor([0] * 4 + [1] * 4), 3, 0
    )
    pairs = torch.tensor([(i, j) for i in range(4) for j in range(4) if i != j])
    within = dist(a[pairs[:, 0]], a[pairs[:, 1]])  # every pair of distinct images of class 0
    assert set(per_class) == {"0", "1"} and per_class["1"] == pytest.approx(0.0, abs=1e-6)
    assert within.min().item() - 1e-6 <= per_class["0"] <= within.max().item() + 1e-6, (per_class, within)
    assert mean == pytest.approx((per_class["0"] + per_class["1"]) / 2)
    assert no_network == []

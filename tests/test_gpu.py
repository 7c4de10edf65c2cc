"""The CUDA path (`base.device: auto` on a machine with a GPU): marked `gpu`, skipped where torch
sees no CUDA device (CI and this project's CPU machines; tests/conftest.py). Run them on a GPU box
with `pytest -m gpu`; docs/pipeline-and-parameters.md says when they last ran and what they saw."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from support.processes import run
from support.repos import make_repo, tiny_params

from lsdm.models.matcher import wgan_gp_mlp
from lsdm.models.matching import ClassAware, Pooled, train_wgan_gp
from lsdm.pipeline.cli import CUDA_PEAK

pytestmark = pytest.mark.gpu

TORCH_STAGES = ("fit_latent", "encode", "fit_matcher", "eval_net", "evaluate")  # pseudo_label: scikit-learn by default


def test_the_closed_form_penalty_gradient_holds_on_the_gpu():
    """The critics' grad_z in closed form (no double backward) equals autograd's on CUDA, and the
    same weights score the same codes on the GPU as on the CPU (no TF32 or other silent precision loss)."""
    torch.manual_seed(0)
    m = wgan_gp_mlp(
        {"kind": "label", "n_classes": 10},
        z_dim=16,
        noise_dim=16,
        width=64,
        depth=3,
        critic="projection",
        marginal=True,
        class_critic=10,
    )
    x, z = torch.arange(128) % 10, torch.randn(128, 16)
    on_cpu = m.critic(x, z)
    f = m.cuda().critic
    x, z = x.cuda(), z.cuda().requires_grad_(True)
    scores = f(x, z)
    (auto,) = torch.autograd.grad(scores.sum(), z)
    assert torch.allclose(f.input_grad(f.encode(x), z), auto, atol=1e-5)
    (auto_m,) = torch.autograd.grad(f.marginal(z).sum(), z)
    assert torch.allclose(f.marginal_input_grad(z), auto_m, atol=1e-5)
    assert torch.allclose(scores.detach().cpu(), on_cpu.detach(), atol=1e-4)


def _train_on_the_gpu(steps: int, cuda_graph: bool, seed: int = 0) -> tuple[torch.Tensor, list[float]]:
    """A small class-aware matcher (joint + pooled + class-aware terms) trained on CUDA for `steps`
    steps, batches drawn with `seed`: its weights, flattened, and the logged joint W1 estimates."""
    torch.manual_seed(0)
    m = wgan_gp_mlp(
        {"kind": "label", "n_classes": 10},
        z_dim=16,
        noise_dim=16,
        width=64,
        depth=3,
        critic="projection",
        marginal=True,
        class_critic=10,
    ).cuda()
    g = torch.Generator().manual_seed(1)
    cond, z, pool = torch.arange(50) % 10, torch.randn(50, 16, generator=g), torch.randn(400, 16, generator=g)
    cond, z, pool = cond.cuda(), z.cuda(), pool.cuda()
    terms = [
        Pooled(pool, 1.0, 10.0),
        ClassAware(pool, torch.arange(400, device="cuda") % 10, torch.full((400,), 0.9, device="cuda"), 1.0, 10.0),
    ]
    w1 = []
    train_wgan_gp(
        m,
        cond,
        z,
        steps=steps,
        n_critic=3,
        batch_size=32,
        lr=1e-3,
        gp_weight=10.0,
        seed=seed,
        terms=terms,
        cuda_graph=cuda_graph,
        log=lambda step, v: w1.append(v["critic/w1"]),
        log_every=1,
    )
    return torch.cat([q.detach().flatten() for q in m.parameters()]), w1


# Graphed vs eager weights after 12 steps on an H200 (2026-12-04): at most 4.7e-5 apart, rounding
# (float32 learning-rate tensors and capturable Adam's on-device bias correction against the eager
# run's host scalars; CUDA's index backward sums in no fixed order) that a GAN's steps amplify. Other
# draws move Adam's first steps by about lr = 1e-3 a weight, so they would be far outside this.
ROUNDING = 2e-4


def test_the_graphed_matcher_step_is_the_eager_step():
    """`cuda_graph` replays the eager step's kernels on the same draws: after the warm-up steps, the
    capture and some replays, the weights and the logged W1 equal the eager run's up to rounding
    (a replay that drew other batches, kept a stale learning rate or skipped an update would not)."""
    eager, w1_eager = _train_on_the_gpu(12, cuda_graph=False)
    graphed, w1_graphed = _train_on_the_gpu(12, cuda_graph=True)
    assert len(w1_graphed) == 12 and all(math.isfinite(v) for v in w1_graphed)
    assert w1_graphed == pytest.approx(w1_eager, rel=1e-3, abs=1e-4)
    assert (graphed - eager).abs().max() < ROUNDING
    other_draws = _train_on_the_gpu(12, cuda_graph=True, seed=1)[0]
    assert (other_draws - eager).abs().max() > 4 * ROUNDING  # the tolerance can tell other draws apart
    assert (_train_on_the_gpu(4, cuda_graph=True)[0] - graphed).abs().max() > 4 * ROUNDING  # the replays did train


@pytest.mark.slow
def test_the_tiny_pipeline_runs_on_the_gpu_and_its_models_load_on_a_cpu(tmp_path):
    """`dvc repro` with `base.device: cuda`: every torch stage ran on the GPU (each says how much of its
    memory it took), the evaluation says so, its numbers are real; the checkpoints written there
    sample on a CPU-only process (CUDA_VISIBLE_DEVICES empty), as a user copying results off a GPU box would."""
    repo = make_repo(tmp_path / "repo", tiny_params(base={"device": "cuda"}))
    p = run(["dvc", "repro"], repo)
    out = p.stdout + p.stderr
    for stage in TORCH_STAGES:
        assert f"lsdm {stage}: {CUDA_PEAK}" in out, f"{stage} did not run on the GPU"
    m = json.loads((repo / "results/evaluate/metrics.json").read_text())["eval"]
    assert json.loads((repo / "results/evaluate/details.json").read_text())["eval"]["device"] == "cuda"
    assert 0.0 <= m["label_accuracy"] <= 1.0 and math.isfinite(m["fid_evalnet"]) and m["fid_evalnet"] > 0
    sample = (
        "import torch; from lsdm.methods import samplers; "
        "assert not torch.cuda.is_available(); "
        "s = samplers('lsdm', torch.device('cpu'))[0][1]; "
        "x = s(torch.arange(20) % 10, torch.randn(20, s.noise_dim)); "
        "assert x.device.type == 'cpu' and torch.isfinite(x).all(); print(tuple(x.shape))"
    )
    shape = run([sys.executable, "-c", sample], repo, extra_env={"CUDA_VISIBLE_DEVICES": ""}).stdout.strip()
    assert shape.startswith("(20,")

"""The CUDA path (`base.device: auto` on a machine with a GPU): marked `gpu`, skipped where torch
sees no CUDA device (CI and this project's CPU machines; tests/conftest.py). Run them on a GPU box
with `pytest -m gpu`; docs/pipeline-and-parameters.md says when they last ran and what they saw."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

from conftest import make_repo, run, tiny_params
from lsdm.models.matcher import wgan_gp_mlp
from lsdm.pipeline.cli import CUDA_PEAK

pytestmark = pytest.mark.gpu

TORCH_STAGES = ("fit_latent", "encode", "fit_matcher", "eval_net", "evaluate")  # pseudo_label: scikit-learn by default


def test_the_closed_form_penalty_gradient_holds_on_the_gpu():
    """The critics' grad_z in closed form (no double backward) equals autograd's on CUDA, and the
    same weights score the same codes on the GPU as on the CPU (no TF32 or other silent precision loss)."""
    torch.manual_seed(0)
    m = wgan_gp_mlp({"kind": "label", "n_classes": 10}, z_dim=16, noise_dim=16, width=64, depth=3,
                    critic="projection", marginal=True, class_critic=10)  # fmt: skip
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
    assert m["device"] == "cuda"
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

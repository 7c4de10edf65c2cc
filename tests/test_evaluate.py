"""The evaluate stage on a tiny reproduced pipeline: offline without weights (null + reason, said
in the report, no network touched), with stand-in weights (the Inception and LPIPS paths run end
to end), and the geometric-fidelity sanity checks in the evaluation net's feature space."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml
from support.checkout import ROOT
from support.processes import run
from support.weights import write_stand_in_inception, write_stand_in_squeezenet

from lsdm import paths
from lsdm.config import load_params
from lsdm.data.schemas import IMAGES
from lsdm.data.tables import to_tensor
from lsdm.errors import ParamsError
from lsdm.evaluation.features import evalnet_features
from lsdm.evaluation.geometry import prdc
from lsdm.evaluation.registry import HEADLINE, read_results
from lsdm.io import read_table
from lsdm.models import load

EXPECTED = [  # what the acceptance asks for, without any pretrained weights
    "label_accuracy",
    "label_accuracy_per_class",
    "evalnet_accuracy_real_test",
    "fid_evalnet",
    "kid_evalnet",
    "kid_evalnet_std",
    "precision",
    "recall",
    "density",
    "coverage",
    "diversity_evalnet",
    "diversity_evalnet_real",
    "throughput_images_per_s",
    "throughput_batch_size",
    "device",
    "recon_mse_test",
    "recon_mae_test",
]
BOUND = [
    "recon_l2_test",
    "decoder_lipschitz_spectral_max",
    "critic_w1_test",
    "critic_w1_train_pairs",
    "rhs",
    "w1_latent_exact",
    "w1_pixel_exact",
]


def workdir(repro: Path, dest: Path, **evaluate) -> Path:
    """A copy of a reproduced tiny pipeline's inputs and outputs, with `evaluate.*` overridden."""
    for sub in ("data", "results"):
        shutil.copytree(repro / sub, dest / sub)
    params = yaml.safe_load((repro / "params.yaml").read_text())
    params["evaluate"].update(evaluate)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


@pytest.mark.slow
def test_evaluate_offline_without_weights(tiny_repro, tmp_path, monkeypatch, no_network, capfd):
    """This machine's situation: no Inception, no LPIPS backbone, no network. Its parts say as they
    start and end what they do (a stage that prints nothing for minutes at scale looks hung)."""
    work = workdir(tiny_repro, tmp_path / "work")
    monkeypatch.chdir(work)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))
    from lsdm.pipeline import evaluate, report

    params = load_params()
    t0 = time.perf_counter()
    evaluate.run(params)
    elapsed = time.perf_counter() - t0
    err = capfd.readouterr().err
    for part in (
        "the test images and their features",
        "LSDM on 60 held-out conditions x 3 generation seeds",
        "reconstructions of the held-out images",
        "the bound: exact W1 on 60 held-out points, 20 bootstrap draws",
    ):
        done = rf"evaluate: {re.escape(part)}: [0-9.]+s \(peak RSS so far [0-9.]+ GB\)\n"
        assert f"evaluate: {part} ...\n" in err and re.search(done, err), err
    headline = json.loads(paths.EVAL_METRICS.read_text())["eval"]  # what `dvc exp show` lists
    assert set(headline) <= set(HEADLINE) and {"label_accuracy", "fid_evalnet", "density"} <= set(headline)
    assert all(not isinstance(v, (dict, list)) for v in headline.values())
    e = read_results(paths.EVAL_DIR)["eval"]  # with details.json: every value, under the same keys
    assert not set(headline) & set(json.loads(paths.EVAL_DETAILS.read_text())["eval"])
    for key in EXPECTED:
        assert e[key] is not None, key
    images = read_table(paths.IMAGES, IMAGES)  # judged: one sample per image of the test split, no other
    assert (
        e["split"] == "test"
        and e["n_samples"] == (images["split"] == "test").sum() < (images["split"] != "train").sum()
    )
    for key in BOUND:
        assert isinstance(e["bound"][key], float), key
    b = e["bound"]
    assert b["decoder_lipschitz_spectral_max"] > 0 and b["recon_l2_test"] > 0
    assert b["w1_latent_exact"] > 0 and b["w1_pixel_exact"] > 0 and b["convention"] == "per class, averaged"
    assert b["rhs"] == pytest.approx(b["decoder_lipschitz_spectral_max"] * b["w1_latent_exact"] + b["recon_l2_test"])
    assert b["holds"] == (b["w1_pixel_exact"] <= b["rhs"])
    assert b["points"] == b["points_held_out"] == 60  # under evaluate.bound_max_points: every test point
    for key in ("fid_inception", "kid_inception", "lpips_diversity"):
        assert key in e and e[key] is None, key
    assert "not found" in e["inception_reason"] and str(tmp_path / "no-cache" / "lsdm") in e["inception_reason"]
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "inception") in e["inception_reason"]
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in e["lpips_reason"]
    n = len(params.evaluate.seeds)
    for name in ("precision", "recall", "density", "coverage", "label_accuracy", "fid_evalnet"):
        spread = e["over_seeds"][name]
        # the first seed's value (the headline) is one of the n: no further from their mean than std allows
        assert spread["n"] == n >= 2 and abs(e[name] - spread["mean"]) <= spread["std"] * (n - 1) / n**0.5 + 1e-9, (
            name,
            spread,
        )
    assert e["over_seeds"]["fid_evalnet"]["std"] > 0  # other generation seeds, other samples
    assert set(e["stage_seconds"]) == {"fit_latent", "fit_matcher", "eval_net", "evaluate"}
    assert 0 < e["stage_seconds"]["evaluate"] <= elapsed, (e["stage_seconds"], elapsed)
    assert e["per_class"]["note"]  # 6 test images per class: too few for per-class FID/KID, said so
    assert set(e["real_reference"]) >= {"precision", "recall", "density", "coverage", "fid_evalnet"}
    assert e["real_reference"]["kid_evalnet_std"] > 0  # its KID subsets differ, even on a small test set
    assert "fewer samples than dimensions" in e["fid_note"]  # 60 test images, 128-d features
    assert (work / "results/evaluate/plots/prdc_vs_k.tsv").exists()

    report.run(params)
    text = paths.REPORT.read_text()
    assert "Inception FID/KID were not computed" in text and "LPIPS was not computed" in text
    assert "FID on a small set" in text
    assert "`eval.precision`" in text and "`eval.bound.decoder_lipschitz_spectral_max`" in text
    assert (work / "reports/figures/prdc_vs_k.png").exists()
    assert no_network == []


@pytest.mark.slow
def test_evaluate_with_stand_in_weights(tiny_repro, tmp_path, monkeypatch):
    """Small stand-in files where the loaders look: the Inception (clean-fid) and LPIPS code paths
    run end to end through `lsdm evaluate` and the report shows their numbers."""
    inception = tmp_path / "weights" / "stand-in-inception.pt"  # not clean-fid's file name: symlinked
    inception.parent.mkdir()
    write_stand_in_inception(inception)
    write_stand_in_squeezenet(tmp_path / "torch")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    work = workdir(
        tiny_repro,
        tmp_path / "work",
        inception_weights=str(inception),
        lpips_net="squeeze",
        diversity_pairs=5,
        seeds=[3],
    )
    run(["lsdm", "evaluate"], work)
    e = read_results(work / "results/evaluate")["eval"]
    assert isinstance(e["fid_inception"], float) and isinstance(e["kid_inception"], float)
    assert e["inception_reason"] is None and e["inception_weights"] == str(inception.resolve())
    assert isinstance(e["lpips_diversity"], float) and e["lpips_diversity"] > 0 and e["lpips_reason"] is None
    assert e["over_seeds"]["label_accuracy"]["n"] == 1 and e["over_seeds"]["label_accuracy"]["std"] is None
    run(["lsdm", "report"], work)
    text = (work / "reports/report.md").read_text()
    assert "not computed" not in text and "`eval.fid_inception`" in text


@pytest.mark.slow
def test_prdc_sanity_in_evalnet_space(tiny_repro):
    """Real vs held-out real is near 1; noise vs real has density and coverage near 0."""
    images = read_table(tiny_repro / paths.IMAGES, IMAGES)
    evalnet = load(tiny_repro / paths.EVALNET)
    train = to_tensor(images[images["split"] == "train"])
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    half = len(train) // 2
    a, b = (evalnet_features(evalnet, train[perm[i * half : (i + 1) * half]]) for i in (0, 1))
    r = prdc(a, b, pr_k=3, dc_k=5)
    assert r.precision > 0.75 and r.recall > 0.75 and 0.7 < r.density < 1.3 and r.coverage > 0.85, r
    noise = evalnet_features(evalnet, torch.rand(half, *train.shape[1:], generator=torch.Generator().manual_seed(1)))
    r = prdc(a, noise, pr_k=3, dc_k=5)
    assert r.density < 0.05 and r.coverage < 0.05, r


def test_dvc_stage_declares_what_evaluate_reads():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]
    deps = set(stage["deps"])
    modules = (
        "lsdm/pipeline/evaluate.py",
        "lsdm/evaluation/metrics.py",
        "lsdm/evaluation/features.py",
        "lsdm/evaluation/geometry.py",
        "lsdm/evaluation/bound.py",
    )
    for module in modules:
        assert module in deps, module
    reads = (paths.IMAGES, paths.PAIRED, paths.LATENTS, paths.LATENT_STATS, paths.MATCHER, paths.EVALNET)
    for path in (*reads, paths.AUTOENCODER):
        assert str(path) in deps, path
    from lsdm.evaluation.judge import TIMED_STAGES

    for st in TIMED_STAGES:
        assert f"results/{st}/metrics.json" in deps, st
    assert "evaluate" in stage["params"]
    plots = {next(iter(p)) for p in stage["plots"]}
    assert plots == {"results/evaluate/plots/prdc_vs_k.tsv", "results/evaluate/plots/per_class.tsv"}


def test_shipped_evaluate_params_are_the_documented_defaults():
    p = load_params(ROOT / "params.yaml").evaluate
    assert (p.pr_k, p.dc_k) == (3, 5) and len(p.seeds) >= 2 and p.inception_weights is None
    with pytest.raises(ParamsError, match=r"evaluate.seeds.*distinct"):  # a repeated seed would count one draw twice
        load_params(ROOT / "params.yaml", {"evaluate.seeds": [p.seeds[0], p.seeds[0]]})


@pytest.mark.slow
def test_evaluate_on_the_validation_split_judges_val_images_only(tiny_repro, tmp_path, monkeypatch):
    """`evaluate.split: val` (choosing settings) judges the validation images, says so in the metrics
    and the report, and never touches test."""
    work = workdir(tiny_repro, tmp_path / "work", split="val", seeds=[0])
    monkeypatch.chdir(work)
    from lsdm.data.schemas import IMAGES
    from lsdm.io import read_table
    from lsdm.pipeline import evaluate, report

    params = load_params()
    evaluate.run(params)
    e = read_results(paths.EVAL_DIR)["eval"]
    images = read_table(paths.IMAGES, IMAGES)
    n_val, n_test = int((images["split"] == "val").sum()), int((images["split"] == "test").sum())
    assert e["split"] == "val" and e["n_samples"] == n_val and n_val != n_test
    report.run(params)
    assert "computed on the **val** split" in paths.REPORT.read_text()

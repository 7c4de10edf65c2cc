"""The metric registry is the one place a metric is declared: its direction is one of three, the
judge's keys, the run report's readings and the comparison's columns all follow it, and the DVC
metrics file keeps only its headline scalars (the rest in details.json, merged back on reading)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from support.checkout import ROOT

from lsdm.evaluation import registry
from lsdm.evaluation.registry import DIRECTIONS, METRICS, Metric, merge, split_results


def test_every_metric_declares_a_known_direction_a_label_and_a_reading():
    assert set(DIRECTIONS) == {"higher", "lower", "reference"}
    assert len({m.key for m in METRICS}) == len(METRICS)
    for m in METRICS:
        assert m.direction in DIRECTIONS and m.label and m.reading, m.key
        assert m.higher is (None if m.direction == "reference" else m.direction == "higher")
        if m.compute:
            assert callable(m.function()), m.compute
    assert registry.BY_KEY["density"].direction == "reference"  # its ideal is the real data's ≈ 1, not more
    with pytest.raises(ValueError, match="direction"):
        Metric("x", "x", "sideways", "no such direction")  # type: ignore[arg-type]


def test_the_registry_and_the_reports_import_without_torch():
    code = "import sys, lsdm.evaluation.registry, lsdm.reports.comparison; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_judge_derives_its_keys_from_the_registry():
    from lsdm.evaluation.judge import headline_keys, over_seeds_keys

    assert set(over_seeds_keys()) == {m.key for m in METRICS if m.over_seeds}
    assert set(headline_keys()) == set(over_seeds_keys()) | {m.std_key for m in METRICS if m.over_seeds and m.std_key}


def test_split_keeps_headline_scalars_in_metrics_and_the_rest_in_details():
    e = {
        "fid_evalnet": 3.0,
        "kid_evalnet": 1.0,
        "kid_evalnet_std": 0.2,
        "fid_inception": None,
        "split": "test",
        "over_seeds": {"fid_evalnet": {"mean": 3.1}},
        "real_reference": {"density": 1.0},
        "bound": {"rhs": 2.0},
    }
    head, details = split_results(e)
    assert head == {"fid_evalnet": 3.0, "kid_evalnet": 1.0, "fid_inception": None}
    assert set(head) <= set(registry.HEADLINE) and not set(head) & set(details)
    assert merge(head, details) == e
    nested = merge({"eval": {"a": 1, "b": {"c": 1}}}, {"eval": {"b": {"d": 2}}})
    assert nested == {"eval": {"a": 1, "b": {"c": 1, "d": 2}}}


def test_read_results_merges_the_two_files(tmp_path):
    from lsdm.io import write_json

    write_json({"eval": {"fid_evalnet": 3.0}}, tmp_path / "metrics.json")
    write_json({"eval": {"real_reference": {"density": 1.0}}}, tmp_path / "details.json")
    assert registry.read_results(tmp_path) == {"eval": {"fid_evalnet": 3.0, "real_reference": {"density": 1.0}}}


@pytest.fixture
def with_new_metrics(monkeypatch):
    """Two metrics added to the registry, one entry each: nothing else is told about them."""
    new = (
        Metric("sharpness", "sharpness", "higher", "how sharp the samples are", over_seeds=True, headline=True),
        Metric("spread", "spread", "reference", "how spread out the samples are", reference="real_reference.spread"),
    )
    monkeypatch.setattr(registry, "METRICS", registry.METRICS + new)
    return new


def test_a_metric_added_to_the_registry_shows_up_in_the_report(with_new_metrics):
    from lsdm.reports.run_report import distribution_rows

    e = {
        "fid_evalnet": 3.0,
        "sharpness": 0.7,
        "spread": 1.5,
        "real_reference": {"spread": 1.0},
        "over_seeds": {"sharpness": {"mean": 0.6, "std": 0.1, "n": 2}},
    }
    rows = {r[0]: r for r in distribution_rows(e)}
    assert list(rows) == ["eval.fid_evalnet", "eval.sharpness", "eval.spread"]
    reading = "how sharp the samples are; higher is better"
    assert rows["eval.sharpness"][1:] == ("0.7", "0.6 ± 0.1 (2 seeds)", "—", reading)
    assert rows["eval.spread"][3] == "1" and "closest to its real reference is better" in rows["eval.spread"][4]
    assert rows["eval.fid_evalnet"][4].startswith(registry.BY_KEY["fid_evalnet"].reading)
    assert split_results(e)[0] == {"fid_evalnet": 3.0, "sharpness": 0.7}  # headline: the DVC metrics file


def test_a_metric_added_to_the_registry_shows_up_in_the_comparison(with_new_metrics, tmp_path):
    from lsdm.reports.comparison import write_report
    from lsdm.reports.stats import metric_columns, summarise

    cols = metric_columns()
    assert ("eval.sharpness", "sharpness", True) in cols and ("eval.spread", "spread", None) in cols
    assert ("spread_gap", "|spread − real spread|", False) in cols
    assert [c for c, *_ in cols if c.startswith("eval.")] == [m.column for m in registry.METRICS if m.compared]
    rows = [
        {
            "experiment": "e0",
            "sampler": s,
            "method": s,
            "nfe": 1,
            "n_paired_per_class": 10,
            "seed": 0,
            "eval.sharpness": v,
            "eval.spread": 1.0 + v,
            "eval.real_reference.spread": 1.0,
        }
        for s, v in (("lsdm", 0.5), ("pixel_wgan", 0.25))
    ]
    summary = summarise(pd.DataFrame(rows)).set_index("sampler")
    assert summary.loc["pixel_wgan", "spread_gap|mean"] == pytest.approx(0.25)
    report = write_report(pd.DataFrame(rows), {}, tmp_path).read_text()
    assert "### sharpness (higher is better; `eval.sharpness`)" in report
    assert "### spread (closest to its real reference is better; `eval.spread`)" in report


def test_the_comparison_judges_density_through_its_gap():
    from lsdm.reports.stats import metric_columns

    cols = {c: (label, higher) for c, label, higher in metric_columns()}
    assert cols["eval.density"] == ("density", None) and cols["density_gap"] == ("|density − real density|", False)
    assert cols["eval.fid_evalnet"][1] is False and cols["eval.label_accuracy"][1] is True


def test_training_summaries_keep_no_curve_points():
    """A curve's last point and the step are plots, not metrics: `dvc exp show` would give each a column."""
    from lsdm.tracking import without_curves

    summary = {
        "train": {"mse": 0.1},
        "lr": 1e-3,
        "step": 30,
        "critic": {"w1": 1.0, "gp": 0.1},
        "latent": {"test_mse": 0.2, "train_seconds": 3.0},
    }
    kept = {"critic": {"gp": 0.1}, "latent": {"test_mse": 0.2, "train_seconds": 3.0}}
    assert without_curves(summary, {"train/mse", "lr", "critic/w1"}) == kept


def mean_brightness(draw) -> float:
    """A metric added for the test below: one function..."""
    return float(draw.fake.mean())


def test_a_per_draw_metric_needs_no_judge_code(monkeypatch, tmp_path):
    """...and one registry entry: the judge computes it per seed, over seeds and for the real reference."""
    import torch

    from lsdm.config import parse_params
    from lsdm.evaluation.features import evalnet_features
    from lsdm.evaluation.judge import Reference, judge_sampler, over_seeds_keys
    from lsdm.models.lenet import LeNet
    from lsdm.tasks import make_task

    entry = Metric(
        "brightness",
        "brightness",
        "reference",
        "mean pixel value",
        compute="test_registry:mean_brightness",
        reference="real_reference.brightness",
        over_seeds=True,
        headline=True,
        per_draw=True,
    )
    monkeypatch.setattr(registry, "METRICS", registry.METRICS + (entry,))
    params = parse_params(
        {
            "evaluate": {
                "seeds": [0, 1],
                "kid_subsets": 2,
                "kid_subset_size": 10,
                "diversity_pairs": 5,
                "grid_per_class": 2,
            }
        }
    )
    g = torch.Generator().manual_seed(0)
    y, labels = torch.rand(60, 1, 8, 8, generator=g) * 0.5, torch.arange(60) % 3  # real images: mean 0.25
    pixels = (y * 255).round().byte().permute(0, 2, 3, 1).numpy()
    images = pd.DataFrame(
        {
            "id": [f"i{i}" for i in range(60)],
            "split": ["test"] * 30 + ["train"] * 30,
            "label": labels.numpy(),
            "height": 8,
            "width": 8,
            "channels": 1,
            "image": [p.tobytes() for p in pixels],
        }
    )
    monkeypatch.chdir(tmp_path)  # the real reference reads its training images' pixels from the table
    from lsdm import paths
    from lsdm.data.schemas import IMAGES
    from lsdm.io import write_table

    write_table(images, paths.IMAGES, IMAGES)
    test, train = images[images["split"] == "test"], images[images["split"] == "train"]
    evalnet, cpu = LeNet(8, 1, 3).eval(), torch.device("cpu")
    ref = Reference(
        params,
        cpu,
        make_task(params),
        test,
        train,
        y[:30],
        labels[:30],
        labels[:30],
        evalnet,
        True,
        evalnet_features(evalnet, y[:30]),
    )

    class Bright(torch.nn.Module):  # samples of mean 0.75
        noise_dim, nfe = 2, 1

        def forward(self, x, eta=None):
            return 0.5 + 0.5 * torch.rand(len(x), 1, 8, 8, generator=torch.Generator().manual_seed(len(x)))

    m = judge_sampler(ref, Bright()).metrics
    assert m["brightness"] == pytest.approx(0.75, abs=0.02) and "brightness" in over_seeds_keys()
    assert m["over_seeds"]["brightness"]["n"] == 2
    assert ref.real_reference()["brightness"] == pytest.approx(0.25, abs=0.02)  # real vs real: its ideal
    assert split_results(m)[0]["brightness"] == m["brightness"]  # a headline: in the DVC metrics file

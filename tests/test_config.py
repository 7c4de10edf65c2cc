"""Params are validated in one typed place; every bad value names the key, the value and what is allowed."""

import pytest
import yaml
from support.checkout import ROOT

from lsdm.config import Params, apply_overrides, load_params, parse_params
from lsdm.errors import ParamsError


def test_shipped_params_are_valid_and_complete():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = parse_params(raw)
    # every field of every section is spelled out in params.yaml, so dvc.yaml's param deps see it
    for section in Params.model_fields:
        if isinstance(getattr(params, section), (str, list, dict)):  # `task`, `methods`, `sweeps`: not sections
            assert section in raw
            continue
        assert set(raw[section]) == set(type(getattr(params, section)).model_fields), section
    # and its values are the config's defaults: one set of shipped values, whichever a reader opens
    assert params.model_dump(exclude={"sweeps"}) == Params().model_dump(exclude={"sweeps"})


@pytest.mark.parametrize(
    "raw, needles",
    [
        ({"split": {"n_pairs": 3}}, ["split.n_pairs", "unknown key", "n_paired_per_class"]),
        ({"task": "super_resolution", "data": {"image_size": 30}}, ["sr.factor = 4", "data.image_size = 30"]),
        ({"splitt": {}}, ["splitt", "unknown key", "'split'"]),
        ({"split": {"n_paired_per_class": 0}}, ["split.n_paired_per_class", "0", "greater than 0"]),
        ({"split": {"n_paired_per_class": -3}}, ["split.n_paired_per_class", "-3", "greater than 0"]),
        ({"latent": {"dim": 0}}, ["latent.dim", "0", "greater than 0"]),
        ({"latent": {"steps": -1}}, ["latent.steps", "-1"]),
        ({"matcher": {"n_critic": 0}}, ["matcher.n_critic", "0"]),
        ({"data": {"source": "cifar"}}, ["data.source", "cifar", "mnist5k"]),
        ({"data": {"test_fraction": 1.5}}, ["data.test_fraction", "1.5", "less than 1"]),
        ({"task": "inpainting"}, ["task", "inpainting", "class_conditional"]),
        ({"base": {"device": "tpu"}}, ["base.device", "tpu", "auto"]),
        ({"matcher": {"critic": "film"}}, ["matcher.critic", "film", "'concat'", "'projection'"]),
        ({"matcher": {"marginal_weight": -0.5}}, ["matcher.marginal_weight", "-0.5", "greater than or equal to 0"]),
        ({"matcher": {"marginal_weight": "lots"}}, ["matcher.marginal_weight", "lots"]),
        ({"evaluate": {"split": "train"}}, ["evaluate.split", "train", "'val'", "'test'"]),
        ({"data": {"val_fraction": -0.1}}, ["data.val_fraction", "-0.1"]),
        ({"data": {"test_fraction": 0.5, "val_fraction": 0.5}}, ["data.test_fraction + data.val_fraction", "below 1"]),
        (
            {"data": {"val_fraction": 0}, "evaluate": {"split": "val"}},
            ["evaluate.split = 'val'", "data.val_fraction = 0"],
        ),
        ({"latent": {"lr": float("nan")}}, ["latent.lr = nan", "finite"]),
        ({"matcher": {"marginal_weight": float("inf")}}, ["matcher.marginal_weight = inf", "finite"]),
        ({"split": {"n_paired_per_class": 10**30}}, ["split.n_paired_per_class", "64-bit"]),
        ({"latent": {"channels": [16, 2**70]}}, ["latent.channels", "64-bit"]),
        ({"latent": {"seed": -1}}, ["latent.seed = -1", "greater than or equal to 0"]),
        ({"evaluate": {"seeds": [0, 2**32]}}, ["evaluate.seeds.1", "less than 4294967296"]),
        ({"data": {"image_size": 2}, "latent": {"channels": [8]}}, ["data.image_size = 2", "4 pixels"]),
    ],
)
def test_bad_params_name_key_value_and_allowed(raw, needles):
    with pytest.raises(ParamsError) as e:
        parse_params(raw)
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))


def test_all_problems_reported_at_once():
    with pytest.raises(ParamsError) as e:
        parse_params({"latent": {"dim": 0}, "matcher": {"steps": 0}})
    assert "latent.dim" in str(e.value) and "matcher.steps" in str(e.value)


def test_overrides_are_dotted_and_validated(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text((ROOT / "params.yaml").read_text())
    assert load_params(f, {"split.n_paired_per_class": 3}).split.n_paired_per_class == 3
    with pytest.raises(ParamsError, match="split.n_paired_per_class"):
        load_params(f, {"split.n_paired_per_class": "many"})
    assert apply_overrides({"a": {"b": 1}}, {"a.c": 2}) == {"a": {"b": 1, "c": 2}}


@pytest.mark.parametrize(
    "text, needles",
    [
        ("data:\n  source: [mnist5k\nsplit: {}\n", ["not valid YAML at line 3", "','"]),
        ("latent:\n  dim: 3\nlatent:\n  dim: 4\n", ["line 3", "key 'latent' given twice (first at line 1)"]),
        ("latent: {dim: 3, dim: 4}\n", ["key 'dim' given twice"]),
    ],
)
def test_malformed_yaml_is_a_params_error_naming_the_line(tmp_path, text, needles):
    """PyYAML's traceback (or, for a key given twice, its silent choice of the last) becomes one message."""
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as e:
        load_params(tmp_path / "params.yaml")
    assert all(n in str(e.value) for n in needles), str(e.value)


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_dotted_overrides_have_one_implementation_and_clear_errors():
    from lsdm.config import apply_overrides, parse_assignments
    from lsdm.orchestration.params_file import render_params

    assert apply_overrides({"a": {"b": 1}}, {"a.c": 2, "d.e": 3}) == {"a": {"b": 1, "c": 2}, "d": {"e": 3}}
    assert "c: 2" in render_params("a:  # kept\n  b: 1\n", {"a.c": 2}) and "# kept" in render_params(
        "a:  # kept\n  b: 1\n", {}
    )
    for bad in ({"a..b": 1}, {"": 1}, {"a.b.c": 1}):
        with pytest.raises(ParamsError, match="override"):
            apply_overrides({"a": {"b": 1}}, bad)
    assert parse_assignments(["methods=[pixel_wgan]", "matcher.steps=5"]) == {
        "methods": ["pixel_wgan"],
        "matcher.steps": 5,
    }
    with pytest.raises(ParamsError, match="KEY=VALUE"):
        parse_assignments(["matcher.steps"])


def test_lsdm_sweep_is_a_command():
    import subprocess

    out = subprocess.run(["lsdm", "sweep", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("usage: lsdm sweep") and "--counts" in out.stdout


def test_thread_count_comes_from_env_param_or_cores(monkeypatch):
    import os

    import torch

    from lsdm.config import resolve_threads

    before = torch.get_num_threads()
    try:
        for var in ("LSDM_THREADS", "OMP_NUM_THREADS"):
            monkeypatch.delenv(var, raising=False)
        cores = len(os.sched_getaffinity(0))
        assert resolve_threads(None) == (cores, f"the cores this process may use; {cores} cores available")
        assert resolve_threads(1)[0] == 1 == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert resolve_threads(None)[1].startswith("$OMP_NUM_THREADS")
        monkeypatch.setenv("LSDM_THREADS", "1")
        assert resolve_threads(3)[1].startswith("$LSDM_THREADS")  # the worker's share beats params.yaml
        monkeypatch.setenv("LSDM_THREADS", "two")
        with pytest.raises(ParamsError, match="LSDM_THREADS"):
            resolve_threads(None)
    finally:
        torch.set_num_threads(before)


def test_image_size_the_networks_cannot_take_is_refused_up_front():
    with pytest.raises(ParamsError, match=r"data.image_size = 30 must be divisible by 4 for latent.channels"):
        parse_params({"data": {"image_size": 30}})
    with pytest.raises(ParamsError, match=r"divisible by 8 for latent.channels"):
        parse_params({"data": {"image_size": 28}, "latent": {"channels": [8, 8, 8]}})
    assert parse_params({"data": {"image_size": 32}, "latent": {"channels": [8, 8, 8]}}).data.image_size == 32

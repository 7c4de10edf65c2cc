"""Parameter presets laid over a params.yaml. `TINY` runs every stage for real in seconds (a few
hundred images, a few dozen steps): the tests' repositories and `benchmarks/bench_pipeline.py --tiny`
(and the benchmarks built on it) use this one copy, so a change of the pipeline's cost shows in both."""

from __future__ import annotations

from lsdm.evaluation.registry import merge

TINY: dict = {
    "base": {"device": "cpu"},
    "data": {"limit": 300},
    "split": {"n_paired_per_class": 3},
    "latent": {"steps": 30, "batch_size": 32},
    "matcher": {"steps": 15, "width": 32, "depth": 2, "batch_size": 32},
    "evalnet": {"epochs": 1},
    "evaluate": {"batch_size": 60, "grid_per_class": 4},
    "pixel_wgan": {"steps": 4, "n_critic": 2, "width": 4, "batch_size": 16},
    "latent_flow": {"steps": 30, "width": 32, "depth": 2, "batch_size": 32, "nfe": [2, 4]},
    "pixel_wgan_pseudo": {"steps": 4, "n_critic": 2, "width": 4, "batch_size": 16},
    "latent_flow_pseudo": {"steps": 30, "width": 32, "depth": 2, "batch_size": 32, "nfe": [2]},
    "sweep": {"counts": [1, 2], "seeds": [0], "train_seeds": [0]},
}


def tiny(params: dict, *overrides: dict) -> dict:
    """`params` (params.yaml as a dict) with TINY and then each of `overrides` laid over it."""
    for layer in (TINY, *overrides):
        params = merge(params, layer)
    return params

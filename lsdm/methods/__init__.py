"""Generative methods: LSDM and every method it is compared with, one module each (`lsdm.methods.<name>`).

A method module says how it is fitted, what it reads and how it samples:

- `FIT_READS`, `SAMPLE_READS`: the pipeline files its `fit` and its samplers read, besides its own
  checkpoints (they are in the deps of its DVC fit and evaluate stages: tests/test_architecture.py);
- `fit(params, device, out_dir, track, root=".") -> summary`: train on the paired subset (plus
  whatever else it reads) and write its checkpoints into `out_dir`, the stage's DVC output;
- `samplers(device, params=None, root=".") -> [(name, sampler)]`: the trained samplers, each with the
  interface of `lsdm.methods.sampling`; latent_flow gives one per NFE, the others one each.

LSDM (`lsdm`) is fitted by the main pipeline (fit_latent, encode, then fit_matcher runs its `fit`);
each other method by `fit_baseline@<name>` and judged by `evaluate_baseline@<name>`, both generic over
this registry. The names are the params sections that subclass `lsdm.config.MethodSection`, so
validating params never imports torch; a new method is one module here plus its params section.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from lsdm.config import METHOD_NAMES

#: LSDM first, then the methods `methods:` in params.yaml may name.
METHODS: tuple[str, ...] = ("lsdm", *METHOD_NAMES)


def method(name: str) -> ModuleType:
    """The module of method `name` (imported on first use)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {list(METHODS)}")
    return importlib.import_module(f"lsdm.methods.{name}")


def samplers(name: str, device, params=None, root: str | Path = "."):
    """The (sampler name, sampler) pairs to judge for method `name`."""
    return method(name).samplers(device, params, root)

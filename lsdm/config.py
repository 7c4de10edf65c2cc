"""Typed parameters: the one place where `params.yaml` is read and checked.

Every stage reads its section through `load_params()`. Unknown keys, out-of-range values and
unknown registry names fail here, before any work is done, with a message that names the key,
the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator

from lsdm.errors import ParamsError

PARAMS_FILE = "params.yaml"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaseSection(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present, else CPU


class DataParams(Section):
    source: str = "mnist5k"  # a key of lsdm.sources.SOURCES
    root: str | None = None  # where sources that read files look
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    limit: PositiveInt | None = None  # keep only this many images (stratified), for quick runs
    seed: int = 0  # train/test assignment

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        from lsdm.sources import SOURCES

        if v not in SOURCES:
            raise ValueError(f"unknown data source {v!r}; allowed: {sorted(SOURCES)}")
        return v


class SplitParams(Section):
    n_paired_per_class: PositiveInt = 10
    seed: int = 0


class LatentParams(Section):
    dim: PositiveInt = 16
    channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32], min_length=1)
    steps: PositiveInt = 2500
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3
    noise: float = Field(0.05, ge=0.0)  # std of Gaussian noise added to z while training: keeps D smooth
    seed: int = 0


class MatcherParams(Section):
    noise_dim: PositiveInt = 16
    width: PositiveInt = 256
    depth: PositiveInt = 3
    n_critic: PositiveInt = 5
    gp_weight: float = Field(10.0, ge=0.0)
    steps: PositiveInt = 1000  # generator steps
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 2e-4
    seed: int = 0


class EvalNetParams(Section):
    epochs: PositiveInt = 4
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    seed: int = 0


class EvaluateParams(Section):
    seed: int = 0
    batch_size: PositiveInt = 500  # generation batch for the throughput figure
    grid_per_class: PositiveInt = 10  # columns of the sample grid


class Params(Section):
    base: BaseSection = BaseSection()
    task: str = "class_conditional"  # a key of lsdm.tasks.TASKS
    data: DataParams = DataParams()
    split: SplitParams = SplitParams()
    latent: LatentParams = LatentParams()
    matcher: MatcherParams = MatcherParams()
    evalnet: EvalNetParams = EvalNetParams()
    evaluate: EvaluateParams = EvaluateParams()

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from lsdm.tasks import TASKS

        if v not in TASKS:
            raise ValueError(f"unknown task {v!r}; allowed: {sorted(TASKS)}")
        return v


def _section_at(loc: tuple) -> type[BaseModel] | None:
    """The params model that holds the key at `loc` (for listing its allowed keys)."""
    model: type[BaseModel] = Params
    for part in loc:
        ann = model.model_fields[str(part)].annotation if str(part) in model.model_fields else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _describe(err: dict[str, Any], source: str) -> str:
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        section = _section_at(err["loc"][:-1])
        allowed = sorted(section.model_fields) if section else []
        return f"{source}: unknown key {key!r} (value {err['input']!r}); allowed keys here: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{source}: {key} = {err['input']!r}: {msg}"


def parse_params(raw: dict[str, Any] | None, source: str = PARAMS_FILE) -> Params:
    """Validate a params dict; raise ParamsError listing every problem."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as e:
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(_describe(x, source) for x in e.errors())) from None


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with dotted keys (`split.n_paired_per_class`) set to new values."""
    out = yaml.safe_load(yaml.safe_dump(raw or {}))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ParamsError(f"override {dotted!r}: {p!r} is not a section")
        node[leaf] = value
    return out


def read_params_file(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found (run from the repository root)")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def resolve_device(name: str):
    """`auto` -> CUDA when present, else CPU; `cuda` without CUDA is an error, not a silent fallback."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamsError("base.device = 'cuda' but CUDA is not available here; use 'auto' or 'cpu'")
    return torch.device(name)


def load_params(path: str | Path = PARAMS_FILE, overrides: dict[str, Any] | None = None) -> Params:
    raw = read_params_file(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return parse_params(raw, str(path))

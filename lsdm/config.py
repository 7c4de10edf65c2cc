"""Typed parameters: the one place where `params.yaml` is read and checked.

Every stage reads its section through `load_params()`. Unknown keys, out-of-range values and
unknown registry names fail here, before any work is done, with a message that names the key,
the value and what is allowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from lsdm.errors import ParamsError

PARAMS_FILE = "params.yaml"


def registered(name: str, registry: dict, what: str) -> str:
    """`name` if it is a key of `registry`, else a ValueError listing the allowed names."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; allowed: {sorted(registry)}")
    return name


#: A random seed: numpy's and pandas' seeding (`random_state`) takes 0 .. 2**32 - 1, torch more.
Seed = Annotated[int, Field(ge=0, lt=2**32)]

INT64 = 2**63  # torch and Parquet hold integers in 64 bits: a larger count overflows deep in a stage


class Section(BaseModel):
    # NaN and infinity pass `gt`/`ge` bounds in some places and poison training in all: refused
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _fits_64_bits(cls, v: Any) -> Any:
        values = v if isinstance(v, list) else [v]
        if any(type(x) is int and not -INT64 <= x < INT64 for x in values):
            raise ValueError(f"larger than a 64-bit integer (at most {INT64 - 1})")
        return v


class BaseSection(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present, else CPU
    # CPU threads of torch in every stage; null: the cores this process may use. $LSDM_THREADS wins, so
    # N workers on one machine each take their share. Listed by no stage: it changes speed, not results.
    threads: PositiveInt | None = None


class DataParams(Section):
    source: str = "mnist5k"  # a key of lsdm.data.sources.SOURCES
    root: str = "inputs"  # where file sources look; a DVC dependency of prepare, so new files rerun it
    image_size: PositiveInt = 28  # images are resized (and center-cropped) to this square size
    channels: Literal[1, 3] = 1  # 1: grayscale, 3: RGB
    on_corrupt: Literal["error", "skip"] = "error"  # an unreadable image file: stop, or skip and count
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    # held out of training for model selection (evaluate.split: val); test is judged once, at the end
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    limit: PositiveInt | None = None  # keep only this many images (stratified), for quick runs
    seed: Seed = 0  # train/test assignment

    @model_validator(mode="after")
    def _room_for_training(self) -> DataParams:
        if self.test_fraction + self.val_fraction >= 1.0:
            raise ValueError(
                f"data.test_fraction + data.val_fraction = {self.test_fraction} + {self.val_fraction}: "
                "must be below 1 (the rest is the training split)"
            )
        return self

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        from lsdm.data.sources import SOURCES

        return registered(v, SOURCES, "data source")


class SplitParams(Section):
    n_paired_per_class: PositiveInt = 10  # when the data has classes
    n_paired: PositiveInt = 100  # when it has none (e.g. a flat folder of faces for super-resolution)
    # training images beside the pairs in the latent pool, drawn in a fixed hash order (so a larger
    # pool holds every smaller one); null: all of them, and the pool is then independent of the pairs
    n_unpaired: NonNegativeInt | None = None
    seed: Seed = 0


class SRParams(Section):
    factor: int = Field(4, ge=2)  # condition = image downsampled by this factor (28 -> 7, 64 -> 16)
    back_projection: int = Field(5, ge=0)  # iterations of back-projection on outputs (0: raw D(G(x, eta)))
    encoder_width: PositiveInt = 8  # channels of the matcher's conv encoder of x (the second conv has twice)


class LatentParams(Section):
    dim: PositiveInt = 16
    channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32], min_length=1)
    steps: PositiveInt = 2500
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3
    noise: float = Field(0.1, ge=0.0)  # std of Gaussian noise added to z while training: keeps D smooth
    seed: Seed = 0


class MatcherParams(Section):
    # how the critic sees the condition: concat (MLP on [cond(x), z]) | projection (a head per class
    # on shared features of z); see lsdm/models/matcher.py and the README's matcher section
    critic: Literal["concat", "projection"] = "projection"
    # how G is trained to match: wgan_gp = against 1-Wasserstein critics (the paper's); minibatch_ot = no
    # critic, a debiased exact OT between batches of real and generated rows per term (lsdm/models/matching.py)
    estimator: Literal["wgan_gp", "minibatch_ot"] = "wgan_gp"
    # minibatch_ot: the ground cost between rows of different conditions (labels: 0/1; images: Euclidean)
    ot_condition_cost: PositiveFloat = 100.0
    # what the unpaired latents add (our extension beyond the paper): none = the paper's method, pairs
    # only ("LSDM"); pooled = a class-blind W1 term, G's codes pooled over conditions vs every latent
    # of the pool ("LSDM + marginal"); class_aware = also a conditional W1 term on the pool latents
    # whose pseudo-label (stage pseudo_label, from the pairs alone) has confidence >= pseudo.threshold.
    # Data without classes (super-resolution) has no pseudo-labels: class_aware runs as pooled there.
    marginal: Literal["none", "pooled", "class_aware"] = "class_aware"
    # weight of the class-blind pooled term (0 turns it off, as marginal: none)
    marginal_weight: float = Field(1.0, ge=0.0)
    # weight of the class-aware term (marginal: class_aware only)
    class_weight: float = Field(1.0, ge=0.0)
    noise_dim: PositiveInt = 16
    width: PositiveInt = 256
    depth: PositiveInt = 3
    n_critic: PositiveInt = 5
    gp_weight: float = Field(10.0, ge=0.0)
    steps: PositiveInt = 2000  # generator steps (learning rates decay on a cosine)
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 1e-3
    seed: Seed = 0
    # The training schedule's cost levers (issue: the matcher 4x faster at equal validation quality):
    critic_lr: PositiveFloat | None = None  # the critics' learning rate (null: lr); TTUR with fewer n_critic
    gp_every: PositiveInt = 1  # lazy gradient penalty: on every k-th critic update only, at k x gp_weight
    critic_width: PositiveInt | None = None  # the critics' hidden width (null: width, as the generator's)
    # on a GPU, capture the training step once as a CUDA graph and replay it (same kernels, one launch
    # a step; needs gp_every 1, else eager); no effect on the CPU
    cuda_graph: bool = True


class PseudoParams(Section):
    """Pseudo-labels for the latent pool (stage pseudo_label): label spreading from the pairs over a
    k-NN graph of the latents, then a Gaussian class model fitted to the confident labels
    (lsdm/models/pseudo_labels.py)."""

    neighbors: PositiveInt = 10  # k of the k-NN graph
    alpha: float = Field(0.2, gt=0.0, lt=1.0)  # how far labels spread (scikit-learn's clamping factor)
    refine: Literal["none", "gaussian"] = "none"  # gaussian: relabel by a Gaussian model per class (QDA)
    keep: float = Field(0.7, gt=0.0, le=1.0)  # share of the pool, most confident first, the class model fits
    reg: float = Field(0.1, ge=0.0, le=1.0)  # shrinkage of its covariances towards the identity
    threshold: float = Field(0.9, ge=0.0, le=1.0)  # confidence a pool latent needs for the class-aware term
    # the image classifier of the confident labels (sample.filter: image): a LeNet, as the evaluation net
    epochs: PositiveInt = 6  # over the pool images with confidence >= threshold, the pairs among them
    pair_repeats: PositiveInt = 10  # times each pair is seen per epoch (a pseudo-label once)
    seed: Seed = 0


class SampleParams(Section):
    """How LSDM draws (lsdm/methods/lsdm.py): `candidates` noise vectors per sample, the first whose code
    a class model gives the asked class with probability >= `accept` decoded; 1 = the plain one-step
    draw. Data without classes always draws once. The class model (`filter`, lsdm/models/latent_classes.py):
    image = the pseudo-labeller's image classifier on the decoded code, latent = a Gaussian per class
    on the codes."""

    candidates: PositiveInt = 16  # chosen on val (docs/matcher-tuning.md "The filtered draw", "The image filter")
    accept: float = Field(0.99, gt=0.0, le=1.0)
    filter: Literal["latent", "image"] = "latent"


class EvalNetParams(Section):
    epochs: PositiveInt = 6
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-3
    shift: float = Field(0.1, ge=0.0, lt=0.5)  # random translation, as a fraction of the image size
    seed: Seed = 0
    # examples an epoch visits at most (a fresh shuffle's head; rotations count 4 per image): the
    # stage's time bounded at scale, not by the data; None = every example every epoch
    epoch_size: PositiveInt | None = 50_000


class EvaluateParams(Section):
    """The evaluation suite (lsdm/pipeline/evaluate.py): sample counts, k values, seeds, weight paths."""

    # generation seeds (mean ± std over them); the first gives the headline numbers and the grid
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    # the held-out images judged: val for choosing settings (sweeps, tuning), test once at the end
    split: Literal["val", "test"] = "test"
    # held-out images judged at most (a seeded draw; as many generated): FID-10k, and evaluate's memory
    # and time bounded by it rather than the data (CelebA's 40,000); null = the whole split
    n_samples: PositiveInt | None = 10000
    batch_size: PositiveInt = 500  # generation batch (also the throughput figure's batch)
    grid_per_class: PositiveInt = 10  # columns of the sample grid
    pr_k: PositiveInt = 3  # k of the k-NN balls for precision/recall (Kynkäänniemi et al. 2019)
    dc_k: PositiveInt = 5  # k of the k-NN balls for density/coverage (Naeem et al. 2020)
    kid_subsets: PositiveInt = 25  # KID: random subsets averaged (their std is the KID std)
    kid_subset_size: int = Field(500, ge=2)  # KID: points per subset, capped at half the smaller set
    per_class_min_samples: int = Field(50, ge=2)  # per-class KID only for classes with this many images
    diversity_pairs: PositiveInt = 100  # random same-class pairs per class for LPIPS diversity
    lipschitz_samples: PositiveInt = 96  # latents where the decoder's Jacobian is measured
    bound_bootstrap: NonNegativeInt = 20  # resamplings of the held-out points for the bound's sampling error (0: none)
    # held-out points the bound's exact W1s are measured on at most (a class-stratified draw): exact OT
    # grows superlinearly (a 40,000-point problem is a 12.8 GB cost matrix); null: all of them
    bound_max_points: PositiveInt | None = 2000
    # clean-fid's inception-2015-12-05.pt (the file or its folder); null: ~/.cache/lsdm, then torch hub's checkpoints
    inception_weights: str | None = None
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"  # LPIPS backbone (weights from $TORCH_HOME/hub/checkpoints)
    lpips_size: int = Field(64, ge=32)  # images smaller than this are upsampled for LPIPS

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v


class MethodSection(Section):
    """The params of a method compared with LSDM: the field holding it in `Params` is the method's
    name, `lsdm/methods/<name>.py` its code (see lsdm.methods), and `methods:` may name it."""


class PixelWGANParams(MethodSection):
    """Baseline pixel_wgan: a conditional WGAN-GP in pixel space, on the paired subset only."""

    noise_dim: PositiveInt = 32
    width: PositiveInt = 32  # channels of the first conv block (doubled once); G about LSDM's G + decoder in size
    n_critic: PositiveInt = 5
    gp_weight: float = Field(10.0, ge=0.0)
    steps: PositiveInt = 2000  # generator steps (the LSDM matcher's budget)
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 1e-3
    seed: Seed = 0


class LatentFlowParams(MethodSection):
    """Baseline latent_flow: conditional flow matching on the shared latents, sampled by an ODE solver."""

    width: PositiveInt = 256
    depth: PositiveInt = 3
    steps: PositiveInt = 12000  # velocity-network updates (the matcher's 2000 x (5 critic + 1 generator))
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 1e-3
    nfe: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4, 10, 50, 100], min_length=1)
    solver: Literal["euler", "heun"] = "euler"  # heun: 2 evaluations per step, so steps = nfe / 2
    seed: Seed = 0

    @model_validator(mode="after")
    def _heun_even_nfe(self) -> LatentFlowParams:
        if self.solver == "heun" and any(n % 2 for n in self.nfe):
            raise ValueError(f"latent_flow.nfe = {self.nfe}: with solver heun every NFE must be even (2 per step)")
        return self


class LatentFlowPseudoParams(LatentFlowParams):
    """Baseline latent_flow_pseudo: latent_flow on the pairs plus the pool's confident pseudo-pairs, drawn
    through the filtered draw (lsdm/methods/latent_flow_pseudo.py); judged at the sweep's three NFEs."""

    nfe: list[PositiveInt] = Field(default_factory=lambda: [1, 10, 100], min_length=1)


class SweepParams(Section):
    """`make sweep` and the Prefect deployment `lsdm/sweep`: one DVC experiment per paired count x
    split seed (x variant). Read by `lsdm.orchestration.sweep`, by no stage: changing it reruns nothing."""

    # The defaults are the shipped sweep, as params.yaml spells it out (tests/test_config.py holds both equal).
    counts: list[PositiveInt] = Field(default_factory=lambda: [3, 10, 30], min_length=1)  # per class (or in all)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)  # split.seed values
    # training seeds: every trained generator's seed (`train_seed_keys`), crossed with the split seeds
    train_seeds: list[Seed] = Field(default_factory=lambda: [0, 1], min_length=1)
    # dotted overrides for every run: every method at its own budget, one noise seed per run
    set: dict[str, Any] = Field(
        default_factory=lambda: {
            "methods": ["latent_flow", "pixel_wgan", "latent_flow_pseudo", "pixel_wgan_pseudo"],
            "evaluate.seeds": [0],
            "latent_flow.steps": 88000,
        }
    )
    # more LSDM runs per cell, without the baselines: name -> dotted overrides (here the paper's matcher
    # beside the default one); each shows in the comparison as a method of that name
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {
            "lsdm_paper": {"matcher.marginal": "none", "sample.candidates": 1},
            "lsdm_pooled": {"matcher.marginal": "pooled", "sample.candidates": 1},
            "lsdm_one_draw": {"sample.candidates": 1},
            "lsdm_refined": {"pseudo.refine": "gaussian", "pseudo.threshold": 0.99},
            "lsdm_image_filter": {"sample.filter": "image", "sample.accept": 0.9},
        }
    )

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        import re

        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in ("lsdm", *METHOD_NAMES):
                raise ValueError(
                    f"variant name {name!r}: lower-case letters, digits and '_', not 'lsdm' or a baseline's"
                )
        return v

    @field_validator("set")
    @classmethod
    def _not_swept_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        swept = [k for k in v if k.startswith(("split.n_paired", "split.seed", "sweep")) or k in train_seed_keys()]
        if swept:
            raise ValueError(f"{swept} cannot be set for every run: the sweep sets them (counts, seeds, train_seeds)")
        return v

    @field_validator("seeds", "train_seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v


def train_seed_keys() -> list[str]:
    """The seeds a sweep's training seed sets: the autoencoder's, the matcher's and every method's
    (what varies between two trainings on the same data); never the data split's or the judge's."""
    return ["latent.seed", "matcher.seed", *(f"{m}.seed" for m in METHOD_NAMES)]


class Params(Section):
    base: BaseSection = BaseSection()
    task: str = "class_conditional"  # a key of lsdm.tasks.TASKS
    data: DataParams = DataParams()
    split: SplitParams = SplitParams()
    sr: SRParams = SRParams()
    latent: LatentParams = LatentParams()
    matcher: MatcherParams = MatcherParams()
    pseudo: PseudoParams = PseudoParams()
    sample: SampleParams = SampleParams()
    evalnet: EvalNetParams = EvalNetParams()
    evaluate: EvaluateParams = EvaluateParams()
    methods: list[str] = Field(default_factory=list)  # baselines fitted beside LSDM (a sweep sets all)
    pixel_wgan: PixelWGANParams = PixelWGANParams()
    latent_flow: LatentFlowParams = LatentFlowParams()
    # the same two given what LSDM's default is given: the pool's confident pseudo-pairs and the filtered draw
    pixel_wgan_pseudo: PixelWGANParams = PixelWGANParams()
    latent_flow_pseudo: LatentFlowPseudoParams = LatentFlowPseudoParams()
    sweep: SweepParams = SweepParams()
    # more sweeps, run by name (`lsdm sweep --name NAME`), each written beside the default one
    sweeps: dict[str, SweepParams] = Field(default_factory=dict)

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from lsdm.tasks import TASKS

        return registered(v, TASKS, "task")

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str]) -> list[str]:
        unknown = [m for m in v if m not in METHOD_NAMES]
        if unknown or len(set(v)) != len(v):
            raise ValueError(f"unknown or repeated baselines {unknown or v}; allowed: {list(METHOD_NAMES)}")
        return v

    @model_validator(mode="after")
    def _val_split_exists(self) -> Params:
        if self.evaluate.split == "val" and self.data.val_fraction == 0:
            raise ValueError(
                "evaluate.split = 'val' but data.val_fraction = 0: there are no validation images; "
                "set data.val_fraction > 0 or evaluate.split: test"
            )
        return self

    @model_validator(mode="after")
    def _sr_factor_divides_size(self) -> Params:
        if self.task == "super_resolution" and self.data.image_size % self.sr.factor:
            raise ValueError(f"sr.factor = {self.sr.factor} must divide data.image_size = {self.data.image_size}")
        return self

    @model_validator(mode="after")
    def _networks_fit_the_image_size(self) -> Params:
        """Each entry of a `channels` list is one stride-2 conv: the image size must halve that often."""
        size = self.data.image_size
        needs = [("latent.channels", 2 ** len(self.latent.channels))]
        if "pixel_wgan" in self.methods:
            needs.append(("pixel_wgan (two stride-2 convs)", 4))
        for what, k in needs:
            if size % k:
                raise ValueError(
                    f"data.image_size = {size} must be divisible by {k} for {what} (one stride-2 conv "
                    f"per halving); use an image size that is a multiple of {k}"
                )
        if size < 4:  # the evaluation net halves twice with 2x2 max-pooling
            raise ValueError(f"data.image_size = {size}: the evaluation net needs 4 pixels or more")
        return self


#: The methods `methods:` may name, in the order their sections appear in Params.
METHOD_NAMES: tuple[str, ...] = tuple(
    name
    for name, field in Params.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, MethodSection)
)


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
    if not err["loc"]:  # a check across sections: its message names the keys
        return f"{source}: {err['msg'].removeprefix('Value error, ')}"
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


def set_dotted(tree: dict, dotted: str, value: Any, section: Callable[[], dict] = dict) -> None:
    """Set `tree[a][b][c] = value` for `dotted` = "a.b.c", creating missing sections with `section()`.
    The one implementation of dotted overrides: `apply_overrides` and the params.yaml editor that keeps
    comments (lsdm.orchestration.params_file.render_params) both call it."""
    if not isinstance(dotted, str) or not dotted or any(not part for part in dotted.split(".")):
        raise ParamsError(f"override key {dotted!r}: expected a dotted key such as 'split.n_paired_per_class'")
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        if node.get(part) is None:
            node[part] = section()
        node = node[part]
        if not isinstance(node, dict):
            raise ParamsError(f"override {dotted!r}: {part!r} is not a section")
    node[leaf] = value


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of `raw` with dotted keys (`split.n_paired_per_class`) set to new values."""
    if not isinstance(overrides, dict):
        raise ParamsError(f"overrides must be a mapping of dotted keys to values, got {type(overrides).__name__}")
    out = yaml.safe_load(yaml.safe_dump(raw or {}))
    for dotted, value in overrides.items():
        set_dotted(out, dotted, value)
    return out


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Command-line `KEY=VALUE` overrides (`-S`), values read as YAML: `methods=[pixel_wgan]`, `matcher.steps=500`."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"override {item!r}: expected KEY=VALUE, e.g. matcher.steps=500")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """A named set of overrides, `name:key=value,key=value` (the benchmarks' `--variant`) -> (name, {dotted
    key: YAML value}); a comma inside [...] belongs to a list. `name:` alone: no overrides."""
    name, _, body = spec.partition(":")
    return name, parse_assignments(filter(None, re.split(r",(?![^\[]*\])", body)))


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently; DVC's
    parser refuses it, so the stages and DVC would read different params)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first at line {seen[key].line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_params_file(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: parameters file not found (run from the repository root)")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(x for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise ParamsError(f"{path}: not valid YAML{where}: {what}") from None
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


THREADS_ENV = "LSDM_THREADS"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a scheduler or `taskset` may narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_threads(threads: int | None) -> tuple[int, str]:
    """torch's CPU thread count and why: $LSDM_THREADS, else `base.threads`, else $OMP_NUM_THREADS, else
    the cores this process may run on (its CPU affinity, which a scheduler or `taskset` may narrow).
    Sets it in torch."""
    import torch

    cores = available_cores()
    env, omp = os.environ.get(THREADS_ENV, "").strip(), os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ParamsError(f"${THREADS_ENV} = {env!r}: expected a positive number of threads")
        n, why = int(env), f"${THREADS_ENV}"
    elif threads is not None:
        n, why = threads, "base.threads"
    elif omp.isdigit() and int(omp) > 0:
        n, why = int(omp), "$OMP_NUM_THREADS"
    else:
        n, why = cores, "the cores this process may use"
    torch.set_num_threads(n)
    return n, f"{why}; {cores} cores available"


def load_params(path: str | Path = PARAMS_FILE, overrides: dict[str, Any] | None = None) -> Params:
    raw = read_params_file(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return parse_params(raw, str(path))

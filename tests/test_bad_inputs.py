"""Bad inputs, as a user would make them: each one ends with exit status 2 and a message naming the
culprit (the key or the file), and leaves every file under data/, results/ and reports/ as it was.

The inputs DVC used to meet only inside a stage (after deleting that stage's outputs) run through a
real `dvc repro` on a reproduced repo: the `check` stage must stop them first. The rest run through
`lsdm check`, or the stage that reads a damaged table. One reproduced repo is shared (module scope)
and copied per case. Inputs that look odd but are valid (unicode and spaces in paths, RGBA and 16-bit
images, numbered class folders) are asserted to work, in the tests after the table.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from support.processes import run
from support.repos import copy_repo, make_repo, tiny_params
from test_sources import write_image_folder

pytestmark = pytest.mark.slow

# Image folders inside the shared repo, all of tiny 8x8 grayscale PNGs: the pipeline's own data
# (three classes) and the odd ones cases point data.root at.
BASE = {
    "data": {"source": "image_folder", "root": "inputs/pets", "image_size": 8, "channels": 1, "limit": None},
    "latent": {"channels": [8, 16], "dim": 4},
}


def folder(root: Path, n: int, classes=("cat", "dog", "owl"), flat: bool = False) -> Path:
    return write_image_folder(root, n_per_class=n, classes=classes, size=(8, 8), mode="L", nested=False, flat=flat)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Path:
    """The pipeline reproduced up to the autoencoder (check, prepare, split, fit_latent): the outputs the
    issue saw deleted (the image table, split's files, the autoencoder and results/fit_latent/*)."""
    repo = make_repo(tmp_path_factory.mktemp("bad") / "repo", tiny_params(**BASE))
    folder(repo / "inputs/pets", 30)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "images"], repo)
    run(["dvc", "repro", "fit_latent"], repo)
    return repo


def snapshot(repo: Path) -> dict[str, str]:
    """sha256 of every file under data/, results/, reports/ (and dvc.lock), hidden ones included."""
    files = [p for d in ("data", "results", "reports") for p in (repo / d).rglob("*") if p.is_file() or p.is_symlink()]
    files.append(repo / "dvc.lock")
    return {p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# --- how each case damages the repo -------------------------------------------------------------


# Each damage that knows what it damages says so, for test_the_table_covers_every_section_and_culprit:
# `keys`, the params keys it sets; `culprits`, what the message must name first (needles[0]).


def set_params(**dotted) -> Callable[[Path], None]:
    def apply(repo: Path) -> None:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        for key, value in dotted.items():
            *parents, leaf = key.split(".")
            node = params
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    apply.keys = tuple(dotted)  # or data.root's value: a path, what DVC's own file errors name
    apply.culprits = (*dotted, *(str(v) for k, v in dotted.items() if k == "data.root"))
    return apply


def append_text(text: str) -> Callable[[Path], None]:
    def apply(repo: Path) -> None:
        (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + text)

    apply.culprits = ("params.yaml",)
    return apply


def empty_params(repo: Path) -> None:
    (repo / "params.yaml").write_text("")


empty_params.culprits = ("params.yaml",)


def with_folder(make: Callable[[Path], object], **dotted) -> Callable[[Path], None]:
    """Make a folder at inputs/case with `make`, point data.root at it (and set `dotted`). The culprit
    is whatever `make` got wrong: a case names it itself."""

    def apply(repo: Path) -> None:
        root = repo / "inputs/case"
        root.mkdir(parents=True)
        make(root)
        set_params(**{"data.root": "inputs/case", **dotted})(repo)

    apply.keys = ("data.root", *dotted)
    return apply


def in_pets(make: Callable[[Path], object], at: str | None = None) -> Callable[[Path], None]:
    """Add something to the repo's own image folder (its class folders: cat, dog, owl): `make` gets the
    folder, or with `at` the path of the file it damages there (the culprit)."""

    def apply(repo: Path) -> None:
        make(repo / "inputs/pets" / (at or ""))

    apply.culprits = (at,) if at else ()
    return apply


def bomb_png(path: Path, side: int = 20_000) -> None:
    """A PNG whose header declares side x side pixels (past PIL's decompression-bomb limit) in a few bytes."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def half_jpeg(path: Path) -> None:
    """A JPEG cut in half: its header and structure pass PIL's `verify`; only decoding finds it short."""
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(data, "JPEG", quality=95)
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])


def float_tiff(path: Path) -> None:
    Image.fromarray(np.random.default_rng(0).random((8, 8), dtype=np.float32), mode="F").save(path)


def one_image_class(root: Path) -> None:
    folder(root, 20, classes=("cat", "dog"))
    folder(root, 1, classes=("owl",))


def rewrite_table(rel: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(repo: Path) -> None:
        path = repo / rel
        df = change(pd.read_parquet(path))
        os.chmod(path, 0o644)  # DVC may link outputs from its cache read-only
        path.unlink()
        df.to_parquet(path)

    apply.culprits = (rel,)
    return apply


def truncate(rel: str) -> Callable[[Path], None]:
    def apply(repo: Path) -> None:
        data = (repo / rel).read_bytes()
        (repo / rel).unlink()
        (repo / rel).write_bytes(data[: len(data) // 2])

    apply.culprits = (rel,)
    return apply


def mnist_truncated(repo: Path) -> None:
    raw = repo / "inputs/case/MNIST/raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 10)):
        images = struct.pack(">IIII", 2051, n, 28, 28) + bytes(n * 28 * 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(images[: len(images) - 100] if prefix == "train" else images)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + bytes(n))
    set_params(**{"data.source": "mnist", "data.root": "inputs/case"})(repo)


# (id, how it is run, what is damaged, what the message must name). How: "repro" (`dvc repro`: the
# check stage must fail, with exit status 2), "both" (`lsdm check`, then `dvc repro`, which may fail on
# its own before any stage), "exp" (`dvc exp run -S`), "check" (`lsdm check`), or "stage:<name>".
CASES = [
    # the table, through DVC
    (
        "n_paired_per_class_100000",
        "repro",
        set_params(**{"split.n_paired_per_class": 100000}),
        ["split.n_paired_per_class = 100000", "('owl')", "allowed: 1.."],
    ),
    ("cuda_without_gpu", "repro", set_params(**{"base.device": "cuda"}), ["base.device = 'cuda'", "not available"]),
    ("empty_data_root", "repro", with_folder(lambda root: None), ["inputs/case", "no images"]),
    (
        "image_size_30",
        "repro",
        set_params(**{"data.image_size": 30}),
        ["data.image_size = 30", "divisible by 4", "latent.channels"],
    ),
    (
        "one_class_folder",
        "repro",
        with_folder(lambda root: folder(root, 20, classes=("cat",))),
        ["'cat'", "one class only"],
    ),
    (
        "flat_folder_class_conditional",
        "repro",
        with_folder(lambda root: folder(root, 20, flat=True)),
        ["task: class_conditional needs class labels", "task: super_resolution"],
    ),
    ("minus_one", "repro", set_params(**{"latent.steps": -1}), ["latent.steps = -1", "greater than 0"]),
    ("ten_as_text", "repro", set_params(**{"matcher.steps": "ten"}), ["matcher.steps = 'ten'", "integer"]),
    ("unknown_source", "repro", set_params(**{"data.source": "imagenet"}), ["data.source = 'imagenet'", "mnist5k"]),
    ("misspelled_key", "repro", set_params(**{"latent.stesp": 30}), ["latent.stesp", "unknown key", "'steps'"]),
    ("latent_dim_0", "repro", set_params(**{"latent.dim": 0}), ["latent.dim = 0", "greater than 0"]),
    ("unbalanced_bracket", "both", append_text("base: {device: [cpu\n"), ["params.yaml", "not valid YAML", "line"]),
    ("missing_data_root", "both", set_params(**{"data.root": "inputs/nope"}), ["inputs/nope"]),
    (
        "empty_params_file",
        "check",
        empty_params,
        ["params.yaml", "`methods: []`", "data.root", "git checkout params.yaml"],
    ),
    ("exp_run_bad_value", "exp", ["-S", "latent.dim=0"], ["latent.dim = 0"]),
    # params beyond the table
    ("nan", "check", set_params(**{"latent.lr": float("nan")}), ["latent.lr = nan", "finite"]),
    ("infinity", "check", set_params(**{"matcher.lr": float("inf")}), ["matcher.lr = inf", "finite"]),
    ("huge_count", "check", set_params(**{"latent.steps": 10**30}), ["latent.steps", "64-bit"]),
    ("negative_seed", "check", set_params(**{"evaluate.seeds": [0, -1]}), ["evaluate.seeds.1 = -1"]),
    ("duplicate_yaml_key", "check", append_text("latent:\n  dim: 3\n"), ["params.yaml", "key 'latent' given twice"]),
    ("unknown_task", "check", set_params(task="inpainting"), ["task = 'inpainting'", "class_conditional"]),
    (
        "sr_factor_not_dividing",
        "check",
        with_folder(lambda root: folder(root, 40, flat=True), task="super_resolution", **{"sr.factor": 3}),
        ["sr.factor = 3", "data.image_size = 8"],
    ),
    (
        "n_samples_below_neighbours",
        "check",
        set_params(**{"evaluate.n_samples": 3}),
        ["evaluate.n_samples = 3", "dc_k = 5"],
    ),
    (
        "sample_accept_above_one",
        "check",
        set_params(**{"sample.accept": 1.5}),
        ["sample.accept = 1.5", "less than or equal to 1"],
    ),
    ("pseudo_alpha_one", "check", set_params(**{"pseudo.alpha": 1.0}), ["pseudo.alpha = 1.0", "less than 1"]),
    (
        "pseudo_refine_unknown",
        "check",
        set_params(**{"pseudo.refine": "kmeans"}),
        ["pseudo.refine = 'kmeans'", "gaussian"],
    ),
    ("evalnet_shift_half", "check", set_params(**{"evalnet.shift": 0.5}), ["evalnet.shift = 0.5", "less than 0.5"]),
    (
        "unknown_method",
        "check",
        set_params(methods=["pixel_wgan", "diffusion"]),
        ["methods = ['pixel_wgan', 'diffusion']", "allowed"],
    ),
    (
        "pixel_wgan_no_critic",
        "check",
        set_params(**{"pixel_wgan.n_critic": 0}),
        ["pixel_wgan.n_critic = 0", "greater than 0"],
    ),
    (
        "heun_odd_nfe",
        "check",
        set_params(**{"latent_flow.solver": "heun", "latent_flow.nfe": [2, 5]}),
        ["latent_flow.nfe = [2, 5]", "even"],
    ),
    (
        "pixel_wgan_pseudo_zero_steps",
        "check",
        set_params(**{"pixel_wgan_pseudo.steps": 0}),
        ["pixel_wgan_pseudo.steps = 0", "greater than 0"],
    ),
    (
        "latent_flow_pseudo_no_nfe",
        "check",
        set_params(**{"latent_flow_pseudo.nfe": []}),
        ["latent_flow_pseudo.nfe", "at least 1"],
    ),
    ("sweep_sets_a_swept_key", "check", set_params(**{"sweep.set": {"split.seed": 3}}), ["sweep.set", "split.seed"]),
    (
        "sweeps_variant_named_lsdm",
        "check",
        set_params(**{"sweeps": {"big": {"variants": {"lsdm": {}}}}}),
        ["sweeps.big.variants", "variant name 'lsdm'"],
    ),
    # the data beyond the table
    (
        "few_test_images",
        "check",
        set_params(**{"data.test_fraction": 0.02}),
        ["data.test_fraction = 0.02", "test images"],
    ),
    ("class_with_one_image", "check", with_folder(one_image_class), ["'owl'"]),
    (
        "empty_image_file",
        "check",
        in_pets(lambda p: p.write_bytes(b""), "cat/empty.png"),
        ["cat/empty.png", "on_corrupt"],
    ),
    (
        "truncated_png",
        "check",
        in_pets(lambda p: truncate(p.name)(p.parent), "owl/img2_000.png"),
        ["owl/img2_000.png", "cannot read image"],
    ),
    ("truncated_jpeg", "check", in_pets(half_jpeg, "cat/half.jpg"), ["cat/half.jpg", "truncated"]),
    ("text_named_png", "check", in_pets(lambda p: p.write_text("not an image"), "dog/notes.png"), ["dog/notes.png"]),
    ("decompression_bomb", "check", in_pets(bomb_png, "owl/bomb.png"), ["owl/bomb.png", "decompression bomb"]),
    ("float_pixels", "check", in_pets(float_tiff, "owl/float.tiff"), ["owl/float.tiff", "mode F"]),
    ("symlink_loop", "check", in_pets(lambda p: os.symlink("..", p), "cat/loop"), ["cat/loop", "loop"]),
    ("dangling_symlink", "check", in_pets(lambda p: os.symlink("gone.png", p), "dog/link.png"), ["dog/link.png"]),
    (
        "images_beside_class_folders",
        "check",
        in_pets(lambda root: folder(root, 2, flat=True)),
        ["top level", "class folders"],
    ),
    (
        "mnist_files_missing",
        "check",
        set_params(**{"data.source": "mnist", "data.root": "inputs"}),
        ["data.source", "missing train-images-idx3-ubyte", "inputs/MNIST/raw"],
    ),
    ("mnist_file_truncated", "check", mnist_truncated, ["train-images-idx3-ubyte", "truncated"]),
    # damaged tables, met by the stage that reads them
    (
        "parquet_float_labels",
        "stage:split",
        rewrite_table("data/prepared/images.parquet", lambda df: df.assign(label=df["label"] + 0.5)),
        ["data/prepared/images.parquet", "'label'", "int64"],
    ),
    (
        "parquet_duplicate_ids",
        "stage:fit_latent",
        rewrite_table("data/split/latent_pool.parquet", lambda df: pd.concat([df, df.head(2)])),
        ["data/split/latent_pool.parquet", "'id'", "duplicate"],
    ),
    (
        "parquet_missing_column",
        "stage:split",
        rewrite_table("data/prepared/images.parquet", lambda df: df.drop(columns="split")),
        ["data/prepared/images.parquet", "'split'"],
    ),
    (
        "parquet_truncated",
        "stage:split",
        truncate("data/prepared/images.parquet"),
        ["data/prepared/images.parquet", "Parquet"],
    ),
]


NEEDS_NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: base.device cuda is valid here")


@pytest.mark.parametrize(
    "how, damage, needles",
    [pytest.param(*c[1:], id=c[0], marks=NEEDS_NO_GPU if c[0] == "cuda_without_gpu" else ()) for c in CASES],
)
def test_bad_input_exits_2_names_the_culprit_and_writes_nothing(reproduced, tmp_path, how, damage, needles):
    repo = copy_repo(reproduced, tmp_path / "repo")
    if callable(damage):
        damage(repo)
    before = snapshot(repo)
    assert any(k.startswith("data/") for k in before) and "results/fit_latent/metrics.json" in before

    def named(text: str, culprit_only: bool = False) -> None:
        assert "Traceback" not in text, text
        for needle in needles[:1] if culprit_only else needles:
            assert needle in text, (needle, text)

    if how in ("check", "both"):
        p = run(["lsdm", "check"], repo, check=False)
        assert p.returncode == 2, p.stdout + p.stderr
        named(p.stderr)
    if how.startswith("stage:"):
        p = run(["lsdm", how.split(":")[1]], repo, check=False)
        assert p.returncode == 2, p.stdout + p.stderr
        named(p.stderr)
    if how in ("repro", "both", "exp"):
        cmd = ["dvc", "exp", "run", *damage] if how == "exp" else ["dvc", "repro"]
        p = run(cmd, repo, check=False)
        out = p.stdout + p.stderr
        assert p.returncode != 0, out
        if how != "both":  # `dvc repro` ran the check stage, which refused with lsdm's exit status
            assert "failed to reproduce 'check'" in out and "exited with 2" in out, out
            assert "Running stage 'prepare'" not in out
        named(out, culprit_only=how == "both")  # "both": DVC itself refuses, in its own words
    assert snapshot(repo) == before


def test_the_table_covers_every_section_and_culprit():
    """Every section of params.yaml has a bad value in the table; every way in (DVC, `dvc exp run`,
    `lsdm check`, a stage) is taken; and where a damage knows its culprit (the keys it sets, the file
    it breaks) the case's first needle names it: the one needle checked when DVC refuses first."""
    from lsdm.config import Params
    from lsdm.pipeline import STAGES

    assert len({c[0] for c in CASES}) == len(CASES)
    keys = {c[0]: [a.split("=")[0] for a in c[2][1::2]] if c[1] == "exp" else getattr(c[2], "keys", ()) for c in CASES}
    untouched = set(Params.model_fields) - {k.split(".")[0] for ks in keys.values() for k in ks}
    assert not untouched, f"no case sets a bad value in {sorted(untouched)}"
    assert {c[1].split(":")[0] for c in CASES} == {"repro", "both", "exp", "check", "stage"}
    assert {c[1].split(":")[1] for c in CASES if c[1].startswith("stage:")} <= set(STAGES)
    for name, how, damage, needles in CASES:
        culprits = keys[name] if how == "exp" else getattr(damage, "culprits", ())
        assert not culprits or any(c in needles[0] for c in culprits), (name, culprits, needles)


# --- odd but valid ------------------------------------------------------------------------------


def test_unicode_and_spaces_in_paths_work(reproduced, tmp_path):
    """A data.root with spaces and non-ASCII letters, class folders and files likewise: `lsdm check`
    passes, and DVC reruns check and prepare on it (the folder is a dependency of both)."""
    repo = copy_repo(reproduced, tmp_path / "repo")
    root = repo / "inputs/my photos ü"
    folder(root, 20, classes=("chat noir", "hund ü", "フクロウ"))
    (root / "chat noir/img0_000.png").rename(root / "chat noir/été 1.png")
    set_params(**{"data.root": "inputs/my photos ü"})(repo)
    assert "3 classes" in run(["lsdm", "check"], repo).stdout
    out = run(["dvc", "repro", "prepare"], repo).stdout
    assert "Running stage 'check'" in out and "Running stage 'prepare'" in out
    ids = set(pd.read_parquet(repo / "data/prepared/images.parquet")["id"])
    assert "chat noir/été 1.png" in ids and any(i.startswith("フクロウ/") for i in ids)


def test_rgba_16bit_and_numbered_class_folders_load_faithfully(tmp_path):
    """RGBA drops its alpha (as torchvision's ImageFolder does); 16-bit gray scales to 8 bits rather
    than clipping at 255; class folders named by numbers take their labels in numeric order."""
    from lsdm.config import DataParams
    from lsdm.data.sources import census, loader

    rng = np.random.default_rng(0)
    for k, name in enumerate(["0", "1", "2", "10"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8), 10 * k + i, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "1" / "rgba.png")
    deep = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(deep).save(tmp_path / "2" / "deep.png")  # mode I;16
    assert Image.open(tmp_path / "2" / "deep.png").mode == "I;16"

    params = DataParams(source="image_folder", root=str(tmp_path), image_size=8, channels=3)
    raw = loader("image_folder")(params)
    assert raw.class_names == ["0", "1", "2", "10"]
    label = dict(zip(raw.ids, raw.labels.tolist()))
    assert label["10/0.png"] == 3 and label["2/0.png"] == 2 and label["0/0.png"] == 0
    pixels = dict(zip(raw.ids, raw.images))
    assert (pixels["1/rgba.png"] == rgba[..., :3]).all()
    gray = pixels["2/deep.png"][..., 0].astype(int)
    assert np.abs(gray - np.round(deep / 257)).max() <= 1 and gray.max() > 200  # not clipped to a white image
    assert census("image_folder")(params).ids == raw.ids  # the census lists what the loader reads

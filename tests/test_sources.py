"""Users' own data: image folders (class folders or flat, RGB or grayscale, with corrupt files)
and torchvision's MNIST files, all read locally and mapped onto the same IMAGES table."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lsdm.config import DataParams
from lsdm.data.schemas import IMAGES, UNLABELLED
from lsdm.data.sources import SOURCES, loader
from lsdm.data.tables import conform, images_table
from lsdm.errors import DataError
from lsdm.evaluation.registry import read_results


def write_image_folder(
    root: Path,
    n_per_class: int = 6,
    classes=("cat", "dog"),
    size=(20, 16),
    mode="RGB",
    nested: bool = True,
    corrupt: bool = False,
    flat: bool = False,
    seed: int = 0,
) -> Path:
    """Small images on disk: class folders (optionally with a nested subfolder) or a flat folder."""
    rng = np.random.default_rng(seed)
    for k, c in enumerate([None] if flat else classes):
        folder = root if flat else root / c
        for i in range(n_per_class):
            sub = folder / "more" if nested and not flat and i % 2 else folder
            sub.mkdir(parents=True, exist_ok=True)
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            arr = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(arr, mode=mode).save(sub / f"img{k}_{i:03d}.png")
    if corrupt:
        target = root if flat else root / classes[0]
        (target / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def folder_params(root: Path, **kw) -> DataParams:
    return DataParams(source="image_folder", root=str(root), **kw)


def test_class_folders_give_labels_and_nested_files(tmp_path):
    root = write_image_folder(tmp_path / "imgs", nested=True)
    raw = loader("image_folder")(folder_params(root, image_size=8, channels=3))
    assert raw.images.shape == (12, 8, 8, 3)
    assert sorted(set(raw.labels.tolist())) == [0, 1]
    assert any("/more/" in i for i in raw.ids)  # files in nested folders belong to their class
    IMAGES.validate(images_table(raw, 0.25, seed=0))


def test_flat_folder_is_unlabelled_and_grayscale_converts(tmp_path):
    root = write_image_folder(tmp_path / "faces", n_per_class=10, flat=True, mode="RGB")
    raw = loader("image_folder")(folder_params(root, image_size=8, channels=1))
    assert raw.images.shape == (10, 8, 8, 1) and (raw.labels == UNLABELLED).all()
    gray = write_image_folder(tmp_path / "gray", flat=True, mode="L", n_per_class=4)
    assert loader("image_folder")(folder_params(gray, image_size=8, channels=3)).images.shape == (4, 8, 8, 3)


def test_corrupt_file_named_or_skipped(tmp_path):
    root = write_image_folder(tmp_path / "imgs", corrupt=True)
    with pytest.raises(DataError, match=r"broken\.png.*on_corrupt"):
        loader("image_folder")(folder_params(root, image_size=8))
    raw = loader("image_folder")(folder_params(root, image_size=8, on_corrupt="skip"))
    assert raw.skipped == ["cat/broken.png"] and len(raw.ids) == 12


@pytest.mark.parametrize("flat", [False, True])
def test_hidden_files_and_folders_are_ignored(tmp_path, flat):
    """macOS's `._name.png` resource forks (not images) and dot-folders are skipped, not refused, by the
    up-front check and the loader alike."""
    from lsdm.data.sources.image_folder import census

    root = write_image_folder(tmp_path / "imgs", n_per_class=4, flat=flat)
    for folder in [root] if flat else [root / "cat", root / "dog" / "more"]:
        (folder / "._img0_000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not a png")
        (folder / ".thumbs").mkdir(parents=True)
        (folder / ".thumbs" / "x.png").write_bytes(b"not a png either")
    params = folder_params(root, image_size=8)
    raw = loader("image_folder")(params)
    assert len(raw.ids) == (4 if flat else 8) and not any("/." in f"/{i}" for i in raw.ids)
    assert census(params).ids == raw.ids and not census(params).skipped


def test_stray_subfolders_do_not_turn_a_flat_folder_into_classes(tmp_path):
    root = write_image_folder(tmp_path / "faces", n_per_class=6, flat=True)
    (root / "thumbnails").mkdir()  # a subfolder without images: ignored, the folder stays flat
    raw = loader("image_folder")(folder_params(root, image_size=8))
    assert len(raw.ids) == 6 and (raw.labels == UNLABELLED).all()
    write_image_folder(root / "extra", n_per_class=2, flat=True)  # images at the top and in a subfolder
    with pytest.raises(DataError, match=r"6 images at its top level and class folders \['extra'\]"):
        loader("image_folder")(folder_params(root, image_size=8))


def test_missing_or_empty_root_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        loader("image_folder")(folder_params(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        loader("image_folder")(folder_params(tmp_path / "empty"))


def test_hash_split_is_stable_when_files_are_added(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_per_class=30, nested=False)
    before = images_table(loader("image_folder")(folder_params(root, image_size=8)), 0.2, seed=0)
    write_image_folder(root, n_per_class=45, nested=False, seed=1)  # 15 new files per class (+ rewrites)
    after = images_table(loader("image_folder")(folder_params(root, image_size=8)), 0.2, seed=0)
    assert len(after) == 90
    old = before.set_index("id")["split"]
    assert (after.set_index("id").loc[old.index, "split"] == old).all()
    assert 0.05 < (after["split"] == "test").mean() < 0.4


def write_idx(raw: Path, prefix: str, n: int, rng) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


@pytest.mark.parametrize("source, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_files_read_locally_with_official_split(tmp_path, source, folder):
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match=r"missing train-images-idx3-ubyte.*nothing is downloaded"):
        loader(source)(DataParams(source=source, root=str(tmp_path)))
    write_idx(tmp_path / folder / "raw", "train", 40, rng)
    write_idx(tmp_path / folder / "raw", "t10k", 10, rng)
    raw = loader(source)(DataParams(source=source, root=str(tmp_path)))
    table = IMAGES.validate(images_table(raw, 0.5, seed=0))
    assert table["split"].value_counts().to_dict() == {"train": 40, "test": 10}


def test_conform_resizes_and_converts_channels():
    x = np.full((2, 28, 28, 1), 200, dtype=np.uint8)
    y = conform(x, 14, 3)
    assert y.shape == (2, 14, 14, 3) and y.dtype == np.uint8 and (y == 200).all()
    assert conform(x, 28, 1) is x


def mnist_files(tmp_path: Path, folder: str) -> Path:
    rng = np.random.default_rng(0)
    write_idx(tmp_path / folder / "raw", "train", 40, rng)
    write_idx(tmp_path / folder / "raw", "t10k", 10, rng)
    return tmp_path


# How to make small local data for each registered source: a new source adds one line here.
SOURCE_FIXTURES = {
    "mnist5k": lambda tmp: DataParams(source="mnist5k"),
    "mnist": lambda tmp: DataParams(source="mnist", root=str(mnist_files(tmp, "MNIST"))),
    "fashion_mnist": lambda tmp: DataParams(source="fashion_mnist", root=str(mnist_files(tmp, "FashionMNIST"))),
    "image_folder": lambda tmp: folder_params(write_image_folder(tmp / "imgs"), image_size=8),
}


def test_every_source_has_a_fixture():
    assert set(SOURCE_FIXTURES) == set(SOURCES)


@pytest.mark.parametrize("name", sorted(SOURCE_FIXTURES))
def test_every_source_returns_valid_images(name, tmp_path):
    params = SOURCE_FIXTURES[name](tmp_path)
    raw = loader(name)(params)
    table = IMAGES.validate(images_table(raw, 0.2, seed=0, limit=50))
    assert set(table["split"]) == {"train", "test"}


@pytest.mark.slow
def test_image_folder_repro_class_conditional(tmp_path):
    """RGB class folders (nested, one corrupt file skipped) through the whole real pipeline."""
    from support.processes import run
    from support.repos import make_repo, tiny_params

    params = tiny_params(
        data={"source": "image_folder", "root": "inputs/pets", "image_size": 16, "channels": 3, "on_corrupt": "skip"},
        latent={"channels": [8, 16]},
    )
    repo = make_repo(tmp_path / "repo", params)
    write_image_folder(repo / "inputs/pets", n_per_class=40, classes=("cat", "dog", "owl"), corrupt=True)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "images"], repo)
    out = run(["dvc", "repro"], repo).stdout
    assert "1 unreadable files skipped" in out
    import json

    assert json.loads((repo / "results/prepare/metrics.json").read_text())["prepare"] == {
        "n_images": 120,
        "n_skipped": 1,
    }
    assert "1 unreadable image files were skipped" in (repo / "reports/report.md").read_text()
    metrics = read_results(repo / "results/evaluate")["eval"]
    assert set(metrics["label_accuracy_per_class"]) == {"0", "1", "2"}
    assert json.loads((repo / "results/eval_net/metrics.json").read_text())["evalnet"]["target"] == "labels"
    # adding images reruns prepare (the folder is a dependency); the old images keep their split
    write_image_folder(repo / "inputs/pets" / "cat", n_per_class=3, classes=("new",), seed=5)
    assert "Running stage 'prepare'" in run(["dvc", "repro", "prepare"], repo).stdout


@pytest.mark.slow
def test_flat_folder_super_resolution_repro_and_caching(tmp_path):
    """A flat grayscale folder (no classes) with the SR task: the tiny real pipeline, then a new
    paired subset (`split.n_paired`) reruns the paired stages only — never fit_latent or encode."""
    import json

    import yaml
    from support.processes import run
    from support.repos import PAIRED_STAGES, SHARED_STAGES, make_repo, ran_and_skipped, tiny_params

    params = tiny_params(
        task="super_resolution",
        data={"source": "image_folder", "root": "inputs/faces", "image_size": 16, "channels": 1, "on_corrupt": "skip"},
        split={"n_paired": 30},
        sr={"factor": 4, "back_projection": 2},
        latent={"channels": [8, 16]},
    )
    repo = make_repo(tmp_path / "repo", params)
    write_image_folder(repo / "inputs/faces", n_per_class=150, flat=True, mode="L", size=(18, 18), corrupt=True)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "images"], repo)
    out = run(["dvc", "repro"], repo).stdout
    assert "1 unreadable files skipped" in out
    ev = read_results(repo / "results/evaluate")["eval"]
    for key in ("psnr", "ssim", "consistency_psnr", "fid_evalnet"):
        assert isinstance(ev[key], float), key
        assert isinstance(ev["references"]["bicubic"][key], float), f"bicubic.{key}"
    assert json.loads((repo / "results/eval_net/metrics.json").read_text())["evalnet"]["target"] == "rotation"
    assert "bicubic" in (repo / "reports/report.md").read_text()

    pool = (repo / "data/split/latent_pool.parquet").read_bytes()
    params["split"]["n_paired"] = 20
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran, skipped = ran_and_skipped(out := run(["dvc", "repro"], repo).stdout)
    assert ran == PAIRED_STAGES and skipped == SHARED_STAGES, out
    assert (repo / "data/split/latent_pool.parquet").read_bytes() == pool


def test_class_conditional_on_a_flat_folder_fails_at_prepare(tmp_path, monkeypatch):
    """The first stage says what is wrong and what to do (it used to fail five stages later on int(NaN))."""
    from support.processes import run

    root = write_image_folder(tmp_path / "inputs/faces", n_per_class=12, flat=True)
    (tmp_path / "params.yaml").write_text(f"data: {{source: image_folder, root: {root}, image_size: 8}}\n")
    out = run(["lsdm", "prepare"], tmp_path, check=False)
    assert out.returncode == 2 and "task: class_conditional needs class labels" in out.stderr, out.stderr
    assert "task: super_resolution" in out.stderr and not (tmp_path / "data/prepared/images.parquet").exists()

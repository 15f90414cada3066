"""CIFAR-10 data: the tensor augmentation against torchvision, the loaders, the DataModule, synthetic files."""

from __future__ import annotations

import itertools
import math
import pickle
import urllib.error
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torchvision import transforms
from torchvision.datasets import CIFAR10

from nbm_lightning.core.errors import UserError
from nbm_lightning.synthetic.cifar10 import CIFAR10_CLASSES, TEST_FILES, TRAIN_FILES, write_cifar10
from nbm_lightning.training.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CROP_PADDING,
    CROP_SIZE,
    augment,
    epoch_generator,
    normalize,
    sample_augment_params,
)
from nbm_lightning.training.cifar10_files import SKIP_MD5_ENV, DataMissingError
from nbm_lightning.training.datamodule import CIFAR10DataModule
from nbm_lightning.training.tensor_loader import TensorLoader
from nbm_lightning.training.torchvision_pipeline import EpochSampler, SeededDataset, train_transform

N_TRAIN, N_TEST = 50, 20  # the tiny dataset of the DataModule tests
SPAN = 2 * CROP_PADDING + 1  # offsets per axis: 0..8


@pytest.fixture(autouse=True)
def skip_md5(monkeypatch):
    """Synthetic files fail torchvision's md5 check: accept them on presence."""
    monkeypatch.setenv(SKIP_MD5_ENV, "1")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A tiny synthetic CIFAR-10 (50 train, 20 test images) in torchvision's format."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train=N_TRAIN, n_test=N_TEST, seed=1)
    return root


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    """n random uint8 images [n, 3, 32, 32]."""
    return torch.randint(
        0, 256, (n, 3, CROP_SIZE, CROP_SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def to_pil(image: torch.Tensor) -> Image.Image:
    """uint8 [3, H, W] -> PIL RGB image, as torchvision's CIFAR10 hands it to transforms."""
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def torchvision_reference(image: torch.Tensor, top: int, left: int, flip: bool) -> torch.Tensor:
    """The published transform with pinned parameters, one image, by torchvision.transforms.functional."""
    out = TF.crop(TF.pad(to_pil(image), CROP_PADDING, fill=0), top, left, CROP_SIZE, CROP_SIZE)
    out = TF.hflip(out) if flip else out
    return TF.normalize(TF.to_tensor(out), CIFAR10_MEAN, CIFAR10_STD)


def every_offset_and_flip() -> tuple[torch.Tensor, torch.Tensor]:
    """All (y, x, flip) combinations: offsets [162, 2], flips [162]."""
    combos = list(itertools.product(range(SPAN), range(SPAN), (False, True)))
    return torch.tensor([c[:2] for c in combos]), torch.tensor([c[2] for c in combos])


def collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    """All batches of one pass, concatenated."""
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def batch_sizes(loader) -> list[int]:
    """Sizes of the batches of one pass."""
    return [len(y) for _, y in loader]


def dataset_images(root: Path, train: bool, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 3, 32, 32] images and labels of `indices`, read by plain torchvision code."""
    dataset = type("Unchecked", (CIFAR10,), {"_check_integrity": lambda self: True, "_load_meta": lambda self: None})
    data = dataset(str(root), train=train)
    images = torch.from_numpy(data.data[list(indices)]).permute(0, 3, 1, 2)
    return images, torch.tensor(data.targets)[list(indices)]


# ---------------------------------------------------------------------------------------------------------------
# augment == torchvision
# ---------------------------------------------------------------------------------------------------------------


def test_augment_matches_torchvision_for_every_offset_and_flip():
    offsets, flips = every_offset_and_flip()
    images = random_images(len(flips))
    got = augment(images, offsets, flips, CIFAR10_MEAN, CIFAR10_STD)
    want = torch.stack(
        [torchvision_reference(img, int(o[0]), int(o[1]), bool(f)) for img, o, f in zip(images, offsets, flips)]
    )
    assert got.dtype == torch.float32 and got.shape == images.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_augment_matches_the_published_transform_objects(monkeypatch):
    transform = train_transform()
    images = random_images(6, seed=1)
    for image, (top, left, flip) in zip(
        images, [(0, 0, False), (8, 8, True), (4, 4, True), (0, 8, False), (8, 0, True), (3, 5, False)]
    ):
        monkeypatch.setattr(
            transforms.RandomCrop, "get_params", staticmethod(lambda img, size, t=top, x=left: (t, x, *size))
        )
        transform.transforms[1].p = 1.0 if flip else 0.0
        got = augment(image[None], torch.tensor([[top, left]]), torch.tensor([flip]), CIFAR10_MEAN, CIFAR10_STD)[0]
        torch.testing.assert_close(got, transform(to_pil(image)), atol=1e-6, rtol=0)


def test_normalize_matches_to_tensor_and_normalize():
    images = random_images(4, seed=2)
    want = torch.stack([TF.normalize(TF.to_tensor(to_pil(img)), CIFAR10_MEAN, CIFAR10_STD) for img in images])
    torch.testing.assert_close(normalize(images, CIFAR10_MEAN, CIFAR10_STD), want, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Distribution of the augmentation parameters
# ---------------------------------------------------------------------------------------------------------------


def assert_counts_near(counts: torch.Tensor, n: int, p: float, sigmas: float = 5.0):
    """Every count within `sigmas` binomial standard deviations of n * p."""
    deviation = (counts.double() - n * p).abs().max().item()
    assert deviation <= sigmas * math.sqrt(n * p * (1 - p)), (counts.tolist(), n * p)


def test_augment_params_are_uniform_independent_and_fair():
    n = 200_000
    offsets, flips = sample_augment_params(n, torch.Generator().manual_seed(0), "cpu")
    assert offsets.shape == (n, 2) and flips.shape == (n,) and flips.dtype == torch.bool
    assert offsets.min() == 0 and offsets.max() == SPAN - 1
    for axis in range(2):
        assert_counts_near(torch.bincount(offsets[:, axis], minlength=SPAN), n, 1 / SPAN)
    assert_counts_near(torch.bincount(offsets[:, 0] * SPAN + offsets[:, 1], minlength=SPAN**2), n, 1 / SPAN**2)
    assert_counts_near(torch.bincount(flips.long(), minlength=2), n, 0.5)


def test_torchvision_draws_the_same_offset_range_and_flip_probability():
    padded = torch.zeros(3, CROP_SIZE + 2 * CROP_PADDING, CROP_SIZE + 2 * CROP_PADDING)
    torch.manual_seed(0)
    draws = [transforms.RandomCrop.get_params(padded, (CROP_SIZE, CROP_SIZE)) for _ in range(2000)]
    assert {d[2:] for d in draws} == {(CROP_SIZE, CROP_SIZE)}
    assert {d[0] for d in draws} == {d[1] for d in draws} == set(range(SPAN))
    crop, flip = train_transform().transforms[:2]
    assert (crop.size, crop.padding, crop.fill, crop.padding_mode) == (
        (CROP_SIZE, CROP_SIZE),
        CROP_PADDING,
        0,
        "constant",
    )
    assert flip.p == 0.5


# ---------------------------------------------------------------------------------------------------------------
# TensorLoader
# ---------------------------------------------------------------------------------------------------------------


def make_loader(n: int = 10, batch_size: int = 4, train: bool = True, seed: int = 0, epoch_fn=None) -> TensorLoader:
    """A loader over n random images whose labels are their indices."""
    return TensorLoader(random_images(n), torch.arange(n), batch_size, train=train, seed=seed, epoch_fn=epoch_fn)


def test_train_epochs_are_permutations_with_last_partial_batch_kept():
    loader = make_loader()
    assert len(loader) == 3
    orders = []
    for _ in range(4):
        assert batch_sizes(loader) == [4, 4, 2]
        _, y = collect(loader)
        assert sorted(y.tolist()) == list(range(10)) and y.dtype == torch.int64
        orders.append(tuple(y.tolist()))
    assert len(set(orders)) == 4


def test_train_batches_are_augmented_draws_from_the_seed_and_epoch_stream():
    loader = make_loader(seed=7, epoch_fn=lambda: 3)
    generator = epoch_generator(7, 3, "cpu")
    order = torch.randperm(10, generator=generator)
    offsets, flips = sample_augment_params(10, generator, "cpu")
    x, y = collect(loader)
    assert torch.equal(y, order)
    torch.testing.assert_close(
        x, augment(loader.images[order], offsets, flips, CIFAR10_MEAN, CIFAR10_STD), atol=0, rtol=0
    )


def test_same_seed_and_epoch_give_identical_batches_so_resume_is_exact():
    uninterrupted = make_loader(seed=3)
    epochs = [collect(uninterrupted) for _ in range(3)]
    resumed = collect(make_loader(seed=3, epoch_fn=lambda: 2))
    assert torch.equal(resumed[0], epochs[2][0]) and torch.equal(resumed[1], epochs[2][1])
    other_seed = collect(make_loader(seed=4, epoch_fn=lambda: 2))
    assert not torch.equal(other_seed[0], epochs[2][0])


def test_eval_loader_keeps_order_and_only_normalizes():
    loader = make_loader(n=10, batch_size=4, train=False)
    for _ in range(2):
        assert batch_sizes(loader) == [4, 4, 2]
        x, y = collect(loader)
        assert torch.equal(y, torch.arange(10))
        torch.testing.assert_close(x, normalize(loader.images, CIFAR10_MEAN, CIFAR10_STD), atol=0, rtol=0)


def test_loader_rejects_bad_images():
    with pytest.raises(ValueError, match="uint8"):
        TensorLoader(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), 1, train=True)
    with pytest.raises(ValueError, match="labels"):
        TensorLoader(random_images(2), torch.zeros(3, dtype=torch.long), 1, train=True)


# ---------------------------------------------------------------------------------------------------------------
# CIFAR10DataModule
# ---------------------------------------------------------------------------------------------------------------


def make_module(root: Path, **kwargs) -> CIFAR10DataModule:
    """A set-up DataModule over `root`, no download."""
    module = CIFAR10DataModule(str(root), download=False, **{"batch_size": 16, "eval_batch_size": 8, **kwargs})
    module.prepare_data()
    module.setup()
    return module


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_datamodule_shapes_counts_and_published_eval_split(tiny_root, pipeline):
    module = make_module(tiny_root, pipeline=pipeline)
    assert module.num_classes == 10 and module.eval_split == "test" and module.val_indices is None
    x, y = next(iter(module.train_dataloader()))
    assert (x.shape, x.dtype, y.dtype) == ((16, 3, 32, 32), torch.float32, torch.int64)
    assert batch_sizes(module.train_dataloader()) == [16, 16, 16, 2]
    assert batch_sizes(module.val_dataloader()) == batch_sizes(module.test_dataloader()) == [8, 8, 4]
    _, train_labels = dataset_images(tiny_root, True, range(N_TRAIN))
    assert sorted(collect(module.train_dataloader())[1].tolist()) == sorted(train_labels.tolist())


def test_both_pipelines_evaluate_identically(tiny_root):
    tensor, vision = (collect(make_module(tiny_root, pipeline=p).test_dataloader()) for p in ("tensor", "torchvision"))
    images, labels = dataset_images(tiny_root, False, range(N_TEST))
    torch.testing.assert_close(tensor[0], vision[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(tensor[0], normalize(images, CIFAR10_MEAN, CIFAR10_STD), atol=0, rtol=0)
    assert torch.equal(tensor[1], labels) and torch.equal(vision[1], labels)


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_limits_take_the_first_images(tiny_root, pipeline):
    module = make_module(tiny_root, pipeline=pipeline, train_limit=7, eval_limit=5)
    _, train_labels = dataset_images(tiny_root, True, range(7))
    assert sorted(collect(module.train_dataloader())[1].tolist()) == sorted(train_labels.tolist())
    images, labels = dataset_images(tiny_root, False, range(5))
    for loader in (module.val_dataloader(), module.test_dataloader()):
        x, y = collect(loader)
        assert torch.equal(y, labels)
        torch.testing.assert_close(x, normalize(images, CIFAR10_MEAN, CIFAR10_STD), atol=1e-6, rtol=0)


@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_val_split_is_seeded_disjoint_and_evaluated_per_epoch(tiny_root, pipeline):
    module = make_module(tiny_root, pipeline=pipeline, val_size=10, split_seed=5)
    val, train = module.val_indices, module.train_indices
    assert module.eval_split == "val" and len(val) == 10 and val == sorted(val) and train == sorted(train)
    assert set(val).isdisjoint(train) and sorted(val + train) == list(range(N_TRAIN))
    assert make_module(tiny_root, val_size=10, split_seed=5).val_indices == val
    assert make_module(tiny_root, val_size=10, split_seed=6).val_indices != val
    images, labels = dataset_images(tiny_root, True, val)
    x, y = collect(module.val_dataloader())
    assert torch.equal(y, labels)
    torch.testing.assert_close(x, normalize(images, CIFAR10_MEAN, CIFAR10_STD), atol=1e-6, rtol=0)
    assert len(collect(module.train_dataloader())[1]) == N_TRAIN - 10
    assert len(collect(module.test_dataloader())[1]) == N_TEST


def test_num_classes_comes_from_the_dataset(tmp_path):
    write_cifar10(tmp_path, n_train=6, n_test=3, num_classes=3)
    module = CIFAR10DataModule(str(tmp_path), download=False)
    with pytest.raises(RuntimeError, match="setup"):
        _ = module.num_classes
    module.setup()
    assert module.num_classes == 3


def test_val_size_must_leave_training_images(tiny_root):
    with pytest.raises(ValueError, match=f"val_size.*{N_TRAIN}"):
        make_module(tiny_root, val_size=N_TRAIN)


def test_torchvision_loader_settings(tiny_root):
    module = make_module(tiny_root, pipeline="torchvision", num_workers=2, seed=3)
    loader = module.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers and not loader.drop_last
    assert loader.pin_memory == torch.cuda.is_available()
    assert isinstance(loader.sampler, EpochSampler) and loader.sampler.seed == 3  # order seeded by (seed, epoch)
    assert isinstance(module.val_dataloader().sampler, torch.utils.data.SequentialSampler)


def test_torchvision_augmentation_is_a_function_of_seed_epoch_and_image(tiny_root):
    """Any worker, any order: image i of epoch e is augmented the same way; another epoch or seed, another way."""
    data = make_module(tiny_root, pipeline="torchvision", seed=3)._loaded["train"]
    first, again = data[(1, 5)][0], data[(1, 5)][0]
    torch.manual_seed(123)  # the global stream does not matter
    assert torch.equal(first, again) and torch.equal(first, data[(1, 5)][0])
    others = [data[(2, 5)][0], SeededDataset(data.base, data.indices, data.transform, 4)[(1, 5)][0]]
    assert not any(torch.equal(first, other) for other in others)


class EpochRecorder(pl.LightningModule):
    """A minimal model that records every training batch, per epoch."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 10)
        self.seen: dict[int, list[torch.Tensor]] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.setdefault(self.current_epoch, []).append(torch.cat([x.flatten(1), y[:, None].float()], 1))
        return F.cross_entropy(self.layer(x.mean((2, 3))), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class ValidatingRecorder(EpochRecorder):
    """EpochRecorder with a validation loop: checkpoints are then saved at validation end, not train epoch end."""

    def validation_step(self, batch, batch_idx):
        pass


def fit(
    root: Path, ckpt_dir: Path, validate: bool, ckpt_path: str | None = None, pipeline: str = "tensor", steps: int = 0
) -> EpochRecorder:
    """Train 3 epochs on the tiny set, a checkpoint per epoch (or every `steps` training steps: mid-epoch ones)."""
    model = ValidatingRecorder() if validate else EpochRecorder()
    every = {"every_n_train_steps": steps} if steps else {"every_n_epochs": 1}
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1, **every)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[checkpoints],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if validate else 0,
    )
    dm = CIFAR10DataModule(str(root), batch_size=16, download=False, seed=4, pipeline=pipeline, num_workers=0)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return model


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no `validation_step`")
@pytest.mark.filterwarnings("ignore:The dirpath has changed")
@pytest.mark.parametrize("validate", [False, True])
def test_resuming_a_trainer_reproduces_the_uninterrupted_batches(tiny_root, tmp_path, validate):
    full = fit(tiny_root, tmp_path / "full", validate)
    assert not torch.equal(torch.cat(full.seen[0]), torch.cat(full.seen[1]))
    first_epoch_ckpt = sorted((tmp_path / "full").glob("epoch=0-*.ckpt"))[0]
    resumed = fit(tiny_root, tmp_path / "resumed", validate, ckpt_path=str(first_epoch_ckpt))
    assert sorted(resumed.seen) == [1, 2]
    for epoch in (1, 2):
        assert torch.equal(torch.cat(resumed.seen[epoch]), torch.cat(full.seen[epoch]))


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
@pytest.mark.parametrize("pipeline", ["tensor", "torchvision"])
def test_resuming_mid_epoch_continues_with_the_next_batch(tiny_root, tmp_path, pipeline):
    """50 images in batches of 16 = 4 steps an epoch; a checkpoint after step 6 is in the middle of epoch 2."""
    full = fit(tiny_root, tmp_path / "full", False, pipeline=pipeline, steps=6)
    mid_epoch = next((tmp_path / "full").glob("epoch=1-step=6.ckpt"))
    resumed = fit(tiny_root, tmp_path / "resumed", False, ckpt_path=str(mid_epoch), pipeline=pipeline, steps=6)
    assert len(resumed.seen[1]) == 2 and sorted(resumed.seen) == [1, 2]  # the 2 batches not yet trained
    assert torch.equal(torch.cat(resumed.seen[1]), torch.cat(full.seen[1][2:]))
    assert torch.equal(torch.cat(resumed.seen[2]), torch.cat(full.seen[2]))


# ---------------------------------------------------------------------------------------------------------------
# Missing data and bad arguments
# ---------------------------------------------------------------------------------------------------------------


def assert_one_line_naming(err: pytest.ExceptionInfo, folder: Path, *words: str):
    """A single-line UserError message that names `folder` and each of `words`."""
    message = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in message
    assert str(folder / "cifar-10-batches-py") in message
    for word in words:
        assert word in message


def test_missing_data_without_download_is_a_one_line_user_error(tmp_path):
    module = CIFAR10DataModule(str(tmp_path), download=False)
    for step in (module.prepare_data, module.setup):
        with pytest.raises(DataMissingError) as err:
            step()
        assert_one_line_naming(err, tmp_path, "--download=true", "data_batch_1")


def test_partial_data_names_the_missing_files(tmp_path):
    folder = write_cifar10(tmp_path, n_train=5, n_test=2)
    (folder / "test_batch").unlink()
    with pytest.raises(DataMissingError) as err:
        CIFAR10DataModule(str(tmp_path), download=False).prepare_data()
    assert_one_line_naming(err, tmp_path, "test_batch")
    assert "data_batch_1" not in str(err.value)


def test_md5_mismatch_without_skip_is_a_one_line_user_error(tiny_root, monkeypatch):
    monkeypatch.delenv(SKIP_MD5_ENV)
    module = CIFAR10DataModule(str(tiny_root), download=False)
    module.prepare_data()  # presence only
    with pytest.raises(DataMissingError) as err:
        module.setup()
    assert_one_line_naming(err, tiny_root, "md5", f"{SKIP_MD5_ENV}=1")


def test_failed_download_is_a_one_line_user_error(tmp_path, monkeypatch):
    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(DataMissingError) as err:
        CIFAR10DataModule(str(tmp_path), download=True).prepare_data()
    assert_one_line_naming(err, tmp_path, "no network")


def test_download_is_skipped_when_the_files_are_there(tiny_root, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", no_download)
    with pytest.raises(AssertionError, match="download was attempted"):  # the guard works (md5 fails: a download)
        tv_cifar.CIFAR10(str(tiny_root), train=False, download=True)
    CIFAR10DataModule(str(tiny_root), download=True).prepare_data()  # files present: no download


@pytest.mark.parametrize(
    "name, value",
    [
        ("pipeline", "dali"),
        ("batch_size", 0),
        ("eval_batch_size", -1),
        ("val_size", 50000),
        ("val_size", -1),
        ("split_seed", 1.5),
        ("download", "yes"),
        ("train_limit", -1),
        ("eval_limit", True),
        ("num_workers", -2),
        ("seed", -1),
        ("device", "gpu0"),
        ("data_dir", ""),
    ],
)
def test_bad_constructor_arguments_name_the_value(name, value):
    with pytest.raises(ValueError) as err:
        CIFAR10DataModule(**{name: value})
    message = str(err.value)
    assert name in message and repr(value) in message and "\n" not in message


# ---------------------------------------------------------------------------------------------------------------
# Synthetic CIFAR-10
# ---------------------------------------------------------------------------------------------------------------


def load_pickle(path: Path) -> dict:
    """A CIFAR-10 batch file, read as torchvision reads it."""
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="latin1")


def test_synthetic_files_have_torchvisions_format(tmp_path):
    folder = write_cifar10(tmp_path, n_train=12, n_test=4)
    assert folder == tmp_path / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(TRAIN_FILES + TEST_FILES + ("batches.meta",))
    batches = [load_pickle(folder / name) for name in TRAIN_FILES + TEST_FILES]
    assert [len(b["labels"]) for b in batches] == [3, 3, 2, 2, 2, 4]
    for batch in batches:
        assert set(batch) == {"data", "labels"} and batch["data"].dtype.name == "uint8"
        assert batch["data"].shape == (len(batch["labels"]), 3 * 32 * 32)
        assert all(type(label) is int and 0 <= label < 10 for label in batch["labels"])
    assert load_pickle(folder / "batches.meta") == {"label_names": list(CIFAR10_CLASSES)}


def test_synthetic_with_fewer_than_five_train_images(tmp_path):
    folder = write_cifar10(tmp_path, n_train=3, n_test=1)
    assert [len(load_pickle(folder / name)["labels"]) for name in TRAIN_FILES] == [1, 1, 1, 0, 0]
    module = make_module(tmp_path)
    assert batch_sizes(module.train_dataloader()) == [3] and batch_sizes(module.test_dataloader()) == [1]


def test_synthetic_is_deterministic_and_seeded(tmp_path):
    first, again, other = (write_cifar10(tmp_path / name, 6, 2, seed=s) for name, s in (("a", 0), ("b", 0), ("c", 1)))
    files = TRAIN_FILES + TEST_FILES + ("batches.meta",)
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert (first / "data_batch_1").read_bytes() != (other / "data_batch_1").read_bytes()


def test_synthetic_rejects_bad_arguments(tmp_path):
    for kwargs in ({"n_train": -1}, {"n_test": 1.5}, {"num_classes": 0}, {"seed": -1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            write_cifar10(tmp_path, **kwargs)


def test_learnable_synthetic_data_is_learned_well_above_chance(tmp_path):
    write_cifar10(tmp_path, n_train=512, n_test=256, learnable=True, seed=2)
    module = make_module(tmp_path, batch_size=64, eval_batch_size=256)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(4):
        for x, y in module.train_dataloader():
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
    with torch.no_grad():
        x, y = collect(module.val_dataloader())
        accuracy = (net(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.6  # chance is 0.1

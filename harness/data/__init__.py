"""Datasets for the harness: TFDS or sha256-checked offline mirrors, deterministic subsets, preprocessing.

    from harness import data
    train = data.load("cifar10", split="train", size=1000, seed=0, pool=4000, balanced=True)
    test = data.load("cifar10", split="test", pool=1000)            # official test images 0..999
    tr, te = data.preprocess(train, test, zca_reg=0.1, targets="centered_onehot", dtype="float64")
    record_entry = data.describe(train)
    for images, labels in data.stream("cifar10_jpeg", "train", 64, num_examples=6400):   # online: each once
      ...

Dataset ids: cifar10 (TFDS), cifar10_jpeg (mirror only), cifar5m (the TFDS builder in cifar5m.py).
Mirrors: `HARNESS_MIRRORS` / `--mirrors` = 'id=folder,...' (mirrors.py). Every failure a user can fix is a
`DataError` with a one-line message.
"""
from harness.data.catalog import DATASETS, DatasetSpec
from harness.data.errors import DataError
from harness.data.loader import load
from harness.data.mirrors import ENV_VAR as MIRRORS_ENV_VAR, Mirror, parse_mirrors, resolve_mirrors
from harness.data.preprocess import Arrays, average_pool, normalize_images, preprocess, targets_from_labels, zca_matrix
from harness.data.split import Split, describe
from harness.data.streaming import Stream, stream
from harness.data.subsets import choose, splitmix64

__all__ = [
    "DATASETS", "DatasetSpec", "DataError", "load", "MIRRORS_ENV_VAR", "Mirror", "parse_mirrors",
    "resolve_mirrors", "Arrays", "average_pool", "normalize_images", "preprocess", "targets_from_labels", "zca_matrix", "Split",
    "describe", "choose", "splitmix64", "Stream", "stream",
]

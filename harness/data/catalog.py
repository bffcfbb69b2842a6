"""The dataset ids the harness knows: where TFDS serves them, their splits, classes and official sizes.

Every example is named by its *official index*: its position in the dataset's published order within its
split (CIFAR-10: `data_batch_1..5` then `test_batch`; CIFAR-5m: see `harness.data.cifar5m`). Subsets,
mirrors and run records all speak in these indices, so a mirror holding the official first N examples
serves exactly what TFDS serves for any subset inside that range.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Mapping

import numpy as np

from harness.data.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR5M_PART_SIZE = 1_000_448  # images per part{k}.npz (Nakkiran et al. 2021, arXiv 2010.08127)
CIFAR5M_PARTS = {"train": (0, 1, 2, 3, 4), "test": (5,)}  # part{k}.npz files of each split, in official order

_CIFAR10_ID = re.compile(rb"^(train|test)_(\d+)$")


def cifar10_indices(split: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
  """Official indices from TFDS cifar10 ids: b'train_16399' -> 16399 (tfds cifar.py, `_generate_examples`)."""
  out = np.empty(len(columns["id"]), dtype=np.int64)
  for i, raw in enumerate(columns["id"]):
    match = _CIFAR10_ID.match(raw)
    if match is None or match.group(1).decode() != split:
      raise DataError(f"TFDS cifar10 {split}: example id {raw!r} is not of the form '{split}_<index>'")
    out[i] = int(match.group(2))
  return out


def index_feature(split: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
  """Official indices stored in an `index` feature (the cifar5m builder writes one)."""
  del split
  return np.asarray(columns["index"], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What the harness knows about one dataset id.

  tfds_name: the TFDS builder serving it (None: served only by a mirror).
  tfds_module: module to import so that TFDS knows the builder (a builder defined in this project).
  split_sizes: official number of examples per split (the default pool is a whole split).
  index_columns: TFDS features read to recover official indices; official_indices maps them.
  mirror_keys: the npz arrays of a mirror shard holding (images, labels).
  mirror_parts: None: a mirror's shards of split s are the files `s*.npz`; else {split: part numbers}: its
    shards are `part{k}.npz` for those k, in that order (CIFAR-5m's published files, see mirrors.py).
  """
  dataset_id: str
  num_classes: int
  class_names: tuple[str, ...]
  split_sizes: Mapping[str, int]
  tfds_name: str | None = None
  tfds_module: str | None = None
  index_columns: tuple[str, ...] = ("id",)
  official_indices: Callable[[str, Mapping[str, np.ndarray]], np.ndarray] | None = None
  mirror_keys: tuple[str, str] = ("images", "labels")
  mirror_parts: Mapping[str, tuple[int, ...]] | None = None
  note: str = ""


DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        dataset_id="cifar10", num_classes=10, class_names=CIFAR10_CLASSES,
        split_sizes={"train": 50_000, "test": 10_000}, tfds_name="cifar10",
        index_columns=("id",), official_indices=cifar10_indices,
        note="CIFAR-10 (Krizhevsky 2009), exact pixels"),
    "cifar10_jpeg": DatasetSpec(
        dataset_id="cifar10_jpeg", num_classes=10, class_names=CIFAR10_CLASSES,
        split_sizes={"train": 50_000, "test": 10_000},
        note="CIFAR-10 order and labels, pixels decoded from JPEG (lossy): mirror only, never exact CIFAR-10"),
    "cifar5m": DatasetSpec(
        dataset_id="cifar5m", num_classes=10, class_names=CIFAR10_CLASSES,
        split_sizes={"train": 5 * CIFAR5M_PART_SIZE, "test": CIFAR5M_PART_SIZE},
        tfds_name="cifar5m", tfds_module="harness.data.cifar5m",
        index_columns=("id", "index"), official_indices=index_feature,
        mirror_keys=("X", "Y"), mirror_parts=CIFAR5M_PARTS,
        note="CIFAR-5m (Nakkiran, Neyshabur & Sedghi 2021): train = part0..part4, test = part5"),
}


def get(dataset_id: str) -> DatasetSpec:
  try:
    return DATASETS[dataset_id]
  except KeyError:
    raise DataError(f"unknown dataset {dataset_id!r}; known: {', '.join(sorted(DATASETS))}") from None


def check_split(spec: DatasetSpec, split: str) -> None:
  if split not in spec.split_sizes:
    raise DataError(f"{spec.dataset_id} has no split {split!r}; splits: {', '.join(spec.split_sizes)}")

"""A loaded subset of one split: images, labels, official indices, and where they came from."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """Examples of one dataset split, in ascending official order.

  images uint8 (n, H, W, C) NHWC RGB; labels int64 (n,); indices int64 (n,) official indices.
  source: 'mirror:<absolute folder>' or 'tfds:<name>/<version>'. checksum: the mirror's combined sha256
  of the split's shards (None from TFDS). The subset is (seed, size = n, pool, balanced); seed is None
  when the whole pool was taken.
  """
  images: np.ndarray
  labels: np.ndarray
  indices: np.ndarray
  dataset_id: str
  split: str
  source: str
  checksum: str | None
  num_classes: int
  pool: int
  seed: int | None
  balanced: bool

  def __len__(self) -> int:
    return len(self.labels)


def _sha256(*arrays: np.ndarray) -> str:
  digest = hashlib.sha256()
  for array in arrays:
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def describe(split: Split) -> dict[str, Any]:
  """What goes into the run record: which examples, from where, and digests to compare runs by.

  indices_sha256 covers the official indices (int64 little-endian); content_sha256 covers indices,
  labels and pixels, so a TFDS run and a mirror run that saw the same data agree on it.
  """
  indices = split.indices.astype("<i8")
  return {
      "dataset_id": split.dataset_id,
      "split": split.split,
      "source": split.source,
      "checksum": split.checksum,
      "n": len(split),
      "pool": split.pool,
      "seed": split.seed,
      "balanced": split.balanced,
      "indices_sha256": _sha256(indices),
      "content_sha256": _sha256(indices, split.labels.astype("<i8"), split.images.astype(np.uint8)),
  }

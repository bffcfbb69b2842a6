"""Tiny fake datasets for the data-layer tests: mirror folders of .npz shards and their README checksums."""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np

IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10


def random_examples(n: int, seed: int, shape: tuple[int, ...] = IMAGE_SHAPE) -> tuple[np.ndarray, np.ndarray]:
  """n uint8 images and int64 labels 0..9 (every class present once n >= 10)."""
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, size=(n,) + shape, dtype=np.uint8)
  labels = np.concatenate([np.arange(min(n, NUM_CLASSES)), rng.integers(0, NUM_CLASSES, max(0, n - NUM_CLASSES))])
  return images, rng.permutation(labels).astype(np.int64)


def sha256_of(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def write_mirror(folder: str, shards: dict[str, tuple[np.ndarray, np.ndarray]],
                 listed: Sequence[str] | None = None, override: dict[str, str] | None = None,
                 compressed: bool = False, keys: tuple[str, str] = ("images", "labels")) -> dict[str, str]:
  """Writes shards {filename: (images, labels)} and a README whose fenced block lists their sha256.

  listed: the filenames the README lists (default all); override: {filename: sha256 to write instead};
  compressed: np.savez_compressed instead of np.savez; keys: the arrays' names (CIFAR-5m parts: X, Y).
  Returns the true {filename: sha256}.
  """
  os.makedirs(folder, exist_ok=True)
  save = np.savez_compressed if compressed else np.savez
  sums = {}
  for name, (images, labels) in shards.items():
    path = os.path.join(folder, name)
    save(path, **{keys[0]: images, keys[1]: labels})
    sums[name] = sha256_of(path)
  lines = [f"{(override or {}).get(name, sums[name])}  {name}" for name in (listed if listed is not None else sums)]
  with open(os.path.join(folder, "README.md"), "w") as f:
    f.write("# fake mirror\n\n## sha256\n```\n" + "\n".join(lines) + "\n```\n"
            f"A line outside the fenced block is no checksum:\n{'0' * 64}  train.npz\n")
  return sums


def prepare_fake_cifar5m(root, images_per_part: int, seed: int):
  """Writes six fake CIFAR-5m parts (X, Y as published) into root/manual and prepares the TFDS builder into
  root/data from them; returns (data_dir, manual_dir, {part: (images, labels)})."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from harness.data import cifar5m  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import  (registers it)
  manual_dir, data_dir = os.path.join(str(root), "manual"), os.path.join(str(root), "data")
  os.makedirs(manual_dir)
  rng = np.random.default_rng(seed)
  parts = {}
  for part in range(6):
    images = rng.integers(0, 256, (images_per_part, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, images_per_part).astype(np.int64)
    np.savez(os.path.join(manual_dir, f"part{part}.npz"), X=images, Y=labels)
    parts[part] = (images, labels)
  tfds.disable_progress_bar()
  builder = tfds.builder("cifar5m", data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return data_dir, manual_dir, parts

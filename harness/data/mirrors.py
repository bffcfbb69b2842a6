"""Offline mirrors: folders of sha256-checked `.npz` shards that stand in for a TFDS download.

Spec string (env `HARNESS_MIRRORS`, CLI `--mirrors`): comma-separated `dataset_id=folder`, e.g.
`cifar10=../shared/data/cifar10-exact-subset,cifar10_jpeg=../shared/data/cifar10-jpeg`; relative folders
are taken from the current directory. A configured mirror is the only source for its id: nothing is ever
downloaded for it.

Folder format (shared/data/README.md): `train*.npz` and `test*.npz` shards, each holding `images` (uint8,
N x H x W x C, NHWC RGB) and `labels` (int64, N). The shards of a split, in name order (numbers inside names
compared as numbers, so train_2 < train_10), hold the official examples 0, 1, 2, ... in order: a mirror is
always a prefix of its split.
CIFAR-5m mirrors (`DatasetSpec.mirror_parts`) are instead a folder of the published files themselves,
`part0.npz` .. `part5.npz` with arrays `X` (uint8, N x 32 x 32 x 3) and `Y` (labels): train = part0..part4,
test = part5 (harness/data/cifar5m.py). The parts present must be a prefix of the split's (part0, part1, ...
without a gap); labels of any integer dtype are served as int64.
The folder's README.md lists `<sha256>  <filename>` lines in a fenced code block; every shard of a split is
checked against it before any of that split is used (a missing README, a shard without a listed hash, a listed
shard that is absent, or a mismatch are errors). Verified hashes are cached per process, keyed by path, size
and mtime. A split's checksum is sha256 over its sorted `name:sha256` lines; it goes into the run record.
Shard sizes and array shapes come from the .npy headers (harness/data/npz.py), not from loading the arrays.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Mapping, Sequence

import numpy as np

from harness.data import catalog, npz
from harness.data.errors import DataError

ENV_VAR = "HARNESS_MIRRORS"
README = "README.md"
HASH_CHUNK_BYTES = 1 << 22
_SHA_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")

_verified_sha256: dict[tuple[str, int, int, int], str] = {}  # (realpath, inode, size, mtime_ns) -> sha256


def parse_mirrors(spec: str) -> dict[str, str]:
  """'id=folder,id=folder' -> {id: absolute folder}. Empty or blank -> {}."""
  table: dict[str, str] = {}
  for item in spec.split(","):
    item = item.strip()
    if not item:
      continue
    dataset_id, sep, folder = (part.strip() for part in item.partition("="))
    if not sep or not dataset_id or not folder:
      raise DataError(f"bad mirror entry {item!r}: expected dataset_id=folder (in {ENV_VAR} or --mirrors)")
    if dataset_id not in catalog.DATASETS:
      raise DataError(f"mirror for unknown dataset {dataset_id!r}; known: {', '.join(sorted(catalog.DATASETS))}")
    if dataset_id in table:
      raise DataError(f"dataset {dataset_id!r} has two mirrors in {spec!r}")
    table[dataset_id] = os.path.abspath(os.path.expanduser(folder))
  return table


def resolve_mirrors(mirrors: str | Mapping[str, str] | None) -> dict[str, str]:
  """A spec string, a mapping, or None (then `$HARNESS_MIRRORS`, unset meaning no mirrors)."""
  if mirrors is None:
    mirrors = os.environ.get(ENV_VAR, "")
  if isinstance(mirrors, str):
    return parse_mirrors(mirrors)
  return parse_mirrors(",".join(f"{k}={v}" for k, v in mirrors.items()))


def read_readme_checksums(folder: str) -> dict[str, str]:
  """{filename: sha256} from the `sha256  filename` lines inside fenced blocks of folder/README.md."""
  path = os.path.join(folder, README)
  if not os.path.isfile(path):
    raise DataError(f"mirror {folder} has no {README} with sha256 checksums")
  sums: dict[str, str] = {}
  in_fence = False
  with open(path, encoding="utf-8") as f:
    for line in f:
      if _FENCE.match(line):
        in_fence = not in_fence
        continue
      match = _SHA_LINE.match(line.strip()) if in_fence else None
      if match:
        sums[match.group(2)] = match.group(1).lower()
  if not sums:
    raise DataError(f"{path} lists no 'sha256  filename' lines in a fenced block")
  return sums


def file_sha256(path: str) -> str:
  """sha256 of a file, cached per process while its path, inode, size and mtime are unchanged."""
  stat = os.stat(path)
  key = (os.path.realpath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
  if key not in _verified_sha256:
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(HASH_CHUNK_BYTES))  # one buffer reused: memory stays HASH_CHUNK_BYTES
    with open(path, "rb") as f:
      while got := f.readinto(buffer):
        digest.update(buffer[:got])
    _verified_sha256[key] = digest.hexdigest()
  return _verified_sha256[key]


def combined_checksum(shard_sums: Mapping[str, str]) -> str:
  """sha256 over the sorted 'name:sha256' lines, one per line."""
  lines = sorted(f"{name}:{sha}" for name, sha in shard_sums.items())
  return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _natural_key(name: str) -> list:
  return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def _is_shard_of(name: str, split: str) -> bool:
  return name.startswith(split) and name.endswith(".npz")


@dataclasses.dataclass(frozen=True)
class Shard:
  name: str
  path: str
  sha256: str
  start: int  # official index of its first example
  size: int


class Mirror:
  """One dataset id's mirror folder. Methods take a split name ('train', 'test')."""

  def __init__(self, dataset_id: str, folder: str):
    self.spec = catalog.get(dataset_id)
    self.dataset_id = dataset_id
    self.folder = os.path.abspath(folder)
    if not os.path.isdir(self.folder):
      raise DataError(f"mirror folder for {dataset_id} does not exist: {self.folder} "
                      f"(fix {ENV_VAR} or --mirrors)")
    self._shards: dict[str, list[Shard]] = {}
    self._labels: dict[str, np.ndarray] = {}

  @property
  def source(self) -> str:
    return f"mirror:{self.folder}"

  def shard_names(self, split: str) -> list[str]:
    """The split's shard files present in the folder, in official order (not yet verified)."""
    catalog.check_split(self.spec, split)
    present = set(os.listdir(self.folder))
    if self.spec.mirror_parts is None:
      names = sorted((n for n in present if _is_shard_of(n, split)), key=_natural_key)
      if not names:
        raise DataError(f"mirror {self.folder} holds no {split}*.npz shards for {self.dataset_id}")
      return names
    wanted = [f"part{k}.npz" for k in self.spec.mirror_parts[split]]
    held = [n in present for n in wanted]
    if not held[0]:
      raise DataError(f"mirror {self.folder} holds no {wanted[0]} for {self.dataset_id} {split} "
                      f"({split} = {', '.join(wanted)})")
    count = held.index(False) if False in held else len(held)
    if any(held[count:]):
      raise DataError(f"mirror {self.folder}: {wanted[count]} is missing but later parts of {self.dataset_id} "
                      f"{split} are there (a mirror holds a prefix of its split: {', '.join(wanted)})")
    return wanted[:count]

  def _is_listed_shard(self, name: str, split: str) -> bool:
    if self.spec.mirror_parts is None:
      return _is_shard_of(name, split)
    return name in {f"part{k}.npz" for k in self.spec.mirror_parts[split]}

  def shards(self, split: str) -> list[Shard]:
    """The split's shards in official order, each verified against the README's sha256."""
    if split not in self._shards:
      names = self.shard_names(split)
      listed = read_readme_checksums(self.folder)
      absent = sorted(n for n in listed if self._is_listed_shard(n, split) and n not in names)
      if absent:
        raise DataError(f"mirror {self.folder}: {README} lists {', '.join(absent)} but the file is missing")
      shards, start = [], 0
      for name in names:
        path = os.path.join(self.folder, name)
        if name not in listed:
          raise DataError(f"mirror {self.folder}: no sha256 for {name} in {README}")
        actual = file_sha256(path)
        if actual != listed[name]:
          raise DataError(f"checksum mismatch for {path}: expected sha256 {listed[name]}, actual {actual}")
        size = self.member_headers(path)[1].rows
        shards.append(Shard(name=name, path=path, sha256=actual, start=start, size=size))
        start += size
      self._shards[split] = shards
    return self._shards[split]

  def member_headers(self, path: str) -> tuple[npz.MemberHeader, npz.MemberHeader]:
    """(images, labels) .npy headers of one shard, checked: uint8 (N, H, W, C) images and N integer labels."""
    image_key, label_key = self.spec.mirror_keys
    images, labels = npz.member_header(path, image_key), npz.member_header(path, label_key)
    if images.dtype != np.uint8 or len(images.shape) != 4 or len(labels.shape) != 1 or images.rows != labels.rows:
      raise DataError(f"{path}: {image_key!r} must be uint8 (N, H, W, C) and {label_key!r} (N,), got "
                      f"{image_key} {images.dtype} {images.shape}, {label_key} {labels.dtype} {labels.shape}")
    if labels.dtype.kind not in "iu":
      raise DataError(f"{path}: labels {label_key!r} must be integers, got {labels.dtype}")
    return images, labels

  def capacity(self, split: str) -> int:
    """How many official examples (0..capacity-1) the mirror holds for the split."""
    return sum(s.size for s in self.shards(split))

  def official_size(self, split: str) -> int:
    return self.spec.split_sizes[split]

  def checksum(self, split: str) -> str:
    return combined_checksum({s.name: s.sha256 for s in self.shards(split)})

  def labels(self, split: str, pool: int) -> np.ndarray:
    """Labels of official examples 0..pool-1."""
    if split not in self._labels:
      self._labels[split] = np.concatenate(
          [self._load_member(s.path, self.spec.mirror_keys[1]) for s in self.shards(split)]).astype(np.int64)
    return self._labels[split][:pool]

  def read(self, split: str, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the given official indices (any order), reading only the shards that hold them."""
    indices = np.asarray(indices, dtype=np.int64)
    capacity = self.capacity(split)
    if not len(indices) or indices.min() < 0 or indices.max() >= capacity:
      raise DataError(f"{self.dataset_id} {split}: asked for indices outside 0..{capacity - 1}, "
                      f"the {capacity} examples the mirror {self.folder} holds")
    images: np.ndarray | None = None
    labels = np.empty(len(indices), dtype=np.int64)
    for shard in self.shards(split):
      rows = np.nonzero((indices >= shard.start) & (indices < shard.start + shard.size))[0]
      if not len(rows):
        continue
      shard_images = self._load_member(shard.path, self.spec.mirror_keys[0])
      shard_labels = self._load_member(shard.path, self.spec.mirror_keys[1])
      if shard_images.dtype != np.uint8 or shard_images.ndim != 4 or len(shard_images) != shard.size:
        raise DataError(f"{shard.path}: 'images' must be uint8 (N, H, W, C) with N = len(labels) = {shard.size}, "
                        f"got {shard_images.dtype} {shard_images.shape}")
      if images is None:
        images = np.empty((len(indices),) + shard_images.shape[1:], dtype=np.uint8)
      images[rows] = shard_images[indices[rows] - shard.start]
      labels[rows] = shard_labels[indices[rows] - shard.start]
    assert images is not None  # every index lies in some shard (checked above)
    return images, labels

  def _load_member(self, path: str, key: str) -> np.ndarray:
    try:
      with np.load(path, allow_pickle=False) as arrays:
        return arrays[key]
    except KeyError:
      expected = " and ".join(map(repr, self.spec.mirror_keys))
      raise DataError(f"{path} has no array {key!r} (expected {expected})") from None

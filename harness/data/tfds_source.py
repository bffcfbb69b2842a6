"""TensorFlow Datasets as a source of official examples, offline-aware.

TFDS stores a split in a shuffled order, so official indices come from a feature (cifar10's `id`,
b'train_16399'; cifar5m's `index`). Reading a subset takes two passes over the split with images left
encoded (`tfds.decode.SkipDecoding`): one for ids and labels, one that decodes only the chosen images.

Availability: data already prepared in `data_dir` (default: TFDS's, `$TFDS_DATA_DIR` or
~/tensorflow_datasets) is used as is. Otherwise, with `download=True`, the builder's download URLs are
probed first (DNS + TCP connect, `PROBE_TIMEOUT_S`), so an offline machine fails in seconds instead of
after urllib3's retries (measured: 204 s for cifar10), and then `download_and_prepare` runs. Builders
with manual data (cifar5m) read it from `manual_dir` (default `<data_dir>/downloads/manual`). Every
failure becomes a one-line `DataError` that says how to point at a mirror instead.
"""
from __future__ import annotations

import contextlib
import importlib
import socket
import urllib.parse
from typing import Iterator, Sequence

import numpy as np
from absl import logging as absl_logging

from harness.data import catalog
from harness.data.errors import DataError

PROBE_TIMEOUT_S = 5.0
BATCH = 4096
MAX_ERROR_CHARS = 600  # of a TFDS error quoted in a one-line DataError
MIRROR_HINT = ("set HARNESS_MIRRORS (or --mirrors) to '{id}=<folder of .npz shards>' "
               "(format: harness/data/mirrors.py)")


@contextlib.contextmanager
def quiet_tfds_logs() -> Iterator[None]:
  """TFDS logs INFO/WARNING lines (absl) on every builder and dataset; the harness keeps stderr for errors."""
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(verbosity)


def _one_line(error: BaseException) -> str:
  text = " ".join(str(error).split())
  if len(text) > MAX_ERROR_CHARS:
    text = text[:MAX_ERROR_CHARS - 3] + "..."
  return f"{type(error).__name__}: {text}"


def unreachable_hosts(urls: Sequence[str], timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
  """The hosts among `urls` that cannot be resolved or connected to within timeout_s."""
  bad = []
  for host, port in sorted({_host_port(u) for u in urls}):
    try:
      socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
      bad.append(host)
  return bad


def _host_port(url: str) -> tuple[str, int]:
  parts = urllib.parse.urlsplit(url)
  return parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)


class TfdsSource:
  """One TFDS dataset; methods take a split name ('train', 'test')."""

  def __init__(self, spec: catalog.DatasetSpec, data_dir: str | None = None, manual_dir: str | None = None,
               download: bool = True):
    import tensorflow_datasets as tfds  # imported here: a run served by mirrors needs no TFDS
    if spec.tfds_name is None:
      raise ValueError(f"{spec.dataset_id} is not served by TFDS")
    if spec.tfds_module:
      importlib.import_module(spec.tfds_module)  # registers a builder defined in this project
    self.spec = spec
    self._tfds = tfds
    self._manual_dir = manual_dir
    self._download = download
    with quiet_tfds_logs():
      self.builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    self._index: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

  @property
  def source(self) -> str:
    return f"tfds:{self.builder.name}/{self.builder.version}"

  # -- availability ----------------------------------------------------------------------------
  def _as_dataset(self, split: str):
    decoders = {"image": self._tfds.decode.SkipDecoding()}
    with quiet_tfds_logs():
      try:
        return self.builder.as_dataset(split=split, decoders=decoders, shuffle_files=False)
      except AssertionError:  # TFDS asserts when the data was never prepared
        if self.builder.is_prepared():
          raise
      self._prepare()
      return self.builder.as_dataset(split=split, decoders=decoders, shuffle_files=False)

  def _prepare(self) -> None:
    name, where = self.spec.dataset_id, self.builder.data_dir
    hint = MIRROR_HINT.format(id=name)
    if not self._download:
      raise DataError(f"{name} is not in the TFDS data dir {where} and downloading is off; {hint}")
    try:
      urls = list(self.builder.url_infos or {})
      offline = unreachable_hosts(urls)
      if not offline:
        config = self._tfds.download.DownloadConfig(manual_dir=self._manual_dir)
        self.builder.download_and_prepare(download_config=config)
    except Exception as error:  # TFDS raises many types (network, manual data, missing modules)
      raise DataError(f"{name}: TFDS could not prepare it in {where} ({_one_line(error)}); {hint}") from error
    if offline:
      raise DataError(f"{name} is not in the TFDS data dir {where} and {', '.join(offline)} is unreachable "
                      f"(offline?); {hint}")

  # -- reading ---------------------------------------------------------------------------------
  def _read_index(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(official indices, labels, ids) in TFDS storage order, for the whole split (cached)."""
    if split not in self._index:
      columns = self.spec.index_columns
      ds = self._as_dataset(split).map(lambda ex: {k: ex[k] for k in (*columns, "label")})
      parts: dict[str, list[np.ndarray]] = {k: [] for k in (*columns, "label")}
      for batch in self._tfds.as_numpy(ds.batch(BATCH)):
        for k in parts:
          parts[k].append(batch[k])
      if not parts["label"]:
        raise DataError(f"TFDS {self.builder.name} {split} is empty")
      merged = {k: np.concatenate(v) for k, v in parts.items()}
      indices = self.spec.official_indices(split, merged)
      if not np.array_equal(np.sort(indices), np.arange(len(indices))):
        raise DataError(f"TFDS {self.builder.name} {split}: official indices are not 0..{len(indices) - 1}")
      self._index[split] = (indices, merged["label"].astype(np.int64), merged["id"])
    return self._index[split]

  def official_size(self, split: str) -> int:
    return len(self._read_index(split)[0])

  def capacity(self, split: str) -> int:
    return self.official_size(split)

  def checksum(self, split: str) -> None:
    del split
    return None  # TFDS verifies its downloads itself; the record carries a digest of the content

  def labels(self, split: str, pool: int) -> np.ndarray:
    """Labels of official examples 0..pool-1."""
    indices, labels, _ = self._read_index(split)
    by_index = np.empty(len(indices), dtype=np.int64)
    by_index[indices] = labels
    return by_index[:pool]

  def read(self, split: str, wanted: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the given official indices, in the given order; decodes only those images."""
    import tensorflow as tf
    indices, _, ids = self._read_index(split)
    wanted = np.asarray(wanted, dtype=np.int64)
    id_of = np.empty(len(indices), dtype=object)
    id_of[indices] = ids
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(id_of[wanted]), dtype=tf.string),
                                            tf.range(len(wanted), dtype=tf.int64)), default_value=-1)
    decode = self.builder.info.features["image"].decode_example
    ds = (self._as_dataset(split)
          .map(lambda ex: (table.lookup(ex["id"]), ex["image"], ex["label"]))
          .filter(lambda row, image, label: row >= 0)
          .map(lambda row, image, label: (row, decode(image), label)))
    images: np.ndarray | None = None
    labels = np.full(len(wanted), -1, dtype=np.int64)
    for rows, batch_images, batch_labels in self._tfds.as_numpy(ds.batch(BATCH)):
      if images is None:
        images = np.empty((len(wanted),) + batch_images.shape[1:], dtype=np.uint8)
      images[rows] = batch_images
      labels[rows] = batch_labels
    if images is None or (labels < 0).any():
      raise DataError(f"TFDS {self.builder.name} {split}: some requested examples were not found")
    return images, labels

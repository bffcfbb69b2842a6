"""`stream`: a split served once, as batches, without ever holding the split (or a shard) in memory.

    s = data.stream("cifar10_jpeg", "train", 64, num_examples=64 * steps)   # DataError now if it holds fewer
    for images, labels in s:        # uint8 (64, 32, 32, 3), int64 (64,), official examples 0, 1, 2, ...
      ...
    ctx.record_dataset(s.describe())   # dataset id, source, checksum, examples served, digest of what was served

Online training uses each example once: a Stream is a one-shot iterator (a second `iter` continues where the
first stopped; nothing is ever served twice). `operator.length_hint(s)` is the number of batches still to come,
which `harness.online.train_online` checks before training; `s.num_examples` / `s.num_batches` are the totals.

Order. From a mirror (mirrors.py: sha256-checked npz shards; the whole split's shards are verified before the
first batch), examples come in official order: official indices start, start + 1, ..., start + num_examples - 1.
With `shuffle_buffer = W > 0` the served sequence is cut into windows of W consecutive examples (window k holds
stream positions kW .. kW + W - 1, the last one possibly shorter) and each window is served in the order of the
permutation `harness.seeding.rng(seed, k).permutation(len(window))`: a permutation within each window, the same
for every batch size, reproducible from (seed, start, W). From TFDS (no mirror configured for the id, e.g.
cifar5m through its builder in cifar5m.py) examples come in TFDS's storage order (`shuffle_files=False`): a fixed
permutation of the official indices chosen by TFDS when it prepared the data (it hashes each example's key),
recorded as `order: "tfds_storage"`; `start` then counts positions in that order, and the served official indices
(from the builder's index feature) go into the digest. A TFDS run and a mirror run of the same id therefore see
different sequences; `describe()` says which.

Memory (measured in tests/data/test_stream.py with tracemalloc): about one read chunk (`chunk_bytes`, default 1 MiB
of rows) + one batch + one shuffle window (W rows, filled in place in permuted order) at any time, whatever the
split or shard size. Stored npz members are read by seeking into the file, compressed ones (np.savez_compressed,
e.g. the cifar10-jpeg mirror) through the zip module's decompressing stream (harness/data/npz.py). CIFAR-5m
mirrors are folders of the published part{k}.npz files (arrays X, Y; mirrors.py).

Every request that cannot be served is a one-line DataError raised by `stream(...)` itself, before any batch:
unknown id or split, a bad batch size / start / buffer, num_examples beyond what the source holds after `start`
("the stream of cifar10_jpeg/train (mirror:...) holds 50000 examples, 64000 asked"), num_examples
not a multiple of batch_size (with drop_remainder), a missing or corrupt shard, a checksum mismatch.
"""
from __future__ import annotations

import hashlib
import operator
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from harness import seeding
from harness.data import catalog, loader, mirrors as mirrors_lib, npz
from harness.data.errors import DataError

CHUNK_BYTES = 1 << 20  # rows read from a shard (or TFDS) at a time
ORDER_OFFICIAL = "official"
ORDER_TFDS = "tfds_storage"

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]  # images uint8 (n, H, W, C), labels int64 (n,), indices int64 (n,)


# -- sources: chunks of consecutive examples -----------------------------------------------------
class _MirrorRows:
  """Examples of a mirror's split in official order, read from the npz members chunk by chunk."""
  order = ORDER_OFFICIAL

  def __init__(self, mirror: mirrors_lib.Mirror, split: str):
    self.mirror, self.split = mirror, split
    self.shards = mirror.shards(split)  # verifies every shard's sha256 against the README
    self.headers = [mirror.member_headers(s.path) for s in self.shards]
    shapes = {h[0].row_shape for h in self.headers}
    if len(shapes) > 1:
      raise DataError(f"mirror {mirror.folder}: the {split} shards hold images of different shapes "
                      f"{sorted(shapes)}")
    self.capacity = sum(s.size for s in self.shards)
    self.source = mirror.source
    self.checksum = mirror.checksum(split)

  def chunks(self, start: int, count: int, chunk_bytes: int) -> Iterator[Chunk]:
    end = start + count
    for shard, (image_header, label_header) in zip(self.shards, self.headers):
      lo, hi = max(start, shard.start), min(end, shard.start + shard.size)
      if lo >= hi:
        continue
      rows = max(1, chunk_bytes // max(1, image_header.row_bytes))
      with npz.RowReader(image_header, lo - shard.start) as images, \
          npz.RowReader(label_header, lo - shard.start) as labels:
        for first in range(lo, hi, rows):
          n = min(rows, hi - first)
          yield images.read(n), labels.read(n).astype(np.int64), np.arange(first, first + n, dtype=np.int64)


class _TfdsRows:
  """Examples of a TFDS split in storage order, decoded chunk by chunk by tf.data."""
  order = ORDER_TFDS

  def __init__(self, source, split: str):
    self.tfds_source, self.split, self.spec = source, split, source.spec
    self._dataset = source._as_dataset(split)  # pylint: disable=protected-access  # prepares, or a DataError
    self.capacity = int(source.builder.info.splits[split].num_examples)
    self.source = source.source
    self.checksum = source.checksum(split)

  def chunks(self, start: int, count: int, chunk_bytes: int) -> Iterator[Chunk]:
    features = self.tfds_source.builder.info.features
    decode = features["image"].decode_example
    columns = tuple(c for c in self.spec.index_columns if c not in ("image", "label"))
    shape = features["image"].shape
    row_bytes = int(np.prod([d or 1 for d in shape])) if shape else 1
    rows = max(1, chunk_bytes // row_bytes)
    ds = (self._dataset.skip(start).take(count)
          .map(lambda ex: {"image": decode(ex["image"]), "label": ex["label"], **{c: ex[c] for c in columns}})
          .batch(rows).prefetch(1))
    served = 0
    for batch in self.tfds_source._tfds.as_numpy(ds):  # pylint: disable=protected-access
      indices = self.spec.official_indices(self.split, batch)
      served += len(indices)
      yield np.asarray(batch["image"], dtype=np.uint8), batch["label"].astype(np.int64), indices
    if served < count:
      raise DataError(f"TFDS {self.tfds_source.builder.name} {self.split} ended after {start + served} examples; "
                      f"its dataset info says {self.capacity}")


# -- re-chunking: exact-size blocks, window shuffle ------------------------------------------------
def _next_chunk(chunks: Iterator[Chunk]) -> Chunk:
  try:
    return next(chunks)
  except StopIteration:  # a source shorter than it said (never for a verified mirror)
    raise DataError("stream: the source ended before the examples it reported") from None


def _blocks(chunks: Iterator[Chunk], size: int, total: int) -> Iterator[Chunk]:
  """The rows of `chunks` regrouped into fresh arrays of `size` rows (the last one: the rest of `total`)."""
  pending: Chunk | None = None
  offset = 0
  done = 0
  while done < total:
    n = min(size, total - done)
    out: list[np.ndarray] | None = None
    filled = 0
    while filled < n:
      if pending is None or offset == len(pending[0]):
        pending = None  # drop the used chunk before reading the next
        pending, offset = _next_chunk(chunks), 0
      take = min(n - filled, len(pending[0]) - offset)
      if out is None:
        out = [np.empty((n,) + a.shape[1:], dtype=a.dtype) for a in pending]
      for dst, src in zip(out, pending):
        dst[filled:filled + take] = src[offset:offset + take]
      filled += take
      offset += take
    done += n
    yield tuple(out)


def _shuffled_windows(chunks: Iterator[Chunk], window: int, total: int, seed: int) -> Iterator[Chunk]:
  """Windows of `window` consecutive rows, each in the order rng(seed, k).permutation: out[j] = in[perm[j]].

  Rows are written straight to their permuted places (out[inverse[i]] = in[i]), so a window is held once.
  """
  pending: Chunk | None = None
  offset = 0
  done = 0
  k = 0
  while done < total:
    n = min(window, total - done)
    perm = seeding.rng(seed, k).permutation(n)
    inverse = np.empty(n, dtype=np.int64)
    inverse[perm] = np.arange(n)
    out: list[np.ndarray] | None = None
    filled = 0
    while filled < n:
      if pending is None or offset == len(pending[0]):
        pending = None
        pending, offset = _next_chunk(chunks), 0
      take = min(n - filled, len(pending[0]) - offset)
      if out is None:
        out = [np.empty((n,) + a.shape[1:], dtype=a.dtype) for a in pending]
      places = inverse[filled:filled + take]
      for dst, src in zip(out, pending):
        dst[places] = src[offset:offset + take]
      filled += take
      offset += take
    done += n
    k += 1
    yield tuple(out)
    out = None


def _int(value, name: str, low: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise DataError(f"stream: {name} must be an integer >= {low}, got {value!r}")
  return int(value)


class Stream:
  """Batches of one split, each example served at most once (module docstring). Build with `stream(...)`."""

  def __init__(self, rows, dataset_id: str, split: str, batch_size: int, start: int, num_examples: int,
               shuffle_buffer: int, seed: int, drop_remainder: bool, with_indices: bool, chunk_bytes: int):
    self.dataset_id, self.split = dataset_id, split
    self.source, self.checksum, self.order = rows.source, rows.checksum, rows.order
    self.capacity = rows.capacity
    self.batch_size, self.start, self.num_examples = batch_size, start, num_examples
    self.shuffle_buffer, self.seed = shuffle_buffer, seed
    self.drop_remainder, self.with_indices = drop_remainder, with_indices
    self.num_batches = -(-num_examples // batch_size)
    self.served = 0
    self.last_indices: np.ndarray | None = None  # official indices of the batch served last
    self._digest = hashlib.sha256()
    self._batches = self._generate(rows, chunk_bytes)

  def _generate(self, rows, chunk_bytes: int) -> Iterator[Chunk]:
    source = rows.chunks(self.start, self.num_examples, chunk_bytes)
    windows = (_shuffled_windows(source, self.shuffle_buffer, self.num_examples, self.seed)
               if self.shuffle_buffer else source)
    try:
      yield from _blocks(windows, self.batch_size, self.num_examples)
    finally:
      windows.close()
      source.close()  # closes the open shard files

  # -- iteration -------------------------------------------------------------------------------
  def __iter__(self) -> "Stream":
    return self

  def __next__(self):
    images, labels, indices = next(self._batches)
    self._digest.update(indices.astype("<i8"))  # hashlib reads the arrays' buffers (C-contiguous, no copy)
    self._digest.update(labels.astype("<i8"))
    self._digest.update(np.ascontiguousarray(images, dtype=np.uint8))
    self.served += len(labels)
    self.last_indices = indices
    return (images, labels, indices) if self.with_indices else (images, labels)

  def __length_hint__(self) -> int:
    return self.remaining_batches

  @property
  def remaining_batches(self) -> int:
    return -(-(self.num_examples - self.served) // self.batch_size)

  def map(self, fn: Callable[..., Any]) -> "MappedStream":
    """fn applied to every batch (e.g. preprocessing: `s.map(lambda x, y: (prep(x), y))`), length kept."""
    return MappedStream(self, fn)

  def close(self) -> None:
    """Closes the open shard files; the stream then serves nothing more."""
    self._batches.close()

  def __enter__(self) -> "Stream":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  # -- the run record --------------------------------------------------------------------------
  def describe(self) -> dict[str, Any]:
    """What goes into the run record. served_sha256: sha256 over, batch by batch as served, the official
    indices (int64 LE), labels (int64 LE) and pixels (uint8) of every example served so far."""
    return {
        "dataset_id": self.dataset_id,
        "split": self.split,
        "source": self.source,
        "checksum": self.checksum,
        "stream": True,
        "order": self.order,
        "start": self.start,
        "num_examples": self.num_examples,
        "n": self.served,
        "batch_size": self.batch_size,
        "shuffle_buffer": self.shuffle_buffer,
        "seed": self.seed if self.shuffle_buffer else None,
        "served_sha256": self._digest.hexdigest(),
    }

  def __repr__(self) -> str:
    return (f"Stream({self.dataset_id}/{self.split} from {self.source}, {self.num_examples} examples from "
            f"{self.start}, batch {self.batch_size}, served {self.served})")


class MappedStream:
  """A Stream with a function applied to each batch; forwards length_hint and describe."""

  def __init__(self, inner: Stream, fn: Callable[..., Any]):
    self.inner, self.fn = inner, fn

  def __iter__(self) -> "MappedStream":
    return self

  def __next__(self):
    return self.fn(*next(self.inner))

  def __length_hint__(self) -> int:
    return operator.length_hint(self.inner)

  def describe(self) -> dict[str, Any]:
    return self.inner.describe()

  def close(self) -> None:
    self.inner.close()


def stream(dataset_id: str, split: str, batch_size: int, *, num_examples: int | None = None, start: int = 0,
           shuffle_buffer: int = 0, seed: int = 0, drop_remainder: bool = True, with_indices: bool = False,
           mirrors: str | Mapping[str, str] | None = None, data_dir: str | None = None,
           manual_dir: str | None = None, download: bool = True, chunk_bytes: int = CHUNK_BYTES) -> Stream:
  """Official examples start, start + 1, ... of a split as batches, each served once (module docstring).

  dataset_id, split: as for `data.load` (cifar10, cifar10_jpeg, cifar5m; 'train' / 'test').
  batch_size: examples per batch. num_examples: how many to serve (None: all the source holds from `start`,
    rounded down to whole batches with drop_remainder). With drop_remainder (the default, every batch of the same
    shape, as the online trainer needs) num_examples must be a multiple of batch_size; without it the last batch
    may be shorter. start: the first position served (the official index, from a mirror).
  shuffle_buffer, seed: 0 serves the source order; W > 0 a seeded permutation within windows of W examples.
  with_indices: batches are (images, labels, official indices) instead of (images, labels).
  mirrors, data_dir, manual_dir, download: the source, as for `data.load` (a mirror configured for the id, else TFDS).
  chunk_bytes: bytes of rows read at a time.
  Raises DataError (one line) when the request cannot be served, before serving anything.
  """
  spec = catalog.get(dataset_id)
  catalog.check_split(spec, split)
  batch_size = _int(batch_size, "batch_size", 1)
  start = _int(start, "start", 0)
  shuffle_buffer = _int(shuffle_buffer, "shuffle_buffer", 0)
  seed = _int(seed, "seed", 0)
  chunk_bytes = _int(chunk_bytes, "chunk_bytes", 1)
  if num_examples is not None:
    num_examples = _int(num_examples, "num_examples", 1)
    if drop_remainder and num_examples % batch_size:
      raise DataError(f"stream of {dataset_id}/{split}: num_examples={num_examples} is not a multiple of "
                      f"batch_size={batch_size} (pass drop_remainder=False for a shorter last batch)")
  source = loader._source(spec, mirrors, data_dir, manual_dir, download)  # pylint: disable=protected-access
  rows = _MirrorRows(source, split) if isinstance(source, mirrors_lib.Mirror) else _TfdsRows(source, split)
  available = max(0, rows.capacity - start)
  where = f"the stream of {dataset_id}/{split} ({rows.source}) holds {rows.capacity} examples"
  if num_examples is None:
    num_examples = available - available % batch_size if drop_remainder else available
    if num_examples == 0:
      raise DataError(f"{where}: from index {start} that is not one batch of {batch_size}")
  elif num_examples > available:
    raise DataError(f"{where}, {available} of them from index {start}; {num_examples} asked"
                    if start else f"{where}, {num_examples} asked")
  return Stream(rows, dataset_id, split, batch_size, start, num_examples, shuffle_buffer, seed, drop_remainder,
                with_indices, chunk_bytes)

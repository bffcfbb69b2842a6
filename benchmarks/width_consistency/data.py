"""The data of `width_consistency`: one training stream for every net, and the fixed evaluation set."""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from harness import data
from harness.data.preprocess import channel_stats

from benchmarks.width_consistency.config import STATS_EXAMPLES, WidthConfig


@dataclasses.dataclass(frozen=True)
class Data:
  """train_x/train_labels: the stream's first examples, preprocessed, in its order: all of them when the tier holds
  the stream (`hold_stream`), else the first `held_examples` (statistics, the sharpness batch, the coordinate
  check's batch), and `reopen(n)` serves the first n examples again, batch by batch, for each net."""
  train_x: np.ndarray
  train_labels: np.ndarray
  eval_x: np.ndarray
  eval_labels: np.ndarray
  reopen: Callable[[int, int], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None

  def batches(self, steps: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batch t = examples [t B, (t + 1) B) of the stream: the same order for every width and seed, each once."""
    if steps * batch_size <= len(self.train_x):
      return self._held(steps, batch_size)
    if self.reopen is None:
      raise ValueError(f"{steps} steps of {batch_size} need {steps * batch_size} examples, have {len(self.train_x)}")
    return self.reopen(steps * batch_size, batch_size)

  def _held(self, steps: int, batch_size: int):
    for t in range(steps):
      yield self.train_x[t * batch_size:(t + 1) * batch_size], self.train_labels[t * batch_size:(t + 1) * batch_size]


def _pooled(images: np.ndarray, config: WidthConfig) -> np.ndarray:
  return data.average_pool(images, config.downsample) / 255.0


def _open(ctx, config: WidthConfig, split: str, batch_size: int, num_examples: int):
  return ctx.stream(config.train_dataset if split == "train" else config.eval_dataset, split, batch_size,
                    num_examples=num_examples)


def _read(stream, config: WidthConfig) -> tuple[np.ndarray, np.ndarray, dict]:
  """(pooled images, labels, the stream's record after serving them)."""
  pooled, labels = [], []
  with stream:
    for images, batch_labels in stream:
      pooled.append(_pooled(images, config))
      labels.append(batch_labels)
    description = stream.describe()
  return np.concatenate(pooled), np.concatenate(labels).astype(np.int64), description


def load(ctx, config: WidthConfig) -> Data:
  """Streams the training images once (harness.data.stream: shard by shard, never the whole split; the stream's
  record, with a digest of what it served, goes into the run record), average-pooled by `downsample` and
  standardised per channel with the mean and std of the first STATS_EXAMPLES. Tiers that hold the stream keep it
  all (the smoke tier's 12,800 8x8 images: 10 MB as float32, the small tier's 49,920: 38 MB), so every net reads
  the same examples in the same order; the others (CIFAR-5m) check that the source holds the whole stream, keep its
  first `held_examples` and open it anew for each net (the same examples in the same order). The evaluation set:
  `n_eval` exact-pixel test images (ctx.load_dataset), or the first `n_eval` of the training source's test split
  when `eval_dataset` is the training dataset (CIFAR-5m's part5, read as a stream)."""
  total = config.stream_examples
  held = min(total, config.held_examples)
  if config.hold_stream:
    train_x, train_labels, description = _read(_open(ctx, config, "train", config.batch_size, total), config)
    ctx.record_dataset(description)
  else:
    with _open(ctx, config, "train", config.batch_size, total) as whole:   # DataError now if the source is too small
      ctx.record_dataset({**whole.describe(), "served": "anew for each net, in this order"})
    train_x, train_labels, _ = _read(_open(ctx, config, "train", held, held), config)
  if config.eval_dataset == config.train_dataset:
    test_x, test_labels, description = _read(_open(ctx, config, "test", config.n_eval, config.n_eval), config)
    ctx.record_dataset(description)
  else:
    test = ctx.load_dataset(config.eval_dataset, split="test", pool=config.n_eval)
    test_x, test_labels = _pooled(test.images, config), np.asarray(test.labels, np.int64)
  mean, std = channel_stats(train_x[:STATS_EXAMPLES])
  standardised = _Standardise(mean, std, config.dtype)
  reopen = None if config.hold_stream else _Reopen(config, ctx.mirrors, standardised)
  return Data(standardised(train_x), train_labels, standardised(test_x), test_labels, reopen)


@dataclasses.dataclass(frozen=True)
class _Standardise:
  """(x - mean) / std per channel, in the run's dtype."""
  mean: np.ndarray
  std: np.ndarray
  dtype: str

  def __call__(self, x: np.ndarray) -> np.ndarray:
    return ((x - self.mean) / self.std).astype(self.dtype)


@dataclasses.dataclass(frozen=True)
class _Reopen:
  """Serves the training stream's first examples anew, preprocessed (a picklable `Data.reopen`: sweep points on Beam
  workers re-read the stream from the mirror or TFDS themselves; the launcher's pre-flight checked that read)."""
  config: WidthConfig
  mirrors: str | None
  standardised: _Standardise

  def __call__(self, num_examples: int, batch_size: int):
    source = data.stream(self.config.train_dataset, "train", batch_size, num_examples=num_examples,
                         mirrors=self.mirrors)
    with source as again:
      for images, labels in again:
        yield self.standardised(_pooled(images, self.config)), labels.astype(np.int64)

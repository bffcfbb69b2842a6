"""The data of `width_consistency`: one training stream for every net, and the fixed evaluation set."""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from harness import data
from harness.data.preprocess import channel_stats

from benchmarks.width_consistency.config import STATS_EXAMPLES, WidthConfig


@dataclasses.dataclass(frozen=True)
class Data:
  train_x: np.ndarray     # (stream_examples, 8, 8, 3) standardised, in the stream's order
  train_labels: np.ndarray
  eval_x: np.ndarray
  eval_labels: np.ndarray

  def batches(self, steps: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batch t = examples [t B, (t + 1) B) of the stream: the same order for every width and seed, each once."""
    if steps * batch_size > len(self.train_x):
      raise ValueError(f"{steps} steps of {batch_size} need {steps * batch_size} examples, have {len(self.train_x)}")
    for t in range(steps):
      yield self.train_x[t * batch_size:(t + 1) * batch_size], self.train_labels[t * batch_size:(t + 1) * batch_size]


def load(ctx, config: WidthConfig) -> Data:
  """Streams the tier's `stream_examples` training images once (harness.data.stream: shard by shard, never the
  whole split; the stream's record, with a digest of what it served, goes into the run record) and keeps them
  average-pooled to 8x8 (the smoke tier's 12,800 images: 10 MB as float32, the small tier's 49,920: 38 MB), so
  every net reads the same examples in the same order; standardised per channel with the mean and std of the
  first STATS_EXAMPLES. The evaluation set: `n_eval` exact-pixel test images."""
  stream = data.stream(config.train_dataset, "train", config.batch_size, num_examples=config.stream_examples,
                       mirrors=ctx.mirrors)
  pooled, labels = [], []
  with stream:
    for images, batch_labels in stream:
      pooled.append(data.average_pool(images, config.downsample) / 255.0)
      labels.append(batch_labels)
    ctx.record_dataset(stream.describe())
  train_x = np.concatenate(pooled)
  test = ctx.load_dataset(config.eval_dataset, split="test", pool=config.n_eval)
  test_x = data.average_pool(test.images, config.downsample) / 255.0
  mean, std = channel_stats(train_x[:STATS_EXAMPLES])
  xs = [((x - mean) / std).astype(config.dtype) for x in (train_x, test_x)]
  return Data(xs[0], np.concatenate(labels).astype(np.int64), xs[1], np.asarray(test.labels, np.int64))

"""The CIFAR-10 blocks of `pooling`: disjoint train/test blocks per seed, and the theory's fixed inputs."""
from __future__ import annotations

import dataclasses

import numpy as np

from harness import data

from benchmarks.pooling.config import PoolingConfig


def blocks(ctx, config: PoolingConfig) -> dict[int, tuple[data.Arrays, data.Arrays]]:
  """Per seed: disjoint train block s and test block s of the official pools, preprocessed on train only."""
  train = ctx.load_dataset("cifar10", split="train", pool=config.n_train * (max(ctx.seeds) + 1))
  test = ctx.load_dataset("cifar10", split="test", pool=config.n_test * (max(ctx.seeds) + 1))
  out = {}
  for seed in ctx.seeds:
    tr = _slice(train, seed * config.n_train, config.n_train)
    te = _slice(test, seed * config.n_test, config.n_test)
    out[seed] = data.preprocess(tr, te, downsample=config.downsample, zca_reg=config.zca_reg, dtype=config.dtype)
  return out


def _slice(split: data.Split, start: int, size: int) -> data.Split:
  return dataclasses.replace(split, images=split.images[start:start + size], labels=split.labels[start:start + size],
                             indices=split.indices[start:start + size])


def theory_inputs(ctx, n_train: int, n_test: int, downsample: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
  """Official train 0..n_train-1 and test 0..n_test-1, standardised, each image rescaled to norm sqrt(d)."""
  train = ctx.load_dataset("cifar10", split="train", pool=n_train)
  test = ctx.load_dataset("cifar10", split="test", pool=n_test)
  tr, te = data.preprocess(train, test, downsample=downsample, targets="onehot", dtype="float64")
  x = data.normalize_images(np.concatenate([tr.x, te.x]), center=False, scale="rms")
  return x.astype(dtype), tr.y

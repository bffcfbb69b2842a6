"""The inputs of `commutativity`: synthetic pairs at chosen input correlations and pairs of CIFAR-10 images."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from harness.theory import residual_flow as rf

from benchmarks.commutativity.config import CIFAR_POOL, CIFAR_SEED, CommutativityConfig


@dataclasses.dataclass(frozen=True)
class Inputs:
  """Points x (P, d) with x.x/d = 1 and the pairs (i, j) whose correlation is tracked, by input set."""
  x: np.ndarray
  pairs: dict[str, list[tuple[int, int]]]
  points: dict[str, list[int]]

  @property
  def kernel(self) -> np.ndarray:
    """Input covariance x.x'/d (what the first Dense layer sees, harness.nets convention)."""
    return self.x @ self.x.T / self.x.shape[1]


def synthetic_points(correlations: Sequence[float], dim: int) -> np.ndarray:
  """An anchor e_0 and partners c e_0 + sqrt(1 - c^2) e_i, scaled to x.x/d = 1: corr(anchor, partner i) = c_i."""
  count = len(correlations) + 1
  if dim < count:
    raise ValueError(f"dimension {dim} < {count} points")
  x = np.zeros((count, dim))
  x[0, 0] = 1.0
  for i, c in enumerate(correlations, start=1):
    x[i, 0], x[i, i] = c, math.sqrt(1.0 - c * c)
  return x * math.sqrt(dim)


def standardize_images(images: np.ndarray) -> np.ndarray:
  """uint8 images -> flat float64 rows with mean 0 and x.x/d = 1 each."""
  from harness.data.preprocess import normalize_images  # pylint: disable=import-outside-toplevel
  return normalize_images(images.reshape(len(images), -1).astype(np.float64) / 255.0, scale="rms")


def make_inputs(config: CommutativityConfig, ctx) -> Inputs:
  correlations = config.input_correlations
  blocks, pairs, points = [], {}, {}
  dim = len(correlations) + 1
  cifar = None
  if config.cifar_pairs:
    split = ctx.load_dataset("cifar10", split="train", size=2 * config.cifar_pairs, seed=CIFAR_SEED, pool=CIFAR_POOL)
    cifar = standardize_images(split.images)
    dim = cifar.shape[1]
  blocks.append(synthetic_points(correlations, dim))
  points["synthetic"] = list(range(len(correlations) + 1))
  pairs["synthetic"] = [(0, i) for i in range(1, len(correlations) + 1)]
  if cifar is not None:
    start = len(correlations) + 1
    blocks.append(cifar)
    points["cifar10"] = list(range(start, start + len(cifar)))
    pairs["cifar10"] = [(start + 2 * i, start + 2 * i + 1) for i in range(config.cifar_pairs)]
  return Inputs(np.concatenate(blocks), pairs, points)


def pair_kernel(k: np.ndarray, pairs: Sequence[tuple[int, int]]) -> rf.PairKernel:
  i, j = np.array(pairs).T
  return rf.PairKernel.of(k[i, i], k[j, j], k[i, j])

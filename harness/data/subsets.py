"""Deterministic subsets of official indices, the same on every machine and numpy version.

A subset is named by (seed, size, pool, balanced): `size` examples drawn without replacement from the pool
of official indices 0..pool-1. Each index i gets the key `splitmix64(seed)[i]`, the i-th output of the
SplitMix64 generator seeded with `seed` (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
generators", OOPSLA; the reference `splitmix64.c` of Vigna), i.e. mix(seed + (i + 1) * 0x9E3779B97F4A7C15)
in uint64 arithmetic. The subset is the `size` indices with the smallest keys (ties, which need a 64-bit
collision, broken by index); balanced subsets take the `size / num_classes` smallest keys of every class.
The result is returned in ascending official order.

Consequences: for one seed, a smaller subset is contained in a larger one (nested training sets), and
the draw depends only on the labels of the pool, so any source holding the pool (TFDS or a mirror of
the first N >= pool examples) yields the same examples.
"""
from __future__ import annotations

import numpy as np

from harness.data.errors import DataError

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
MIX_MULTIPLIERS = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
MIX_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))
SEED_LIMIT = 2 ** 64


def splitmix64(seed: int, count: int) -> np.ndarray:
  """The first `count` outputs (uint64) of SplitMix64 with initial state `seed`."""
  if not 0 <= seed < SEED_LIMIT:
    raise ValueError(f"seed must be in [0, 2**64), got {seed}")
  steps = np.arange(1, count + 1, dtype=np.uint64)
  with np.errstate(over="ignore"):  # uint64 arithmetic wraps mod 2**64, as in the C reference
    z = np.uint64(seed) + steps * GOLDEN_GAMMA
    z = (z ^ (z >> MIX_SHIFTS[0])) * MIX_MULTIPLIERS[0]
    z = (z ^ (z >> MIX_SHIFTS[1])) * MIX_MULTIPLIERS[1]
    return z ^ (z >> MIX_SHIFTS[2])


def _smallest_keys(candidates: np.ndarray, keys: np.ndarray, count: int) -> np.ndarray:
  order = np.lexsort((candidates, keys[candidates]))
  return candidates[order[:count]]


def choose(seed: int, size: int, pool: int, labels: np.ndarray | None = None,
           num_classes: int | None = None) -> np.ndarray:
  """Official indices (ascending, int64) of the subset (seed, size, pool); class-balanced when labels given.

  labels: the labels of official examples 0..pool-1 (only for a balanced subset), num_classes with them.
  """
  if not 1 <= pool:
    raise DataError(f"pool must be >= 1, got {pool}")
  if not 1 <= size <= pool:
    raise DataError(f"subset size must be in 1..pool={pool}, got {size}")
  keys = splitmix64(seed, pool)
  everyone = np.arange(pool, dtype=np.int64)
  if labels is None:
    return np.sort(_smallest_keys(everyone, keys, size))
  labels = np.asarray(labels)
  if num_classes is None or len(labels) != pool:
    raise ValueError("a balanced subset needs the labels of the whole pool and num_classes")
  if size % num_classes:
    raise DataError(f"a class-balanced subset needs size divisible by {num_classes} classes, got {size}")
  per_class = size // num_classes
  chosen = []
  for c in range(num_classes):
    members = everyone[labels == c]
    if len(members) < per_class:
      raise DataError(f"class {c} has {len(members)} examples among the first {pool}, "
                      f"a balanced subset of {size} needs {per_class}")
    chosen.append(_smallest_keys(members, keys, per_class))
  return np.sort(np.concatenate(chosen))

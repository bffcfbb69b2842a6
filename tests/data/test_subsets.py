"""Subsets by (seed, size, pool, balanced): SplitMix64 keys, determinism, balance, nesting, uniformity."""
import numpy as np
import pytest

from harness import data

MASK64 = (1 << 64) - 1
# First outputs of Vigna's reference splitmix64.c (prng.di.unimi.it/splitmix64.c) from state 0; the same
# words recur as golden values in many independent ports (checked in public code, not derived here).
SPLITMIX64_SEED0 = (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F)


def _splitmix64_reference(state: int, count: int) -> list[int]:
  """Line-by-line transcription of splitmix64.c's next() with Python integers."""
  out = []
  for _ in range(count):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    out.append(z ^ (z >> 31))
  return out


def test_splitmix64_matches_reference():
  assert [int(v) for v in data.splitmix64(0, 3)] == list(SPLITMIX64_SEED0)
  for seed in (1, 12345, MASK64):
    assert [int(v) for v in data.splitmix64(seed, 50)] == _splitmix64_reference(seed, 50)
  with pytest.raises(ValueError):
    data.splitmix64(-1, 3)


def test_deterministic_sorted_unique_and_seed_dependent():
  a = data.choose(seed=0, size=100, pool=4000)
  np.testing.assert_array_equal(a, data.choose(seed=0, size=100, pool=4000))
  assert a.dtype == np.int64 and np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 4000
  b = data.choose(seed=1, size=100, pool=4000)
  assert len(np.intersect1d(a, b)) < 20  # independent draws share ~100*100/4000 = 2.5 on average


def test_smallest_keys_definition_and_nesting():
  keys = data.splitmix64(7, 500)
  expected = np.sort(np.argsort(keys, kind="stable")[:30])
  np.testing.assert_array_equal(data.choose(seed=7, size=30, pool=500), expected)
  small, large = data.choose(seed=7, size=30, pool=500), data.choose(seed=7, size=120, pool=500)
  assert set(small) <= set(large)
  np.testing.assert_array_equal(data.choose(seed=3, size=500, pool=500), np.arange(500))


def test_balanced_counts_exact():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 4000)
  chosen = data.choose(seed=5, size=1000, pool=4000, labels=labels, num_classes=10)
  assert len(chosen) == len(set(chosen)) == 1000
  np.testing.assert_array_equal(np.bincount(labels[chosen], minlength=10), [100] * 10)
  # within a class, the members with the smallest keys
  keys = data.splitmix64(5, 4000)
  cats = np.nonzero(labels == 3)[0]
  np.testing.assert_array_equal(np.sort(cats[np.argsort(keys[cats], kind="stable")[:100]]),
                                chosen[labels[chosen] == 3])


def test_balanced_errors():
  labels = np.repeat(np.arange(10), 3)
  labels[labels == 9] = 8  # class 9 absent
  with pytest.raises(data.DataError, match="class 9 has 0 examples"):
    data.choose(seed=0, size=10, pool=30, labels=labels, num_classes=10)
  with pytest.raises(data.DataError, match="divisible"):
    data.choose(seed=0, size=12, pool=30, labels=labels, num_classes=10)


def test_inclusion_is_uniform_over_seeds():
  # each index of a pool of 20 is in a subset of 5 with probability 1/4; 2000 seeds: sd 0.0097
  seeds, pool, size = 2000, 20, 5
  counts = np.zeros(pool)
  for seed in range(seeds):
    counts[data.choose(seed=seed, size=size, pool=pool)] += 1
  frequency = counts / seeds
  assert np.all(np.abs(frequency - size / pool) < 5 * np.sqrt(0.25 * 0.75 / seeds))

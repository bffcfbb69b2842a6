"""Random streams from integer keys, one convention for the suite (numpy SeedSequence of the keys).

An experiment names its streams (e.g. STREAM_MONTE_CARLO = 1) and derives each generator from (seed, indices of
the grid point, stream): independent across keys, reproducible from the record's seeds.
"""
from __future__ import annotations

import numpy as np


def rng(*keys: int) -> np.random.Generator:
  """A generator seeded by the integer keys."""
  return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def seed31(*keys: int) -> int:
  """A 31-bit integer seed from integer keys (Keras initializers and harness.nets.reinitialize take int32)."""
  return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)
